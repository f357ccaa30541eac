-- +goose Up
-- Each device's own Poke API key, sealed by the server (AES-256-GCM, the
-- device id as additional data); never the plain key. poke_key_id names the
-- server key that sealed it, for rotation.
CREATE TABLE device_secrets (
    device          text COLLATE "C" PRIMARY KEY, -- byte order, as ListPokeKeys pages
    poke_key_id     text        NOT NULL,
    poke_key_sealed bytea       NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE device_secrets;
