-- 0008: dead letters (issue 23). Steps failed for good are listed across every run, newest run
-- first; a partial index keeps that a walk over the failed steps alone, however many steps the
-- store holds.
CREATE INDEX IF NOT EXISTS steps_dead_letters ON steps (run_id, step_id) WHERE status = 'failed';
