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
