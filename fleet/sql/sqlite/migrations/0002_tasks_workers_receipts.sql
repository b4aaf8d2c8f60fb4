-- 0002: the inbox (one row per task; each attempt re-enqueues the same row), workers, receipts
-- (hash-chained per run), and usage totals on runs.

CREATE TABLE tasks (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    map_index INTEGER,
    entry_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    held INTEGER NOT NULL,  -- 1 while the run is paused: not leasable
    spec TEXT NOT NULL,
    role TEXT,
    min_trust INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    enqueued_at TEXT NOT NULL,
    available_at TEXT NOT NULL,
    worker_id TEXT,
    fencing_token INTEGER NOT NULL,
    leased_at TEXT,
    lease_expires_at TEXT,
    expiries INTEGER NOT NULL,
    output TEXT,
    failure_kind TEXT,
    error TEXT,
    PRIMARY KEY (run_id, task_id)
);
CREATE INDEX tasks_by_id ON tasks (task_id);
CREATE INDEX tasks_inbox ON tasks (status, available_at, task_id);
CREATE INDEX tasks_leases ON tasks (status, lease_expires_at);

CREATE TABLE workers (
    worker_id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);

CREATE TABLE receipts (
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
    PRIMARY KEY (run_id, receipt_id)
);
CREATE INDEX receipts_by_id ON receipts (receipt_id);

ALTER TABLE runs ADD COLUMN usage TEXT NOT NULL DEFAULT '{}';
