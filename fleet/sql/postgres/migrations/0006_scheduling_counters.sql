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

ALTER TABLE steps ADD COLUMN deps_open integer NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN items_done integer NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN next_item integer NOT NULL DEFAULT 0;

CREATE TABLE step_edges (
    run_id text NOT NULL,
    step_id text NOT NULL,
    dependent_id text NOT NULL,
    PRIMARY KEY (run_id, step_id, dependent_id)
);

CREATE TABLE run_progress (
    run_id text PRIMARY KEY,
    unfinished_steps integer NOT NULL
);

INSERT INTO step_edges (run_id, step_id, dependent_id)
SELECT DISTINCT r.run_id, d.dep, s.step ->> 'id'
FROM runs r
CROSS JOIN LATERAL jsonb_array_elements(r.spec -> 'steps') AS s(step)
CROSS JOIN LATERAL jsonb_array_elements_text(s.step -> 'depends_on') AS d(dep);

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
    SELECT MAX((e.data -> 'task' ->> 'map_index')::integer) + 1 FROM events e
    WHERE e.run_id = steps.run_id AND e.type = 'task_enqueued'
      AND e.data -> 'task' ->> 'step_id' = steps.step_id
      AND e.seq > COALESCE((
          SELECT MAX(r.seq) FROM events r
          WHERE r.run_id = steps.run_id AND r.type = 'step_reset'
            AND r.data ->> 'step_id' = steps.step_id), 0)), 0)
WHERE type = 'map';

-- The counters follow every change of a status, whichever statement makes it: a step finishing
-- or opening again moves run_progress.unfinished_steps, and its completing (or a completed step
-- opening again) moves deps_open of the steps that depend on it; a map item's task completing
-- (or enqueued again once completed) moves its step's items_done. Each row is updated by its
-- key: a join would leave PostgreSQL's generic plan on a young table free to walk a whole run.
CREATE FUNCTION fleetforge_step_counters() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_final boolean := OLD.status IN ('completed', 'failed', 'skipped', 'cancelled');
    is_final boolean := NEW.status IN ('completed', 'failed', 'skipped', 'cancelled');
    delta integer := CASE WHEN NEW.status = 'completed' THEN -1 ELSE 1 END;
    dependent text;
BEGIN
    IF was_final <> is_final THEN
        UPDATE run_progress
        SET unfinished_steps = unfinished_steps + CASE WHEN is_final THEN -1 ELSE 1 END
        WHERE run_id = NEW.run_id;
    END IF;
    IF (OLD.status = 'completed') <> (NEW.status = 'completed') THEN
        FOR dependent IN
            SELECT e.dependent_id FROM step_edges e
            WHERE e.run_id = NEW.run_id AND e.step_id = NEW.step_id
        LOOP
            UPDATE steps SET deps_open = deps_open + delta
            WHERE run_id = NEW.run_id AND step_id = dependent;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER steps_counters AFTER UPDATE OF status ON steps FOR EACH ROW
    WHEN ((OLD.status IN ('completed', 'failed', 'skipped', 'cancelled'))
              <> (NEW.status IN ('completed', 'failed', 'skipped', 'cancelled'))
          OR (OLD.status = 'completed') <> (NEW.status = 'completed'))
    EXECUTE FUNCTION fleetforge_step_counters();

CREATE FUNCTION fleetforge_task_counters() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE steps
    SET items_done = items_done + CASE WHEN NEW.status = 'completed' THEN 1 ELSE -1 END
    WHERE run_id = NEW.run_id AND step_id = NEW.step_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_counters AFTER UPDATE OF status ON tasks FOR EACH ROW
    WHEN (NEW.map_index IS NOT NULL AND (OLD.status = 'completed') <> (NEW.status = 'completed'))
    EXECUTE FUNCTION fleetforge_task_counters();
