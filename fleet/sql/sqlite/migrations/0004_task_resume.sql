-- 0004: the value a task that paused for input continues with (resume_run's value),
-- as {"value": ...}; NULL when it was never paused and resumed.

ALTER TABLE tasks ADD COLUMN resume TEXT;
