-- +goose Up
-- One embedding per caption and model, as little-endian float32s at unit
-- length. The key clusters a device's vectors by time, so a question's scan
-- reads one contiguous range.
CREATE TABLE caption_vectors (
    model    TEXT    NOT NULL,
    device   TEXT    NOT NULL,
    start_us INTEGER NOT NULL,
    seq      INTEGER NOT NULL, -- captions.seq
    vec      BLOB    NOT NULL,
    PRIMARY KEY (model, device, start_us, seq)
) WITHOUT ROWID;
CREATE INDEX caption_vectors_seq ON caption_vectors (seq);

-- A caption's vectors go with it (retention, deletion).
-- +goose StatementBegin
CREATE TRIGGER captions_vectors_delete AFTER DELETE ON captions BEGIN
    DELETE FROM caption_vectors WHERE seq = old.seq;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER captions_vectors_delete;
DROP TABLE caption_vectors;
