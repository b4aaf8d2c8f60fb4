-- The full PostgreSQL schema at head: the result of applying every file in migrations/.
-- tests/test_store_migrations.py proves the two agree.

CREATE TABLE events (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    run_id text NOT NULL,  -- '' for events that belong to no run (worker events)
    event_id text NOT NULL,
    type text NOT NULL,
    at timestamptz NOT NULL,
    data jsonb NOT NULL,
    PRIMARY KEY (run_id, seq),
    UNIQUE (run_id, event_id)
);
CREATE INDEX events_by_seq ON events (seq);
CREATE INDEX events_by_type ON events (type, seq);
CREATE INDEX events_by_time ON events (at);

CREATE FUNCTION fleetforge_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP;
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION fleetforge_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION fleetforge_refuse_change();

CREATE TABLE runs (
    run_id text PRIMARY KEY,
    name text NOT NULL,
    status text NOT NULL,
    seed bigint NOT NULL,
    labels jsonb NOT NULL,
    spec jsonb NOT NULL,
    outputs jsonb NOT NULL,
    error text,
    idempotency_key text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    usage jsonb NOT NULL DEFAULT '{}',
    trace jsonb
);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_idempotency_key ON runs (idempotency_key);

CREATE TABLE steps (
    run_id text NOT NULL,
    step_id text NOT NULL,
    position integer NOT NULL,
    type text NOT NULL,
    status text NOT NULL,
    attempt integer NOT NULL,
    task_ids jsonb NOT NULL,
    output jsonb,
    failure_kind text,
    error text,
    started_at timestamptz,
    finished_at timestamptz,
    deps_open integer NOT NULL DEFAULT 0,  -- dependencies not completed
    items_done integer NOT NULL DEFAULT 0,  -- map: item tasks completed
    next_item integer NOT NULL DEFAULT 0,  -- map: the next item to enqueue
    PRIMARY KEY (run_id, step_id)
);
-- Dead letters: the failed steps, walked without the others (0008).
CREATE INDEX steps_dead_letters ON steps (run_id, step_id) WHERE status = 'failed';

-- One row per dependency: step_id is needed by dependent_id (from the spec).
CREATE TABLE step_edges (
    run_id text NOT NULL,
    step_id text NOT NULL,
    dependent_id text NOT NULL,
    PRIMARY KEY (run_id, step_id, dependent_id)
);

-- Steps not completed, failed, skipped or cancelled: the run completes at 0.
CREATE TABLE run_progress (
    run_id text PRIMARY KEY,
    unfinished_steps integer NOT NULL
);

-- Content-addressed: one row per digest, whichever run stored it first.
CREATE TABLE artifacts (
    digest text PRIMARY KEY,
    size_bytes bigint NOT NULL,
    media_type text NOT NULL,
    kind text NOT NULL,
    name text,
    path text NOT NULL,
    created_at timestamptz NOT NULL,
    run_id text,
    step_id text,
    task_id text,
    labels jsonb NOT NULL
);

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
    waiting jsonb,
    resume jsonb,
    lease_credential text,
    needs_key integer NOT NULL DEFAULT 0,  -- 1: only a worker with a registered key (0008)
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
    attestation jsonb,  -- 0008
    PRIMARY KEY (run_id, task_id, receipt_id)
);
CREATE INDEX receipts_by_position ON receipts (run_id, position);

CREATE TABLE tokens (
    token_id text PRIMARY KEY,
    name text NOT NULL,
    sha256 text NOT NULL UNIQUE,
    scopes jsonb NOT NULL,
    worker_id text,
    created_at timestamptz NOT NULL,
    created_by text,
    revoked_at timestamptz,
    trust_level text NOT NULL DEFAULT 'sandboxed',
    public_key text
);
CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_at IS NULL;

-- The counters follow every change of a status, whichever statement makes it: a step finishing
-- or opening again moves run_progress.unfinished_steps, and its completing (or a completed step
-- opening again) moves deps_open of the steps that depend on it; a map item's task completing
-- (or enqueued again once completed) moves its step's items_done. Each row is updated by its
-- key: a join would leave PostgreSQL's generic plan on a young table free to walk a whole run.
CREATE FUNCTION fleetforge_step_counters() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_final boolean := OLD.status IN ('completed', 'failed', 'skipped', 'cancelled');
    is_final boolean := NEW.status IN ('completed', 'failed', 'skipped', 'cancelled');
    delta integer := CASE WHEN NEW.status = 'completed' THEN -1 ELSE 1 END;
    dependent text;
BEGIN
    IF was_final <> is_final THEN
        UPDATE run_progress
        SET unfinished_steps = unfinished_steps + CASE WHEN is_final THEN -1 ELSE 1 END
        WHERE run_id = NEW.run_id;
    END IF;
    IF (OLD.status = 'completed') <> (NEW.status = 'completed') THEN
        FOR dependent IN
            SELECT e.dependent_id FROM step_edges e
            WHERE e.run_id = NEW.run_id AND e.step_id = NEW.step_id
        LOOP
            UPDATE steps SET deps_open = deps_open + delta
            WHERE run_id = NEW.run_id AND step_id = dependent;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER steps_counters AFTER UPDATE OF status ON steps FOR EACH ROW
    WHEN ((OLD.status IN ('completed', 'failed', 'skipped', 'cancelled'))
              <> (NEW.status IN ('completed', 'failed', 'skipped', 'cancelled'))
          OR (OLD.status = 'completed') <> (NEW.status = 'completed'))
    EXECUTE FUNCTION fleetforge_step_counters();

CREATE FUNCTION fleetforge_task_counters() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE steps
    SET items_done = items_done + CASE WHEN NEW.status = 'completed' THEN 1 ELSE -1 END
    WHERE run_id = NEW.run_id AND step_id = NEW.step_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_counters AFTER UPDATE OF status ON tasks FOR EACH ROW
    WHEN (NEW.map_index IS NOT NULL AND (OLD.status = 'completed') <> (NEW.status = 'completed'))
    EXECUTE FUNCTION fleetforge_task_counters();

-- The alert outbox and dispatchers' claims (0009).
CREATE TABLE alerts (
    alert_id text PRIMARY KEY,
    policy text NOT NULL,
    event_class text NOT NULL,
    subject text NOT NULL,
    run_id text,
    channel text NOT NULL,
    endpoint jsonb NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL,  -- pending, delivered, dead
    attempts integer NOT NULL,
    max_attempts integer NOT NULL,
    next_attempt_at timestamptz,
    last_error text,
    escalation integer NOT NULL,
    escalates text,
    escalate_after_s double precision,
    escalated_by text,
    fired_at timestamptz NOT NULL,
    delivered_at timestamptz
);
CREATE INDEX alerts_due ON alerts (status, next_attempt_at);
CREATE INDEX alerts_by_subject ON alerts (policy, subject, fired_at);

CREATE TABLE alert_claims (
    alert_id text PRIMARY KEY,
    owner text NOT NULL,
    claimed_until timestamptz NOT NULL
);

-- authorization (0010): capability tokens per lease, revoked ids, the capability root key
CREATE TABLE task_capabilities (
    task_id text PRIMARY KEY,
    run_id text NOT NULL,
    fencing_token bigint NOT NULL,
    capability_id text NOT NULL,
    token text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX task_capabilities_by_id ON task_capabilities (capability_id);

CREATE TABLE revoked_capabilities (
    capability_id text PRIMARY KEY,
    revoked_at timestamptz NOT NULL,
    revoked_by text,
    reason text NOT NULL
);

CREATE TABLE trust_keys (
    name text PRIMARY KEY,
    private_key text NOT NULL,
    public_key text NOT NULL,
    created_at timestamptz NOT NULL
);

-- 0012: coordination (issue 22, docs/coordination.md): agents with callsigns, messages and their
-- inboxes (with full-text search: a generated tsvector), file reservations, locks, context
-- checkpoints and cursors; every row scoped by a project key. All of it is projected from the coordination events and
-- rebuilt by replay. A token may be limited to some projects (tokens.projects, a JSON list).

ALTER TABLE tokens ADD COLUMN projects jsonb;

CREATE TABLE coord_agents (
    agent_id text PRIMARY KEY,
    project text NOT NULL,
    callsign text NOT NULL,
    program text NOT NULL,
    model text NOT NULL,
    task text NOT NULL,
    status text NOT NULL,
    registered_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX coord_agents_callsign ON coord_agents (project, callsign)
    WHERE status = 'registered';

CREATE TABLE coord_messages (
    message_id text PRIMARY KEY,
    project text NOT NULL,
    agent_id text NOT NULL,
    sender text NOT NULL,
    recipients jsonb NOT NULL,
    addressed jsonb NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    importance text NOT NULL,
    ack_required integer NOT NULL,
    thread_id text NOT NULL,
    reply_to text,
    sent_at timestamptz NOT NULL,
    expires_at timestamptz,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', subject || ' ' || body)) STORED
);
CREATE INDEX coord_messages_search ON coord_messages USING gin (tsv);
CREATE INDEX coord_messages_thread ON coord_messages (project, thread_id, message_id);

CREATE TABLE coord_inbox (
    agent_id text NOT NULL,
    message_id text NOT NULL,
    project text NOT NULL,
    importance text NOT NULL,
    thread_id text NOT NULL,
    unread integer NOT NULL,
    expires_at timestamptz,
    read_at timestamptz,
    acked_at timestamptz,
    PRIMARY KEY (agent_id, message_id)
);
CREATE INDEX coord_inbox_order ON coord_inbox (agent_id, project, unread, message_id);

CREATE TABLE coord_reservations (
    reservation_id text PRIMARY KEY,
    project text NOT NULL,
    agent_id text NOT NULL,
    callsign text NOT NULL,
    pattern text NOT NULL,
    prefix text NOT NULL,
    exclusive integer NOT NULL,
    reason text NOT NULL,
    advisory integer NOT NULL,
    granted_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    status text NOT NULL,
    ended_at timestamptz
);
CREATE INDEX coord_reservations_active ON coord_reservations (project, prefix)
    WHERE status = 'active';

CREATE TABLE coord_locks (
    project text NOT NULL,
    name text NOT NULL,
    agent_id text NOT NULL,
    callsign text NOT NULL,
    fencing_token bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    status text NOT NULL,
    PRIMARY KEY (project, name)
);

CREATE TABLE coord_checkpoints (
    checkpoint_id text PRIMARY KEY,
    project text NOT NULL,
    agent_id text NOT NULL,
    reason text NOT NULL,
    body jsonb NOT NULL,
    state_digest text,
    saved_at timestamptz NOT NULL
);
CREATE INDEX coord_checkpoints_agent ON coord_checkpoints (agent_id, project, checkpoint_id);

CREATE TABLE coord_cursors (
    agent_id text NOT NULL,
    project text NOT NULL,
    name text NOT NULL,
    position text NOT NULL,
    moved_at timestamptz NOT NULL,
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
    run_id text PRIMARY KEY,
    budget jsonb,
    started_at timestamptz,
    wall_deadline timestamptz,
    tokens bigint NOT NULL,
    cost_usd double precision NOT NULL,
    cost_unknown integer NOT NULL,
    exceeded text
);
CREATE INDEX run_budgets_wall ON run_budgets (wall_deadline)
    WHERE wall_deadline IS NOT NULL AND exceeded IS NULL;

CREATE TABLE attempt_usage (
    run_id text NOT NULL,
    task_id text NOT NULL,
    fencing_token bigint NOT NULL,
    step_id text NOT NULL,
    attempt integer NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    total_tokens bigint NOT NULL,
    cost_usd double precision,
    model text,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, task_id, fencing_token)
);
