-- Coordination (issue 22): the projection's writes and the service's reads, one SQL for both
-- backends (full-text search differs and lives in fleet/coord/messages.py).

-- name: agent_register
INSERT INTO coord_agents (agent_id, project, callsign, program, model, task, status,
                          registered_at, last_seen_at)
VALUES (:agent_id, :project, :callsign, :program, :model, :task, 'registered', :at, :at)
ON CONFLICT (agent_id) DO UPDATE SET project = excluded.project, callsign = excluded.callsign,
    program = excluded.program, model = excluded.model, task = excluded.task,
    status = 'registered', last_seen_at = excluded.last_seen_at;

-- name: agent_deregister
UPDATE coord_agents SET status = 'deregistered', last_seen_at = :at WHERE agent_id = :agent_id;

-- name: agent_seen
UPDATE coord_agents SET last_seen_at = :at WHERE agent_id = :agent_id;

-- name: message_insert
INSERT INTO coord_messages (message_id, project, agent_id, sender, recipients, addressed, subject,
                            body, importance, ack_required, thread_id, reply_to, sent_at,
                            expires_at)
VALUES (:message_id, :project, :agent_id, :sender, :recipients, :addressed, :subject, :body,
        :importance, :ack_required, :thread_id, :reply_to, :at, :expires_at);

-- name: inbox_insert
INSERT INTO coord_inbox (agent_id, message_id, project, importance, thread_id, unread,
                         expires_at, read_at, acked_at)
VALUES (:agent_id, :message_id, :project, :importance, :thread_id, 1, :expires_at, NULL, NULL);

-- name: inbox_read
UPDATE coord_inbox SET unread = 0, read_at = COALESCE(read_at, :at)
WHERE agent_id = :agent_id AND message_id = :message_id;

-- name: inbox_ack
UPDATE coord_inbox SET unread = 0, read_at = COALESCE(read_at, :at), acked_at = COALESCE(acked_at, :at)
WHERE agent_id = :agent_id AND message_id = :message_id;

-- name: reservation_insert
INSERT INTO coord_reservations (reservation_id, project, agent_id, callsign, pattern, prefix,
                                exclusive, reason, advisory, granted_at, expires_at, status,
                                ended_at)
VALUES (:reservation_id, :project, :agent_id, :callsign, :pattern, :prefix, :exclusive, :reason,
        :advisory, :at, :expires_at, 'active', NULL);

-- name: reservation_renew
UPDATE coord_reservations SET expires_at = :expires_at WHERE reservation_id = :reservation_id;

-- name: reservation_end
UPDATE coord_reservations SET status = :status, ended_at = :at
WHERE reservation_id = :reservation_id;

-- name: lock_acquire
INSERT INTO coord_locks (project, name, agent_id, callsign, fencing_token, expires_at, status)
VALUES (:project, :name, :agent_id, :callsign, :fencing_token, :expires_at, 'held')
ON CONFLICT (project, name) DO UPDATE SET agent_id = excluded.agent_id,
    callsign = excluded.callsign, fencing_token = excluded.fencing_token,
    expires_at = excluded.expires_at, status = 'held';

-- name: lock_renew
UPDATE coord_locks SET expires_at = :expires_at WHERE project = :project AND name = :name;

-- name: lock_end
UPDATE coord_locks SET status = :status WHERE project = :project AND name = :name;

-- name: checkpoint_insert
INSERT INTO coord_checkpoints (checkpoint_id, project, agent_id, reason, body, state_digest,
                               saved_at)
VALUES (:checkpoint_id, :project, :agent_id, :reason, :body, :state_digest, :at);

-- name: cursor_move
INSERT INTO coord_cursors (agent_id, project, name, position, moved_at)
VALUES (:agent_id, :project, :name, :position, :at)
ON CONFLICT (agent_id, project, name) DO UPDATE SET position = excluded.position,
    moved_at = excluded.moved_at;

-- name: agent_by_callsign
SELECT agent_id, project, callsign, program, model, task, status, registered_at, last_seen_at
FROM coord_agents WHERE project = :project AND callsign = :callsign AND status = 'registered';

-- name: agent_by_id
SELECT agent_id, project, callsign, program, model, task, status, registered_at, last_seen_at
FROM coord_agents WHERE agent_id = :agent_id;

-- name: agents
SELECT agent_id, project, callsign, program, model, task, status, registered_at, last_seen_at
FROM coord_agents WHERE project = :project ORDER BY callsign, agent_id;

-- name: agents_registered
SELECT agent_id, callsign FROM coord_agents
WHERE project = :project AND status = 'registered' ORDER BY callsign;

-- name: message
SELECT message_id, project, agent_id, sender, recipients, addressed, subject, body, importance,
       ack_required, thread_id, reply_to, sent_at, expires_at
FROM coord_messages WHERE message_id = :message_id AND project = :project;

-- name: inbox_entry
SELECT read_at, acked_at FROM coord_inbox WHERE agent_id = :agent_id AND message_id = :message_id;

-- name: thread
SELECT message_id, project, agent_id, sender, recipients, addressed, subject, body, importance,
       ack_required, thread_id, reply_to, sent_at, expires_at
FROM coord_messages WHERE project = :project AND thread_id = :thread_id
ORDER BY message_id LIMIT :limit;

-- name: reservations_active
SELECT reservation_id, project, agent_id, callsign, pattern, exclusive, reason, advisory,
       granted_at, expires_at, status
FROM coord_reservations WHERE project = :project AND status = 'active' ORDER BY reservation_id;

-- name: reservation
SELECT reservation_id, project, agent_id, callsign, pattern, exclusive, reason, advisory,
       granted_at, expires_at, status
FROM coord_reservations WHERE reservation_id = :reservation_id AND project = :project;

-- name: lock
SELECT project, name, agent_id, callsign, fencing_token, expires_at, status
FROM coord_locks WHERE project = :project AND name = :name;

-- name: checkpoint_latest
SELECT checkpoint_id, project, agent_id, reason, body, state_digest, saved_at
FROM coord_checkpoints WHERE agent_id = :agent_id AND project = :project
ORDER BY checkpoint_id DESC LIMIT 1;

-- name: cursor
SELECT position, moved_at FROM coord_cursors
WHERE agent_id = :agent_id AND project = :project AND name = :name;
