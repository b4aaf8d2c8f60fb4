-- 0002: the inbox (one row per task; each attempt re-enqueues the same row), workers, receipts
-- (hash-chained per run), and usage totals on runs.

CREATE TABLE tasks (
    run_id text NOT NULL,
    task_id text NOT NULL,
    step_id text NOT NULL,
    map_index integer,
    entry_id text NOT NULL,
    attempt integer NOT NULL,
    status text NOT NULL,
    held integer NOT NULL,  -- 1 while the run is paused: not leasable
    spec jsonb NOT NULL,
    role text,
    min_trust integer NOT NULL,
    priority integer NOT NULL,
    enqueued_at timestamptz NOT NULL,
    available_at timestamptz NOT NULL,
    worker_id text,
    fencing_token bigint NOT NULL,
    leased_at timestamptz,
    lease_expires_at timestamptz,
    expiries integer NOT NULL,
    output jsonb,
    failure_kind text,
    error text,
    PRIMARY KEY (run_id, task_id)
);
CREATE INDEX tasks_by_id ON tasks (task_id);
CREATE INDEX tasks_inbox ON tasks (status, available_at, task_id);
CREATE INDEX tasks_leases ON tasks (status, lease_expires_at);

CREATE TABLE workers (
    worker_id text PRIMARY KEY,
    spec jsonb NOT NULL,
    status text NOT NULL,
    registered_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);

CREATE TABLE receipts (
    run_id text NOT NULL,
    receipt_id text NOT NULL,
    position integer NOT NULL,
    task_id text NOT NULL,
    step_id text NOT NULL,
    attempt integer NOT NULL,
    worker_id text NOT NULL,
    status text NOT NULL,
    receipt jsonb NOT NULL,
    score jsonb,
    hash text NOT NULL,
    prev_hash text,
    posted_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, receipt_id)
);
CREATE INDEX receipts_by_id ON receipts (receipt_id);

ALTER TABLE runs ADD COLUMN usage jsonb NOT NULL DEFAULT '{}';
