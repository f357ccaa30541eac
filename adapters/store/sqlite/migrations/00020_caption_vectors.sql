-- +goose Up
-- One embedding per caption (of the model last used), as little-endian
-- float32s at unit length. A rowid table: a vector of a few hundred
-- dimensions fits its leaf page, where in a WITHOUT ROWID table or an index
-- it would spill to overflow pages and triple the scan's cost.
CREATE TABLE caption_vectors (
    seq      INTEGER PRIMARY KEY, -- captions.seq
    model    TEXT    NOT NULL,
    device   TEXT    NOT NULL,
    start_us INTEGER NOT NULL,
    vec      BLOB    NOT NULL
);
CREATE INDEX caption_vectors_scan ON caption_vectors (model, device, start_us);

-- A caption's vector goes with it (retention, deletion).
-- +goose StatementBegin
CREATE TRIGGER captions_vectors_delete AFTER DELETE ON captions BEGIN
    DELETE FROM caption_vectors WHERE seq = old.seq;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER captions_vectors_delete;
DROP TABLE caption_vectors;
