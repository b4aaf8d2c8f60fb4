-- Queries of the runs, steps and artifacts projections. Portable SQL (SQLite and PostgreSQL),
-- with :name parameters; JSON values are passed as JSON text and timestamps as RFC 3339 text.
-- Projections must be deterministic: every time comes from the event (:at), never from now().

-- name: run_insert
INSERT INTO runs (run_id, name, status, seed, labels, spec, outputs, error, idempotency_key,
                  created_at, updated_at, started_at, finished_at, trace)
VALUES (:run_id, :name, 'pending', :seed, :labels, :spec, :outputs, NULL, :idempotency_key,
        :at, :at, NULL, NULL, :trace);

-- name: step_insert
INSERT INTO steps (run_id, step_id, position, type, status, attempt, task_ids, output,
                   failure_kind, error, started_at, finished_at, deps_open, items_done,
                   next_item)
VALUES (:run_id, :step_id, :position, :type, 'pending', 0, :task_ids, NULL, NULL, NULL, NULL, NULL,
        :deps_open, 0, 0);

-- What the scheduler reads instead of scanning a run (see RunsProjection). The counters that
-- follow statuses (run_progress.unfinished_steps, steps.deps_open, steps.items_done) are kept
-- by triggers of the schema on every status change, whichever statement makes it.

-- name: step_edge_insert
INSERT INTO step_edges (run_id, step_id, dependent_id) VALUES (:run_id, :step_id, :dependent_id);

-- name: run_progress_insert
INSERT INTO run_progress (run_id, unfinished_steps) VALUES (:run_id, :unfinished_steps);

-- name: step_next_item
-- a map item enqueued: the next item is the one after it (at least)
UPDATE steps SET next_item = :next_item
WHERE run_id = :run_id AND step_id = :step_id AND next_item < :next_item;

-- name: run_set_status
UPDATE runs SET status = :status, updated_at = :at WHERE run_id = :run_id;

-- name: run_started
UPDATE runs SET status = 'running', started_at = COALESCE(started_at, :at), updated_at = :at
WHERE run_id = :run_id;

-- name: run_finished
UPDATE runs SET status = :status, outputs = :outputs, error = :error, finished_at = :at,
                updated_at = :at
WHERE run_id = :run_id;

-- name: step_reset
UPDATE steps SET status = 'pending', output = NULL, failure_kind = NULL, error = NULL,
                 finished_at = NULL, next_item = 0
WHERE run_id = :run_id AND step_id = :step_id;

-- name: run_reopened
UPDATE runs SET status = 'running', error = NULL, finished_at = NULL, updated_at = :at
WHERE run_id = :run_id;

-- name: step_set_status
UPDATE steps SET status = :status WHERE run_id = :run_id AND step_id = :step_id;

-- name: step_task_ids
SELECT task_ids FROM steps WHERE run_id = :run_id AND step_id = :step_id;

-- name: step_lease
SELECT status, attempt, task_ids FROM steps WHERE run_id = :run_id AND step_id = :step_id;

-- name: step_lease_single
-- a lease of a step's only task starts its attempt unless that attempt is running
UPDATE steps SET status = 'running', attempt = :attempt, task_ids = :task_ids,
                 started_at = COALESCE(started_at, :at)
WHERE run_id = :run_id AND step_id = :step_id AND (status <> 'running' OR attempt < :attempt);

-- name: step_started
UPDATE steps SET status = 'running', attempt = :attempt, task_ids = :task_ids,
                 started_at = COALESCE(started_at, :at)
WHERE run_id = :run_id AND step_id = :step_id;

-- name: step_finished
UPDATE steps SET status = :status, output = :output, failure_kind = :failure_kind,
                 error = :error, finished_at = :at
WHERE run_id = :run_id AND step_id = :step_id;

-- name: artifact_exists
SELECT 1 FROM artifacts WHERE digest = :digest;

-- name: artifact_insert
INSERT INTO artifacts (digest, size_bytes, media_type, kind, name, path, created_at, run_id,
                       step_id, task_id, labels)
VALUES (:digest, :size_bytes, :media_type, :kind, :name, :path, :created_at, :run_id, :step_id,
        :task_id, :labels)
ON CONFLICT (digest) DO NOTHING;

-- name: run_usage
SELECT usage FROM runs WHERE run_id = :run_id;

-- name: run_set_usage
UPDATE runs SET usage = :usage WHERE run_id = :run_id;

-- name: task_enqueue
INSERT INTO tasks (run_id, task_id, step_id, map_index, entry_id, attempt, status, held, spec,
                   role, min_trust, priority, enqueued_at, available_at, worker_id,
                   fencing_token, leased_at, lease_expires_at, expiries, output, failure_kind,
                   error, waiting, resume, lease_credential, needs_key)
VALUES (:run_id, :task_id, :step_id, :map_index, :entry_id, :attempt, 'queued',
        (SELECT CASE WHEN status = 'paused' THEN 1 ELSE 0 END FROM runs WHERE run_id = :run_id),
        :spec, :role, :min_trust, :priority, :at, :available_at, NULL, 0, NULL, NULL, 0, NULL,
        NULL, NULL, NULL, :resume, NULL, :needs_key)
ON CONFLICT (run_id, task_id) DO UPDATE SET
    entry_id = excluded.entry_id, attempt = excluded.attempt, status = 'queued',
    held = excluded.held,
    spec = excluded.spec, enqueued_at = excluded.enqueued_at,
    available_at = excluded.available_at, worker_id = NULL, leased_at = NULL,
    lease_expires_at = NULL, output = NULL, failure_kind = NULL, error = NULL,
    waiting = NULL, resume = excluded.resume, lease_credential = NULL;

-- name: task_leased
UPDATE tasks SET status = 'leased', worker_id = :worker_id, fencing_token = :fencing_token,
                 leased_at = :at, lease_expires_at = :expires_at, lease_credential = :credential
WHERE run_id = :run_id AND task_id = :task_id;

-- name: task_heartbeat
UPDATE tasks SET lease_expires_at = :expires_at WHERE run_id = :run_id AND task_id = :task_id;

-- name: task_lease_ended
UPDATE tasks SET status = :status, expiries = expiries + :expired, lease_expires_at = NULL
WHERE run_id = :run_id AND task_id = :task_id;

-- name: task_paused
UPDATE tasks SET status = 'paused', lease_expires_at = NULL, waiting = :waiting
WHERE run_id = :run_id AND task_id = :task_id;

-- name: task_failed
UPDATE tasks SET status = 'failed', failure_kind = :kind, error = :message, lease_expires_at = NULL
WHERE run_id = :run_id AND task_id = :task_id;

-- name: task_output
UPDATE tasks SET output = :output WHERE run_id = :run_id AND task_id = :task_id;

-- name: task_completed
UPDATE tasks SET status = 'completed', lease_expires_at = NULL
WHERE run_id = :run_id AND task_id = :task_id;

-- name: task_receipt
-- a recorded receipt: its output kept (also when rejected), the task completed if accepted
UPDATE tasks SET output = :output,
                 status = CASE WHEN :accepted = 1 THEN 'completed' ELSE status END,
                 lease_expires_at = CASE WHEN :accepted = 1 THEN NULL ELSE lease_expires_at END
WHERE run_id = :run_id AND task_id = :task_id;

-- name: tasks_hold
UPDATE tasks SET held = :held WHERE run_id = :run_id;

-- name: tasks_cancel_run
UPDATE tasks SET status = 'cancelled', lease_expires_at = NULL
WHERE run_id = :run_id AND status IN ('queued', 'leased', 'paused');

-- name: worker_register
INSERT INTO workers (worker_id, spec, status, registered_at, last_seen_at)
VALUES (:worker_id, :spec, 'idle', :at, :at)
ON CONFLICT (worker_id) DO UPDATE SET spec = excluded.spec, status = 'idle',
                                      last_seen_at = excluded.last_seen_at;

-- name: worker_seen
-- (a batch of leases sees its worker at one time: the row is written once, not once per task)
UPDATE workers SET status = :status, last_seen_at = :at
WHERE worker_id = :worker_id AND (status <> :status OR last_seen_at <> :at);

-- name: receipt_insert
INSERT INTO receipts (run_id, receipt_id, position, task_id, step_id, attempt, worker_id, status,
                      receipt, score, hash, prev_hash, posted_at, attestation)
SELECT :run_id, :receipt_id, COALESCE(MAX(position), 0) + 1, :task_id, :step_id, :attempt,
       :worker_id, :status, :receipt, :score, :hash, :prev_hash, :at, :attestation
FROM receipts WHERE run_id = :run_id;

-- name: receipt_verdict
UPDATE receipts SET status = :status, score = :score
WHERE run_id = :run_id AND task_id = :task_id AND receipt_id = :receipt_id;

-- name: token_insert
INSERT INTO tokens (token_id, name, sha256, scopes, worker_id, created_at, created_by, revoked_at,
                    trust_level, public_key, projects)
VALUES (:token_id, :name, :sha256, :scopes, :worker_id, :at, :by, NULL, :trust_level,
        :public_key, :projects);

-- name: token_revoke
UPDATE tokens SET revoked_at = :at WHERE token_id = :token_id;

-- name: alert_insert
INSERT INTO alerts (alert_id, policy, event_class, subject, run_id, channel, endpoint, payload,
                    status, attempts, max_attempts, next_attempt_at, last_error, escalation,
                    escalates, escalate_after_s, escalated_by, fired_at, delivered_at)
VALUES (:alert_id, :policy, :event_class, :subject, :run_id, :channel, :endpoint, :payload,
        'pending', 0, :max_attempts, :at, NULL, :escalation, :escalates, :escalate_after_s, NULL,
        :at, NULL);

-- name: alert_escalated
UPDATE alerts SET escalated_by = :alert_id WHERE alert_id = :escalates;

-- name: alert_delivered
UPDATE alerts SET status = 'delivered', attempts = :attempt, next_attempt_at = NULL,
                  delivered_at = :at
WHERE alert_id = :alert_id;

-- name: alert_failed
UPDATE alerts SET status = :status,
                  attempts = :attempt, next_attempt_at = :next_attempt_at, last_error = :error
WHERE alert_id = :alert_id;

-- name: capability_revoke
INSERT INTO revoked_capabilities (capability_id, revoked_at, revoked_by, reason)
VALUES (:capability_id, :at, :by, :reason)
ON CONFLICT (capability_id) DO NOTHING;
