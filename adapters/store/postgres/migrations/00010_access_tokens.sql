-- +goose Up
-- Access tokens (ports.AccessToken): only the SHA-256 of each secret is kept.
CREATE TABLE access_tokens (
    id        text        PRIMARY KEY,
    hash      bytea       NOT NULL UNIQUE,
    name      text        NOT NULL,
    role      text        NOT NULL, -- device, admin
    devices   text[]      NOT NULL,
    created   timestamptz NOT NULL,
    expires   timestamptz,          -- NULL: never
    revoked   timestamptz,          -- NULL: not revoked
    last_used timestamptz           -- NULL: never used
);

-- +goose Down
DROP TABLE access_tokens;
