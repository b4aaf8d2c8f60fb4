-- 0006: what the scheduler reads instead of scanning a run on every receipt (flat cost for wide
-- runs). Kept in the same transaction as the events (by the runs and tasks projections, and by
-- the triggers below as statuses change), rebuilt by replay, and backfilled here from the rows
-- (and, for next_item, the events) already stored.
--   step_edges: one row per dependency (step_id is needed by dependent_id), from the spec.
--   run_progress.unfinished_steps: steps not completed, failed, skipped or cancelled.
--   steps.deps_open: the step's dependencies that have not completed.
--   steps.items_done: a map step's item tasks that are completed.
--   steps.next_item: the next item a map step enqueues (1 + the highest item enqueued since the
--   step last became pending: step_reset starts it again at 0).

ALTER TABLE steps ADD COLUMN deps_open INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN items_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN next_item INTEGER NOT NULL DEFAULT 0;

CREATE TABLE step_edges (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    dependent_id TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id, dependent_id)
);

CREATE TABLE run_progress (
    run_id TEXT PRIMARY KEY,
    unfinished_steps INTEGER NOT NULL
);

INSERT INTO step_edges (run_id, step_id, dependent_id)
SELECT DISTINCT r.run_id, d.value, json_extract(s.value, '$.id')
FROM runs r, json_each(r.spec, '$.steps') s, json_each(s.value, '$.depends_on') d;

INSERT INTO run_progress (run_id, unfinished_steps)
SELECT r.run_id, (SELECT COUNT(*) FROM steps s WHERE s.run_id = r.run_id
                  AND s.status NOT IN ('completed', 'failed', 'skipped', 'cancelled'))
FROM runs r;

UPDATE steps SET deps_open = (
    SELECT COUNT(*) FROM step_edges e JOIN steps d ON d.run_id = e.run_id AND d.step_id = e.step_id
    WHERE e.run_id = steps.run_id AND e.dependent_id = steps.step_id AND d.status <> 'completed');

UPDATE steps SET items_done = (
    SELECT COUNT(*) FROM tasks t
    WHERE t.run_id = steps.run_id AND t.step_id = steps.step_id AND t.map_index IS NOT NULL
      AND t.status = 'completed')
WHERE type = 'map';

UPDATE steps SET next_item = COALESCE((
    SELECT MAX(json_extract(e.data, '$.task.map_index')) + 1 FROM events e
    WHERE e.run_id = steps.run_id AND e.type = 'task_enqueued'
      AND json_extract(e.data, '$.task.step_id') = steps.step_id
      AND e.seq > COALESCE((
          SELECT MAX(r.seq) FROM events r
          WHERE r.run_id = steps.run_id AND r.type = 'step_reset'
            AND json_extract(r.data, '$.step_id') = steps.step_id), 0)), 0)
WHERE type = 'map';

-- The counters follow every change of a status, whichever statement makes it: a step finishing
-- or opening again moves run_progress.unfinished_steps, and its completing (or a completed step
-- opening again) moves deps_open of the steps that depend on it; a map item's task completing
-- (or enqueued again once completed) moves its step's items_done.
CREATE TRIGGER steps_counters AFTER UPDATE OF status ON steps
WHEN (OLD.status IN ('completed', 'failed', 'skipped', 'cancelled'))
         <> (NEW.status IN ('completed', 'failed', 'skipped', 'cancelled'))
     OR (OLD.status = 'completed') <> (NEW.status = 'completed')
BEGIN
    UPDATE run_progress
    SET unfinished_steps = unfinished_steps
        + (OLD.status IN ('completed', 'failed', 'skipped', 'cancelled'))
        - (NEW.status IN ('completed', 'failed', 'skipped', 'cancelled'))
    WHERE run_id = NEW.run_id
      AND (OLD.status IN ('completed', 'failed', 'skipped', 'cancelled'))
          <> (NEW.status IN ('completed', 'failed', 'skipped', 'cancelled'));
    UPDATE steps
    SET deps_open = deps_open + (OLD.status = 'completed') - (NEW.status = 'completed')
    WHERE run_id = NEW.run_id
      AND step_id IN (SELECT e.dependent_id FROM step_edges e
                      WHERE e.run_id = NEW.run_id AND e.step_id = NEW.step_id)
      AND (OLD.status = 'completed') <> (NEW.status = 'completed');
END;

CREATE TRIGGER tasks_counters AFTER UPDATE OF status ON tasks
WHEN NEW.map_index IS NOT NULL AND (OLD.status = 'completed') <> (NEW.status = 'completed')
BEGIN
    UPDATE steps
    SET items_done = items_done + (NEW.status = 'completed') - (OLD.status = 'completed')
    WHERE run_id = NEW.run_id AND step_id = NEW.step_id;
END;
