-- 0005: who may act. Bearer tokens live in the store (token_created / token_revoked events;
-- only their SHA-256), a lease remembers the unbound token that took it (`lease_credential`),
-- and a receipt id is unique within its task, not across the store.

CREATE TABLE tokens (
    token_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    worker_id TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT,
    revoked_at TEXT
);
CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_at IS NULL;

ALTER TABLE tasks ADD COLUMN lease_credential TEXT;

CREATE TABLE receipts_by_task (
    run_id TEXT NOT NULL,
    receipt_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    status TEXT NOT NULL,
    receipt TEXT NOT NULL,
    score TEXT,
    hash TEXT NOT NULL,
    prev_hash TEXT,
    posted_at TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, receipt_id)
);
INSERT INTO receipts_by_task SELECT run_id, receipt_id, position, task_id, step_id, attempt,
    worker_id, status, receipt, score, hash, prev_hash, posted_at FROM receipts;
DROP TABLE receipts;
ALTER TABLE receipts_by_task RENAME TO receipts;
CREATE INDEX receipts_by_position ON receipts (run_id, position);
