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
