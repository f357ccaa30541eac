-- +goose Up
-- The wearer app's biometric windows (POST /biometrics/upload). The
-- features a query or a rule most often reads are columns; every numeric
-- field the app sent, those included, is in features (jsonb), and the risk
-- prediction as sent in risk.
CREATE TABLE biometrics (
    seq                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- keyset tie-break
    device             text             NOT NULL,
    window_id          text             NOT NULL,
    start_at           timestamptz      NOT NULL,
    end_at             timestamptz      NOT NULL, -- start plus the window's duration
    duration_us        bigint           NOT NULL,
    quality            double precision,
    hr_mean            double precision,
    hr_min             double precision,
    hr_max             double precision,
    hr_std             double precision,
    movement_intensity double precision,
    alert_level        text,             -- riskPrediction.alertLevel
    susceptibility     double precision, -- riskPrediction.overallSusceptibility
    features           jsonb            NOT NULL, -- every numeric field, nulls kept
    risk               jsonb,            -- riskPrediction as sent; NULL without one
    stored_at          timestamptz      NOT NULL, -- first receipt
    -- The transaction that stored the window: the judged mark is a
    -- snapshot, as for captions (writers commit out of order).
    ins_xid            xid8             NOT NULL DEFAULT pg_current_xact_id(),
    UNIQUE (device, window_id)
);
CREATE INDEX biometrics_start ON biometrics (start_at DESC, seq DESC);
CREATE INDEX biometrics_device_start ON biometrics (device, start_at DESC, seq DESC);
CREATE INDEX biometrics_device_end ON biometrics (device, end_at);
CREATE INDEX biometrics_end_device ON biometrics (end_at, device);

-- Per device, the snapshot of the read behind the last recorded decision.
CREATE TABLE biometric_marks (
    device   text PRIMARY KEY,
    snapshot pg_snapshot NOT NULL
);

-- The biometric windows each decision saw.
ALTER TABLE interventions ADD COLUMN biometric_ids text[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE interventions DROP COLUMN biometric_ids;
DROP TABLE biometric_marks;
DROP TABLE biometrics;
