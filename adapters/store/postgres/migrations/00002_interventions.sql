-- +goose Up
-- The nudge loop's audit trail: one row per decision.
CREATE TABLE interventions (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- given out as a decimal string
    device            text        NOT NULL,
    time              timestamptz NOT NULL,
    engine            text        NOT NULL,
    verdict           text        NOT NULL, -- yes, no, error
    reasoning         text        NOT NULL,
    caption_ids       text[]      NOT NULL,
    model             text        NOT NULL,
    prompt_tokens     integer     NOT NULL,
    completion_tokens integer     NOT NULL,
    nudge             text        NOT NULL,
    status            text        NOT NULL, -- ports.DeliveryStatus
    delivered_at      timestamptz,          -- NULL until delivered
    attempts          integer     NOT NULL,
    error             text        NOT NULL
);
CREATE INDEX interventions_time ON interventions (time DESC, id DESC);
CREATE INDEX interventions_device_time ON interventions (device, time DESC, id DESC);
-- LastDelivered: one index probe per evaluation.
CREATE INDEX interventions_device_delivered ON interventions (device, delivered_at DESC)
    WHERE status = 'delivered';

-- One row per device: the latest interval slot an instance claimed for its
-- evaluation (EvaluationLock), written under a per-device advisory lock.
CREATE TABLE nudge_schedule (
    device    text PRIMARY KEY,
    last_slot timestamptz -- NULL: no slot claimed yet
);

-- The nudge loop reads captions by when their chunk ended (ports.CaptionRef.Time).
CREATE INDEX captions_device_end ON captions (device, end_at);
CREATE INDEX captions_end_device ON captions (end_at, device);

-- +goose Down
DROP INDEX captions_end_device;
DROP INDEX captions_device_end;
DROP TABLE nudge_schedule;
DROP TABLE interventions;
