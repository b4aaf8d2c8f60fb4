-- 0004: tasks that pause for input. `waiting`: what a paused task asks
-- ({reason, waiting_for, since}); `resume`: the value resume_run gave it ({value}).

ALTER TABLE tasks ADD COLUMN waiting TEXT;
ALTER TABLE tasks ADD COLUMN resume TEXT;
