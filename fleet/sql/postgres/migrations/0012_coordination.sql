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
