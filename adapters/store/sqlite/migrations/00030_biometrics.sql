-- +goose Up
-- The wearer app's biometric windows (POST /biometrics/upload). The
-- features a query or a rule most often reads are columns; every numeric
-- field the app sent, those included, is in features (JSON, readable with
-- json_extract), and the risk prediction as sent in risk.
CREATE TABLE biometrics (
    seq                INTEGER PRIMARY KEY, -- insertion order: the nudge loop's judged mark
    device             TEXT    NOT NULL,
    window_id          TEXT    NOT NULL,
    start_us           INTEGER NOT NULL, -- Unix microseconds, UTC
    end_us             INTEGER NOT NULL, -- start plus the window's duration
    duration_us        INTEGER NOT NULL,
    quality            REAL,
    hr_mean            REAL,
    hr_min             REAL,
    hr_max             REAL,
    hr_std             REAL,
    movement_intensity REAL,
    alert_level        TEXT,             -- riskPrediction.alertLevel
    susceptibility     REAL,             -- riskPrediction.overallSusceptibility
    features           TEXT    NOT NULL, -- JSON object of every numeric field, nulls kept
    risk               TEXT,             -- riskPrediction as sent, JSON; NULL without one
    stored_at_us       INTEGER NOT NULL, -- first receipt
    UNIQUE (device, window_id)
);
CREATE INDEX biometrics_start ON biometrics (start_us DESC, seq DESC);
CREATE INDEX biometrics_device_start ON biometrics (device, start_us DESC, seq DESC);
CREATE INDEX biometrics_device_end ON biometrics (device, end_us);
CREATE INDEX biometrics_end_device ON biometrics (end_us, device);

-- Per device, the highest biometrics.seq a recorded decision covered.
CREATE TABLE biometric_marks (
    device TEXT    PRIMARY KEY,
    seq    INTEGER NOT NULL
);

-- The biometric windows each decision saw (JSON array of window ids).
ALTER TABLE interventions ADD COLUMN biometric_ids TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE interventions DROP COLUMN biometric_ids;
DROP TABLE biometric_marks;
DROP TABLE biometrics;
