-- Queries of the runs, steps and artifacts projections. Portable SQL (SQLite and PostgreSQL),
-- with :name parameters; JSON values are passed as JSON text and timestamps as RFC 3339 text.
-- Projections must be deterministic: every time comes from the event (:at), never from now().

-- name: run_insert
INSERT INTO runs (run_id, name, status, seed, labels, spec, outputs, error, idempotency_key,
                  created_at, updated_at, started_at, finished_at)
VALUES (:run_id, :name, 'pending', :seed, :labels, :spec, :outputs, NULL, :idempotency_key,
        :at, :at, NULL, NULL);

-- name: step_insert
INSERT INTO steps (run_id, step_id, position, type, status, attempt, task_ids, output,
                   failure_kind, error, started_at, finished_at)
VALUES (:run_id, :step_id, :position, :type, 'pending', 0, :task_ids, NULL, NULL, NULL, NULL, NULL);

-- name: run_set_status
UPDATE runs SET status = :status, updated_at = :at WHERE run_id = :run_id;

-- name: run_started
UPDATE runs SET status = 'running', started_at = COALESCE(started_at, :at), updated_at = :at
WHERE run_id = :run_id;

-- name: run_finished
UPDATE runs SET status = :status, outputs = :outputs, error = :error, finished_at = :at,
                updated_at = :at
WHERE run_id = :run_id;

-- name: run_touch
UPDATE runs SET updated_at = :at WHERE run_id = :run_id;

-- name: step_set_status
UPDATE steps SET status = :status WHERE run_id = :run_id AND step_id = :step_id;

-- name: step_task_ids
SELECT task_ids FROM steps WHERE run_id = :run_id AND step_id = :step_id;

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
