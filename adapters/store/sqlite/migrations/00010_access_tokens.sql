-- +goose Up
-- Access tokens (ports.AccessToken): only the SHA-256 of each secret is kept.
CREATE TABLE access_tokens (
    id           TEXT    PRIMARY KEY,
    hash         BLOB    NOT NULL UNIQUE,
    name         TEXT    NOT NULL,
    role         TEXT    NOT NULL, -- device, admin
    devices      TEXT    NOT NULL, -- JSON array of device ids
    created_us   INTEGER NOT NULL, -- Unix microseconds, UTC
    expires_us   INTEGER,          -- NULL: never
    revoked_us   INTEGER,          -- NULL: not revoked
    last_used_us INTEGER           -- NULL: never used
);

-- +goose Down
DROP TABLE access_tokens;
