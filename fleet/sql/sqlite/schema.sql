-- The full SQLite schema at head: the result of applying every file in migrations/.
-- tests/test_store_migrations.py proves the two agree.

CREATE TABLE events (
    seq INTEGER PRIMARY KEY,  -- the rowid: events are never deleted, so seqs only grow (0007)
    run_id TEXT NOT NULL,  -- '' for events that belong to no run (worker events)
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (run_id, event_id)
);
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

CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    seed INTEGER NOT NULL,
    labels TEXT NOT NULL,
    spec TEXT NOT NULL,
    outputs TEXT NOT NULL,
    error TEXT,
    idempotency_key TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    usage TEXT NOT NULL DEFAULT '{}',
    trace TEXT
);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_idempotency_key ON runs (idempotency_key);

CREATE TABLE steps (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    task_ids TEXT NOT NULL,
    output TEXT,
    failure_kind TEXT,
    error TEXT,
    started_at TEXT,
    finished_at TEXT,
    deps_open INTEGER NOT NULL DEFAULT 0,  -- dependencies not completed
    items_done INTEGER NOT NULL DEFAULT 0,  -- map: item tasks completed
    next_item INTEGER NOT NULL DEFAULT 0,  -- map: the next item to enqueue
    PRIMARY KEY (run_id, step_id)
);
-- Dead letters: the failed steps, walked without the others (0008).
CREATE INDEX steps_dead_letters ON steps (run_id, step_id) WHERE status = 'failed';

-- One row per dependency: step_id is needed by dependent_id (from the spec).
CREATE TABLE step_edges (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    dependent_id TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id, dependent_id)
);

-- Steps not completed, failed, skipped or cancelled: the run completes at 0.
CREATE TABLE run_progress (
    run_id TEXT PRIMARY KEY,
    unfinished_steps INTEGER NOT NULL
);

-- Content-addressed: one row per digest, whichever run stored it first.
CREATE TABLE artifacts (
    digest TEXT PRIMARY KEY,
    size_bytes INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT,
    path TEXT NOT NULL,
    created_at TEXT NOT NULL,
    run_id TEXT,
    step_id TEXT,
    task_id TEXT,
    labels TEXT NOT NULL
);

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
    waiting TEXT,
    resume TEXT,
    lease_credential TEXT,
    needs_key INTEGER NOT NULL DEFAULT 0,  -- 1: only a worker with a registered key (0008)
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
    attestation TEXT,  -- 0008
    PRIMARY KEY (run_id, task_id, receipt_id)
);
CREATE INDEX receipts_by_position ON receipts (run_id, position);

CREATE TABLE tokens (
    token_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    worker_id TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT,
    revoked_at TEXT,
    trust_level TEXT NOT NULL DEFAULT 'sandboxed',
    public_key TEXT
);
CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_at IS NULL;

-- The counters follow every change of a status, whichever statement makes it: a step finishing
-- or opening again moves run_progress.unfinished_steps, and its completing (or a completed step
-- opening again) moves deps_open of the steps that depend on it; a map item's task completing
-- (or enqueued again once completed) moves its step's items_done.
CREATE TRIGGER steps_counters AFTER UPDATE OF status ON steps
WHEN (OLD.status IN ('completed', 'failed', 'skipped', 'cancelled'))
         <> (NEW.status IN ('completed', 'failed', 'skipped', 'cancelled'))
     OR (OLD.status = 'completed') <> (NEW.status = 'completed')
BEGIN
    UPDATE run_progress
    SET unfinished_steps = unfinished_steps
        + (OLD.status IN ('completed', 'failed', 'skipped', 'cancelled'))
        - (NEW.status IN ('completed', 'failed', 'skipped', 'cancelled'))
    WHERE run_id = NEW.run_id
      AND (OLD.status IN ('completed', 'failed', 'skipped', 'cancelled'))
          <> (NEW.status IN ('completed', 'failed', 'skipped', 'cancelled'));
    UPDATE steps
    SET deps_open = deps_open + (OLD.status = 'completed') - (NEW.status = 'completed')
    WHERE run_id = NEW.run_id
      AND step_id IN (SELECT e.dependent_id FROM step_edges e
                      WHERE e.run_id = NEW.run_id AND e.step_id = NEW.step_id)
      AND (OLD.status = 'completed') <> (NEW.status = 'completed');
END;

CREATE TRIGGER tasks_counters AFTER UPDATE OF status ON tasks
WHEN NEW.map_index IS NOT NULL AND (OLD.status = 'completed') <> (NEW.status = 'completed')
BEGIN
    UPDATE steps
    SET items_done = items_done + (NEW.status = 'completed') - (OLD.status = 'completed')
    WHERE run_id = NEW.run_id AND step_id = NEW.step_id;
END;

-- The alert outbox and dispatchers' claims (0009).
CREATE TABLE alerts (
    alert_id TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    event_class TEXT NOT NULL,
    subject TEXT NOT NULL,
    run_id TEXT,
    channel TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,  -- pending, delivered, dead
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    next_attempt_at TEXT,
    last_error TEXT,
    escalation INTEGER NOT NULL,
    escalates TEXT,
    escalate_after_s REAL,
    escalated_by TEXT,
    fired_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX alerts_due ON alerts (status, next_attempt_at);
CREATE INDEX alerts_by_subject ON alerts (policy, subject, fired_at);

CREATE TABLE alert_claims (
    alert_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    claimed_until TEXT NOT NULL
);

-- authorization (0010): capability tokens per lease, revoked ids, the capability root key
CREATE TABLE task_capabilities (
    task_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    fencing_token INTEGER NOT NULL,
    capability_id TEXT NOT NULL,
    token TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX task_capabilities_by_id ON task_capabilities (capability_id);

CREATE TABLE revoked_capabilities (
    capability_id TEXT PRIMARY KEY,
    revoked_at TEXT NOT NULL,
    revoked_by TEXT,
    reason TEXT NOT NULL
);

CREATE TABLE trust_keys (
    name TEXT PRIMARY KEY,
    private_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- 0012: coordination (issue 22, docs/coordination.md): agents with callsigns, messages and their
-- inboxes (with full-text search), file reservations, locks, context checkpoints and cursors;
-- every row scoped by a project key. All of it is projected from the coordination events and
-- rebuilt by replay. A token may be limited to some projects (tokens.projects, a JSON list).

ALTER TABLE tokens ADD COLUMN projects TEXT;

CREATE TABLE coord_agents (
    agent_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    callsign TEXT NOT NULL,
    program TEXT NOT NULL,
    model TEXT NOT NULL,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);
CREATE UNIQUE INDEX coord_agents_callsign ON coord_agents (project, callsign)
    WHERE status = 'registered';

CREATE TABLE coord_messages (
    message_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,
    addressed TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    importance TEXT NOT NULL,
    ack_required INTEGER NOT NULL,
    thread_id TEXT NOT NULL,
    reply_to TEXT,
    sent_at TEXT NOT NULL,
    expires_at TEXT
);
CREATE INDEX coord_messages_thread ON coord_messages (project, thread_id, message_id);

CREATE VIRTUAL TABLE coord_messages_fts USING fts5(
    subject, body, content = 'coord_messages', content_rowid = 'rowid'
);
CREATE TRIGGER coord_messages_fts_insert AFTER INSERT ON coord_messages BEGIN
    INSERT INTO coord_messages_fts (rowid, subject, body) VALUES (NEW.rowid, NEW.subject, NEW.body);
END;
CREATE TRIGGER coord_messages_fts_delete AFTER DELETE ON coord_messages BEGIN
    INSERT INTO coord_messages_fts (coord_messages_fts, rowid, subject, body)
    VALUES ('delete', OLD.rowid, OLD.subject, OLD.body);
END;

CREATE TABLE coord_inbox (
    agent_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    project TEXT NOT NULL,
    importance TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    unread INTEGER NOT NULL,
    expires_at TEXT,
    read_at TEXT,
    acked_at TEXT,
    PRIMARY KEY (agent_id, message_id)
);
CREATE INDEX coord_inbox_order ON coord_inbox (agent_id, project, unread, message_id);

CREATE TABLE coord_reservations (
    reservation_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    callsign TEXT NOT NULL,
    pattern TEXT NOT NULL,
    prefix TEXT NOT NULL,
    exclusive INTEGER NOT NULL,
    reason TEXT NOT NULL,
    advisory INTEGER NOT NULL,
    granted_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    status TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX coord_reservations_active ON coord_reservations (project, prefix)
    WHERE status = 'active';

CREATE TABLE coord_locks (
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    callsign TEXT NOT NULL,
    fencing_token INTEGER NOT NULL,
    expires_at TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (project, name)
);

CREATE TABLE coord_checkpoints (
    checkpoint_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    state_digest TEXT,
    saved_at TEXT NOT NULL
);
CREATE INDEX coord_checkpoints_agent ON coord_checkpoints (agent_id, project, checkpoint_id);

CREATE TABLE coord_cursors (
    agent_id TEXT NOT NULL,
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    position TEXT NOT NULL,
    moved_at TEXT NOT NULL,
    PRIMARY KEY (agent_id, project, name)
);

-- 0013: run-level budgets (issue 23, docs/contracts.md "Budgets"): each run's budget in force
-- and its usage so far (counted as envelopes and receipts report it, not only at the end), and
-- the live usage of each attempt (one row per lease: a released attempt that runs again under a
-- new fencing token counts from 0). Projected from run_submitted, run_started, usage_reported,
-- budget_exceeded, run_budget_changed and the run_* status events; replay rebuilds both.
-- wall_deadline (the run's start + max_wall_s) is set while the run can still go over it: the
-- lease-expiry sweep finds the runs past it through the partial index, idle ones included.

CREATE TABLE run_budgets (
    run_id TEXT PRIMARY KEY,
    budget TEXT,
    started_at TEXT,
    wall_deadline TEXT,
    tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    cost_unknown INTEGER NOT NULL,
    exceeded TEXT
);
CREATE INDEX run_budgets_wall ON run_budgets (wall_deadline)
    WHERE wall_deadline IS NOT NULL AND exceeded IS NULL;

CREATE TABLE attempt_usage (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    fencing_token INTEGER NOT NULL,
    step_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost_usd REAL,
    model TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, fencing_token)
);
