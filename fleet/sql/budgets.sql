-- Run-level budgets (issue 23): the budgets projection's statements and the service's reads.
-- See fleet/projections/budgets.py and fleet/service/budgets.py.

-- name: budget_insert
INSERT INTO run_budgets (run_id, budget, started_at, wall_deadline, tokens, cost_usd,
                         cost_unknown, exceeded)
VALUES (:run_id, :budget, NULL, NULL, 0, 0, 0, NULL);

-- name: budget_row
SELECT budget, started_at FROM run_budgets WHERE run_id = :run_id;

-- name: budget_started
UPDATE run_budgets SET started_at = :started_at, wall_deadline = :wall_deadline
WHERE run_id = :run_id;

-- name: budget_set
INSERT INTO run_budgets (run_id, budget, started_at, wall_deadline, tokens, cost_usd,
                         cost_unknown, exceeded)
VALUES (:run_id, :budget, :started_at, :wall_deadline, 0, 0, 0, NULL)
ON CONFLICT (run_id) DO UPDATE SET budget = excluded.budget, started_at = excluded.started_at,
                                   wall_deadline = excluded.wall_deadline;

-- name: budget_reopened
UPDATE run_budgets SET exceeded = NULL, wall_deadline = :wall_deadline WHERE run_id = :run_id;

-- name: budget_ended
UPDATE run_budgets SET wall_deadline = NULL WHERE run_id = :run_id;

-- name: budget_exceeded
UPDATE run_budgets SET exceeded = :exceeded WHERE run_id = :run_id;

-- name: budget_totals
INSERT INTO run_budgets (run_id, budget, started_at, wall_deadline, tokens, cost_usd,
                         cost_unknown, exceeded)
VALUES (:run_id, NULL, NULL, NULL, :tokens, :cost_usd, :cost_unknown, NULL)
ON CONFLICT (run_id) DO UPDATE SET tokens = excluded.tokens, cost_usd = excluded.cost_usd,
                                   cost_unknown = excluded.cost_unknown;

-- name: attempt_usage_set
INSERT INTO attempt_usage (run_id, task_id, fencing_token, step_id, attempt, input_tokens,
                           output_tokens, total_tokens, cost_usd, model, updated_at)
VALUES (:run_id, :task_id, :fencing_token, :step_id, :attempt, :input_tokens, :output_tokens,
        :total_tokens, :cost_usd, :model, :at)
ON CONFLICT (run_id, task_id, fencing_token) DO UPDATE SET
    input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
    total_tokens = excluded.total_tokens, cost_usd = excluded.cost_usd, model = excluded.model,
    updated_at = excluded.updated_at;

-- name: budget_state
SELECT budget, started_at, tokens, cost_usd, cost_unknown, exceeded FROM run_budgets
WHERE run_id = :run_id;

-- name: budget_and_attempt
SELECT b.budget, b.started_at, b.tokens, b.cost_usd, b.cost_unknown, b.exceeded,
       a.input_tokens, a.output_tokens, a.total_tokens, a.cost_usd, a.model
FROM run_budgets AS b
LEFT JOIN attempt_usage AS a
    ON a.run_id = b.run_id AND a.task_id = :task_id AND a.fencing_token = :fencing_token
WHERE b.run_id = :run_id;

-- name: budget_exceeded_of
SELECT exceeded FROM run_budgets WHERE run_id = :run_id;

-- name: budget_wall_due
SELECT run_id FROM run_budgets
WHERE wall_deadline IS NOT NULL AND exceeded IS NULL AND wall_deadline < :now
ORDER BY wall_deadline LIMIT :limit;

-- name: budget_running_usage
SELECT a.task_id, a.step_id, a.attempt, t.worker_id, a.input_tokens, a.output_tokens,
       a.total_tokens, a.cost_usd, a.model
FROM attempt_usage AS a
JOIN tasks AS t ON t.run_id = a.run_id AND t.task_id = a.task_id
    AND t.fencing_token = a.fencing_token AND t.status = 'leased'
WHERE a.run_id = :run_id
ORDER BY a.task_id;

-- name: budget_leased_tasks
SELECT task_id FROM tasks WHERE run_id = :run_id AND status = 'leased' ORDER BY task_id;
