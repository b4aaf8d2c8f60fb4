-- Queries of the FleetService: reads of projection state inside its transactions.
-- Portable SQL with :name parameters (see projections.sql).

-- name: run
SELECT run_id, name, status, seed, labels, spec, outputs, error, idempotency_key, created_at,
       updated_at, started_at, finished_at, usage
FROM runs WHERE run_id = :run_id;

-- name: run_by_idempotency_key
SELECT run_id FROM runs WHERE idempotency_key = :key ORDER BY created_at LIMIT 1;

-- name: steps
SELECT step_id, position, type, status, attempt, task_ids, output, failure_kind, error,
       started_at, finished_at
FROM steps WHERE run_id = :run_id ORDER BY position;

-- name: task
SELECT run_id, task_id, step_id, map_index, entry_id, attempt, status, spec, worker_id,
       fencing_token, leased_at, lease_expires_at, expiries, output, enqueued_at, available_at,
       resume, lease_credential
FROM tasks WHERE task_id = :task_id;

-- name: task_and_run
SELECT t.run_id, t.task_id, t.step_id, t.map_index, t.entry_id, t.attempt, t.status, t.spec,
       t.worker_id, t.fencing_token, t.leased_at, t.lease_expires_at, t.expiries, t.output,
       t.enqueued_at, t.available_at, t.resume, t.lease_credential, r.status
FROM tasks t JOIN runs r ON r.run_id = t.run_id
WHERE t.run_id = :run_id AND t.task_id = :task_id;

-- name: tasks_and_runs
-- the tasks of a batch of heartbeats with their runs' status, in one read ({tasks}: IN on task_id)
SELECT t.run_id, t.task_id, t.step_id, t.map_index, t.entry_id, t.attempt, t.status, t.spec,
       t.worker_id, t.fencing_token, t.leased_at, t.lease_expires_at, t.expiries, t.output,
       t.enqueued_at, t.available_at, t.resume, t.lease_credential, r.status
FROM tasks t JOIN runs r ON r.run_id = t.run_id
WHERE {tasks};

-- name: task_for_receipt
SELECT t.run_id, t.task_id, t.step_id, t.map_index, t.entry_id, t.attempt, t.status, t.spec,
       t.worker_id, t.fencing_token, t.leased_at, t.lease_expires_at, t.expiries, t.output,
       t.enqueued_at, t.available_at, t.resume, t.lease_credential,
       (SELECT COUNT(*) FROM receipts r WHERE r.run_id = t.run_id AND r.task_id = t.task_id
          AND r.receipt_id = :receipt_id)
FROM tasks t WHERE t.run_id = :run_id AND t.task_id = :task_id;

-- name: runs_locked
-- the runs of a batch, locked in one order ({runs} is a backend's IN condition on run_id)
SELECT run_id, status, seed FROM runs WHERE {runs} ORDER BY run_id;

-- name: tasks_for_receipts
-- the tasks of a batch, locked, each with the id of its current lease's capability token (for
-- the receipt's statement) ({tasks}: IN on task_id)
SELECT t.run_id, t.task_id, t.step_id, t.map_index, t.entry_id, t.attempt, t.status, t.spec,
       t.worker_id, t.fencing_token, t.leased_at, t.lease_expires_at, t.expiries, t.output,
       t.enqueued_at, t.available_at, t.resume, t.lease_credential,
       (SELECT c.capability_id FROM task_capabilities c
        WHERE c.task_id = t.task_id AND c.fencing_token = t.fencing_token)
FROM tasks t WHERE {tasks} ORDER BY t.run_id, t.task_id;

-- name: receipts_of_tasks
-- the receipt ids the tasks of a batch have ({runs} AND {tasks}: IN on run_id and on task_id;
-- the run ids let it use the primary key: no index leads with task_id alone)
SELECT task_id, receipt_id FROM receipts WHERE {runs} AND {tasks};

-- name: chain_heads
-- the last receipt hash of each run ({runs}: IN on run_id)
SELECT run_id, hash FROM receipts r
WHERE {runs} AND position = (SELECT MAX(position) FROM receipts m WHERE m.run_id = r.run_id);

-- name: step_tasks
SELECT run_id, task_id, step_id, map_index, entry_id, attempt, status, spec, worker_id,
       fencing_token, leased_at, lease_expires_at, expiries, output, enqueued_at, available_at,
       resume, lease_credential
FROM tasks WHERE run_id = :run_id AND step_id = :step_id ORDER BY map_index;

-- name: tasks_waiting
SELECT task_id, step_id, waiting FROM tasks
WHERE run_id = :run_id AND status = 'paused' ORDER BY task_id;

-- name: lease_candidates
-- Walks the inbox index (status, available_at, task_id) in order and stops at :limit;
-- tasks of paused runs are held, and cancelled or failed runs withdrew theirs.
SELECT t.run_id, t.task_id, t.step_id, t.map_index, t.entry_id, t.attempt, t.status, t.spec,
       t.worker_id, t.fencing_token, t.leased_at, t.lease_expires_at, t.expiries, t.output,
       t.enqueued_at, t.available_at, t.resume, t.lease_credential
FROM tasks t
WHERE t.status = 'queued' AND t.available_at <= :now AND t.held = 0
  AND (t.role IS NULL OR t.role = :role) AND t.min_trust <= :rank
  AND t.needs_key <= :has_key
ORDER BY t.available_at, t.task_id
LIMIT :limit;

-- name: expired_leases
SELECT task_id FROM tasks WHERE status = 'leased' AND lease_expires_at < :now
ORDER BY lease_expires_at LIMIT :limit;

-- name: worker
SELECT worker_id, spec, status, registered_at, last_seen_at FROM workers
WHERE worker_id = :worker_id;

-- name: workers
SELECT worker_id, spec, status, registered_at, last_seen_at FROM workers ORDER BY worker_id;

-- name: receipt
SELECT run_id, receipt, status, score FROM receipts
WHERE run_id = :run_id AND task_id = :task_id AND receipt_id = :receipt_id;

-- name: receipt_attestation
SELECT attestation FROM receipts
WHERE run_id = :run_id AND task_id = :task_id AND receipt_id = :receipt_id;

-- name: last_receipt_hash
SELECT hash FROM receipts WHERE run_id = :run_id ORDER BY position DESC LIMIT 1;

-- name: receipt_chain_head
SELECT position, hash FROM receipts WHERE run_id = :run_id ORDER BY position DESC LIMIT 1;

-- name: runs_page
SELECT run_id, name, status, seed, labels, created_at, updated_at FROM runs
WHERE (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:cursor AS TEXT) IS NULL OR run_id < :cursor)
ORDER BY run_id DESC LIMIT :limit;

-- name: artifact
SELECT digest, size_bytes, media_type, kind, name, path, created_at, run_id, step_id, task_id,
       labels
FROM artifacts WHERE digest = :digest;

-- name: map_outputs
SELECT map_index, output FROM tasks
WHERE run_id = :run_id AND step_id = :step_id ORDER BY map_index;

-- name: run_head
SELECT run_id, status, seed FROM runs WHERE run_id = :run_id;

-- name: run_spec
SELECT spec, trace FROM runs WHERE run_id = :run_id;

-- name: step_status
SELECT status, attempt FROM steps WHERE run_id = :run_id AND step_id = :step_id;

-- Scheduling reads (fleet/scheduling.py): counters the projections keep, one row each (or the
-- dependents of one step), so that a receipt's cost does not grow with the run.

-- name: run_unfinished_steps
SELECT unfinished_steps FROM run_progress WHERE run_id = :run_id;

-- name: runs_unfinished_steps
-- the runs of a batch of receipts ({runs}: IN on run_id)
SELECT run_id, unfinished_steps FROM run_progress WHERE {runs};

-- name: step_dependents
-- each dependent's row by its key (a join lets PostgreSQL's generic plan of a young table walk
-- every step of the run)
SELECT e.dependent_id,
       (SELECT s.status FROM steps s WHERE s.run_id = e.run_id AND s.step_id = e.dependent_id),
       (SELECT s.deps_open FROM steps s WHERE s.run_id = e.run_id AND s.step_id = e.dependent_id),
       (SELECT s.position FROM steps s WHERE s.run_id = e.run_id AND s.step_id = e.dependent_id)
FROM step_edges e WHERE e.run_id = :run_id AND e.step_id = :step_id;

-- name: map_counters
SELECT items_done, next_item FROM steps WHERE run_id = :run_id AND step_id = :step_id;

-- name: step_output
SELECT output FROM steps WHERE run_id = :run_id AND step_id = :step_id AND status = 'completed';

-- name: task_attempt
SELECT attempt FROM tasks WHERE run_id = :run_id AND task_id = :task_id;

-- name: step_statuses
SELECT step_id, status, attempt FROM steps WHERE run_id = :run_id ORDER BY position;

-- name: step_outputs
SELECT step_id, output FROM steps WHERE run_id = :run_id AND status = 'completed';

-- name: tokens
SELECT token_id, name, sha256, scopes, worker_id, created_at, created_by, revoked_at,
       trust_level, public_key, projects
FROM tokens ORDER BY created_at, token_id;

-- name: token_by_hash
SELECT token_id, name, sha256, scopes, worker_id, created_at, created_by, revoked_at,
       trust_level, public_key, projects
FROM tokens WHERE sha256 = :sha256;

-- name: token_by_name
SELECT token_id, name, sha256, scopes, worker_id, created_at, created_by, revoked_at,
       trust_level, public_key, projects
FROM tokens WHERE name = :name AND revoked_at IS NULL;

-- name: token_by_id
SELECT token_id, name, sha256, scopes, worker_id, created_at, created_by, revoked_at,
       trust_level, public_key, projects
FROM tokens WHERE token_id = :token_id;

-- name: run_leases
SELECT run_id, task_id, step_id, map_index, entry_id, attempt, status, spec, worker_id,
       fencing_token, leased_at, lease_expires_at, expiries, output, enqueued_at, available_at,
       resume, lease_credential
FROM tasks WHERE run_id = :run_id AND status = 'leased';

-- name: dead_letters
SELECT s.run_id, r.name, r.status, s.step_id, s.type, s.attempt, s.failure_kind, s.error,
       s.finished_at, s.task_ids
FROM steps s JOIN runs r ON r.run_id = s.run_id
WHERE s.status = 'failed'
  AND (CAST(:run_id AS TEXT) IS NULL OR s.run_id = :run_id)
  AND (CAST(:after_run AS TEXT) IS NULL OR s.run_id < :after_run
       OR (s.run_id = :after_run AND s.step_id < :after_step))
ORDER BY s.run_id DESC, s.step_id DESC LIMIT :limit;

-- name: task_spec
SELECT spec FROM tasks WHERE run_id = :run_id AND task_id = :task_id;

-- name: alert_last_fired
SELECT MAX(fired_at) FROM alerts WHERE policy = :policy AND subject = :subject;

-- name: alerts_due
SELECT alert_id, endpoint, payload, attempts, max_attempts FROM alerts
WHERE status = 'pending' AND next_attempt_at <= :now
ORDER BY next_attempt_at, alert_id LIMIT :limit;

-- name: alert_claim
INSERT INTO alert_claims (alert_id, owner, claimed_until) VALUES (:alert_id, :owner, :until)
ON CONFLICT (alert_id) DO UPDATE SET owner = excluded.owner, claimed_until = excluded.claimed_until
WHERE alert_claims.claimed_until < :now
RETURNING alert_id;

-- name: alert_unclaim
DELETE FROM alert_claims WHERE alert_id = :alert_id AND owner = :owner;

-- name: alert_state
SELECT status, attempts FROM alerts WHERE alert_id = :alert_id;

-- name: alerts_to_escalate
SELECT alert_id, event_class, subject, run_id, escalate_after_s, fired_at
FROM alerts
WHERE escalation = 0 AND escalate_after_s IS NOT NULL AND escalated_by IS NULL
ORDER BY fired_at;

-- name: alerts_page
SELECT alert_id, policy, event_class, subject, run_id, channel, status, attempts, max_attempts,
       next_attempt_at, last_error, escalation, fired_at, delivered_at
FROM alerts
WHERE (CAST(:status AS TEXT) IS NULL OR status = :status)
ORDER BY fired_at DESC, alert_id DESC LIMIT :limit;

-- name: run_status
SELECT status FROM runs WHERE run_id = :run_id;

-- name: worker_status
SELECT status FROM workers WHERE worker_id = :worker_id;

-- name: task_status
SELECT status FROM tasks WHERE task_id = :task_id;

-- name: alert_escalated_by
SELECT escalated_by, endpoint, payload FROM alerts WHERE alert_id = :alert_id;

-- name: capability_upsert
INSERT INTO task_capabilities (task_id, run_id, fencing_token, capability_id, token, expires_at)
VALUES (:task_id, :run_id, :fencing_token, :capability_id, :token, :expires_at)
ON CONFLICT (task_id) DO UPDATE SET
    run_id = excluded.run_id, fencing_token = excluded.fencing_token,
    capability_id = excluded.capability_id, token = excluded.token,
    expires_at = excluded.expires_at;

-- name: capability_expiry
UPDATE task_capabilities SET expires_at = :expires_at
WHERE task_id = :task_id AND fencing_token = :fencing_token;

-- name: capability_of_task
SELECT capability_id, token, fencing_token, expires_at, run_id FROM task_capabilities
WHERE task_id = :task_id;

-- name: capability_by_id
SELECT task_id, run_id FROM task_capabilities WHERE capability_id = :capability_id;

-- name: capability_revoked
SELECT capability_id FROM revoked_capabilities WHERE capability_id = :capability_id;

-- name: capabilities_revoked
SELECT capability_id, revoked_at, revoked_by, reason FROM revoked_capabilities
ORDER BY revoked_at, capability_id;

-- name: trust_key
SELECT private_key, public_key FROM trust_keys WHERE name = :name;

-- name: trust_key_insert
INSERT INTO trust_keys (name, private_key, public_key, created_at)
VALUES (:name, :private_key, :public_key, :at)
ON CONFLICT (name) DO NOTHING;

-- name: queued_tasks_of_run
SELECT step_id, spec, min_trust, needs_key, role FROM tasks
WHERE run_id = :run_id AND status = 'queued' AND held = 0 AND available_at <= :now
ORDER BY step_id, task_id LIMIT 200;

-- name: task_capability_revoked
SELECT c.capability_id FROM task_capabilities c
JOIN revoked_capabilities r ON r.capability_id = c.capability_id
WHERE c.task_id = :task_id;

-- name: tasks_capability_revoked
SELECT c.task_id, c.capability_id FROM task_capabilities c
JOIN revoked_capabilities r ON r.capability_id = c.capability_id
WHERE {tasks};

-- name: capabilities_of_run
SELECT task_id, capability_id, token, fencing_token, expires_at FROM task_capabilities
WHERE run_id = :run_id ORDER BY task_id;

-- name: capability_public_key
SELECT public_key FROM trust_keys WHERE name = :name;
