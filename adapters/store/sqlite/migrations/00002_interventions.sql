-- +goose Up
-- The nudge loop's audit trail: one row per decision.
CREATE TABLE interventions (
    id                INTEGER PRIMARY KEY, -- given out as a decimal string
    device            TEXT    NOT NULL,
    time_us           INTEGER NOT NULL, -- Unix microseconds, UTC
    engine            TEXT    NOT NULL,
    verdict           TEXT    NOT NULL, -- yes, no, error
    reasoning         TEXT    NOT NULL,
    caption_ids       TEXT    NOT NULL, -- JSON array of caption ids
    model             TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    nudge             TEXT    NOT NULL,
    status            TEXT    NOT NULL, -- ports.DeliveryStatus
    delivered_at_us   INTEGER,          -- NULL until delivered
    attempts          INTEGER NOT NULL,
    error             TEXT    NOT NULL
);
CREATE INDEX interventions_time ON interventions (time_us DESC, id DESC);
CREATE INDEX interventions_device_time ON interventions (device, time_us DESC, id DESC);
-- LastDelivered: one index probe per evaluation.
CREATE INDEX interventions_device_delivered ON interventions (device, delivered_at_us DESC)
    WHERE status = 'delivered';

-- The nudge loop reads captions by when their chunk ended (ports.CaptionRef.Time).
CREATE INDEX captions_device_end ON captions (device, end_us);
CREATE INDEX captions_end_device ON captions (end_us, device);

-- +goose Down
DROP INDEX captions_end_device;
DROP INDEX captions_device_end;
DROP TABLE interventions;
