-- +goose Up
-- seq is the rowid the search index points at; id is the caller's caption id.
CREATE TABLE captions (
    seq           INTEGER PRIMARY KEY,
    id            TEXT    NOT NULL UNIQUE,
    device        TEXT    NOT NULL,
    stream_id     TEXT    NOT NULL,
    start_us      INTEGER NOT NULL, -- Unix microseconds, UTC
    end_us        INTEGER NOT NULL,
    chunk_start_s REAL    NOT NULL,
    chunk_end_s   REAL    NOT NULL,
    caption       TEXT    NOT NULL,
    latency_ms    REAL    NOT NULL,
    tokens        INTEGER NOT NULL,
    backend       TEXT    NOT NULL,
    model         TEXT    NOT NULL
);
CREATE INDEX captions_start ON captions (start_us DESC, id DESC);
CREATE INDEX captions_device_start ON captions (device, start_us DESC, id DESC);
CREATE INDEX captions_stream_start ON captions (stream_id, start_us DESC, id DESC);

-- External-content FTS5 index over caption, kept in step by the triggers.
CREATE VIRTUAL TABLE captions_fts USING fts5 (
    caption, content = 'captions', content_rowid = 'seq', tokenize = 'porter unicode61'
);

-- +goose StatementBegin
CREATE TRIGGER captions_fts_insert AFTER INSERT ON captions BEGIN
    INSERT INTO captions_fts (rowid, caption) VALUES (new.seq, new.caption);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER captions_fts_delete AFTER DELETE ON captions BEGIN
    INSERT INTO captions_fts (captions_fts, rowid, caption) VALUES ('delete', old.seq, old.caption);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER captions_fts_update AFTER UPDATE OF caption ON captions BEGIN
    INSERT INTO captions_fts (captions_fts, rowid, caption) VALUES ('delete', old.seq, old.caption);
    INSERT INTO captions_fts (rowid, caption) VALUES (new.seq, new.caption);
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE captions_fts;
DROP TABLE captions;
