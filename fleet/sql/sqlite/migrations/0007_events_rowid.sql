-- 0007: the event log's seq is the table's rowid, without AUTOINCREMENT (issue 20).
-- AUTOINCREMENT keeps the highest seq in sqlite_sequence, a table of its own that every append
-- transaction rewrites: one more page (4 KiB of WAL) per write transaction, 1 in 8 of an
-- append's pages. Without it SQLite gives a new row max(seq) + 1; as events are never deleted
-- (the trigger below refuses it) seqs still only grow and are never reused.

CREATE TABLE events_rowid (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,  -- '' for events that belong to no run (worker events)
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (run_id, event_id)
);
INSERT INTO events_rowid (seq, run_id, event_id, type, at, data)
SELECT seq, run_id, event_id, type, at, data FROM events ORDER BY seq;
DROP TABLE events;
ALTER TABLE events_rowid RENAME TO events;
DELETE FROM sqlite_sequence WHERE name IN ('events', 'events_rowid');

CREATE INDEX events_by_run ON events (run_id, seq);
CREATE INDEX events_by_type ON events (type, seq);
CREATE INDEX events_by_time ON events (at);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: UPDATE refused');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: DELETE refused');
END;
