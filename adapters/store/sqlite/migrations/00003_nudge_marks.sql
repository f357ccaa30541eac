-- +goose Up
-- Per device, how far the nudge loop has judged its captions: the highest
-- captions.seq (insertion order) a recorded decision covered. A caption
-- with a higher seq is new evidence, whatever its time.
CREATE TABLE nudge_marks (
    device TEXT    PRIMARY KEY,
    seq    INTEGER NOT NULL
);

-- +goose Down
DROP TABLE nudge_marks;
