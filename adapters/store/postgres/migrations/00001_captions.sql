-- +goose Up
CREATE TABLE captions (
    id            text COLLATE "C" PRIMARY KEY, -- byte order, as the keyset cursor assumes
    device        text             NOT NULL,
    stream_id     text             NOT NULL,
    start_at      timestamptz      NOT NULL,
    end_at        timestamptz      NOT NULL,
    chunk_start_s double precision NOT NULL,
    chunk_end_s   double precision NOT NULL,
    caption       text             NOT NULL,
    latency_ms    double precision NOT NULL,
    tokens        bigint           NOT NULL,
    backend       text             NOT NULL,
    model         text             NOT NULL,
    search        tsvector GENERATED ALWAYS AS (to_tsvector('english', caption)) STORED
);
CREATE INDEX captions_start ON captions (start_at DESC, id DESC);
CREATE INDEX captions_device_start ON captions (device, start_at DESC, id DESC);
CREATE INDEX captions_stream_start ON captions (stream_id, start_at DESC, id DESC);
CREATE INDEX captions_search ON captions USING gin (search);

-- +goose Down
DROP TABLE captions;
