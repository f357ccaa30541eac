-- +goose Up
-- The transaction that stored each caption, so the nudge loop can tell the
-- captions an earlier read saw from those committed after it. Sequence
-- numbers would not do: concurrent writers commit out of their order.
-- Captions stored before this migration have none: they are judged by the
-- first decision of their device, and old from then on.
ALTER TABLE captions ADD COLUMN ins_xid xid8;
ALTER TABLE captions ALTER COLUMN ins_xid SET DEFAULT pg_current_xact_id();

-- Per device, the snapshot of the read behind the last recorded decision:
-- a caption whose transaction it saw was judged; any other is new evidence.
-- Written under the device's evaluation lock.
CREATE TABLE nudge_marks (
    device   text PRIMARY KEY,
    snapshot pg_snapshot NOT NULL
);

-- +goose Down
DROP TABLE nudge_marks;
ALTER TABLE captions DROP COLUMN ins_xid;
