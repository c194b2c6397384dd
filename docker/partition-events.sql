-- The event log as a hash-partitioned table (PostgreSQL ≥ 11), converted in place with
-- the application stopped (docs/SCALE.md; tests/test_scale_partitioning.py runs this file
-- and then the application on the result):
--
--   psql "$URL" -v schema=zhuisu -v parts=16 -f docker/partition-events.sql
--
-- Why HASH on originator_id, and why the event store must then run with CREATE_TABLE off:
-- a partitioned table's unique indexes must contain the partition key.  The log has two:
-- PRIMARY KEY (originator_id, originator_version), on which optimistic concurrency rests,
-- and the event store's UNIQUE index on notification_id.  They share no column, so no
-- partitioning keeps both.  HASH (originator_id) keeps the primary key whole (RANGE on
-- notification_id would make it unique per partition only: two writers racing on one
-- aggregate across a partition boundary would both succeed); the notification id stays
-- one global sequence, its index per partition is not declared unique (the sequence makes
-- it so), and a read "after position N, in order" is a merge of the partitions' indexes.
-- The event store's start-up DDL (CREATE UNIQUE INDEX IF NOT EXISTS …) fails on the
-- partitioned table even though an index of that name exists, so the application runs
-- with the eventsourcing setting CREATE_TABLE=false on a converted store.

BEGIN;
SET LOCAL search_path TO :"schema";
LOCK TABLE zhuisu_events IN ACCESS EXCLUSIVE MODE;
ALTER TABLE zhuisu_events RENAME TO zhuisu_events_plain;
ALTER INDEX zhuisu_events_notification_id_idx RENAME TO zhuisu_events_plain_nid;
CREATE TABLE zhuisu_events (LIKE zhuisu_events_plain INCLUDING DEFAULTS)
    PARTITION BY HASH (originator_id);
ALTER TABLE zhuisu_events ADD PRIMARY KEY (originator_id, originator_version);
ALTER SEQUENCE zhuisu_events_notification_id_seq OWNED BY zhuisu_events.notification_id;
CREATE INDEX zhuisu_events_notification_id_idx ON zhuisu_events (notification_id);
SELECT format('CREATE TABLE %I PARTITION OF zhuisu_events '
              'FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
              'zhuisu_events_p' || r, :parts, r)
FROM generate_series(0, :parts - 1) AS r
\gexec
INSERT INTO zhuisu_events SELECT * FROM zhuisu_events_plain;
DROP TABLE zhuisu_events_plain;
COMMIT;
