-- +goose Up
-- One embedding per caption (of the model last used), as little-endian
-- float32s at unit length (bytea: 4 bytes a dimension), scanned per device
-- and time range.
CREATE TABLE caption_vectors (
    caption_id text COLLATE "C" PRIMARY KEY REFERENCES captions (id) ON DELETE CASCADE,
    model      text             NOT NULL,
    device     text             NOT NULL,
    start_at   timestamptz      NOT NULL,
    vec        bytea            NOT NULL
);
CREATE INDEX caption_vectors_scan ON caption_vectors (model, device, start_at);

-- +goose Down
DROP TABLE caption_vectors;
