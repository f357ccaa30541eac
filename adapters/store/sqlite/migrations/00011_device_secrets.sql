-- +goose Up
-- Each device's own Poke API key, sealed by the server (AES-256-GCM, the
-- device id as additional data); never the plain key. poke_key_id names the
-- server key that sealed it, for rotation.
CREATE TABLE device_secrets (
    device          TEXT    PRIMARY KEY,
    poke_key_id     TEXT    NOT NULL,
    poke_key_sealed BLOB    NOT NULL,
    updated_us      INTEGER NOT NULL -- Unix microseconds, UTC
);

-- +goose Down
DROP TABLE device_secrets;
