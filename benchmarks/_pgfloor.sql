-- The PostgreSQL write-path floor (benchmarks/bench_pgfloor.py): issue 20's item 3 taken to its
-- limit. One statement per worker call: the receipts of the tasks a worker holds (fencing in the
-- WHERE, the run's receipt chain compared and swapped, the events appended, every projection row
-- they imply written) and the lease of its next tasks (FOR UPDATE SKIP LOCKED), in one function
-- over a jsonb batch. Installed in a schema of its own on a store made by the product's own
-- migrations: the tables, triggers and indexes it writes are the real ones.
--
-- Each projection row below is what fleet/projections/*.py writes for the same event (the
-- benchmark checks it: replay --verify, and the receipt chains, after every run). Scope: what the
-- benchmark's runs need — single-task steps (no map items), no tools/labels/workspace needs, no
-- Cedar policy, success receipts with scorer "none", no budgets. What a wider floor would add is
-- in docs/contracts.md "PostgreSQL write-path floor".

CREATE SCHEMA IF NOT EXISTS fleetfloor;

-- p: {now, worker_id, role, rank, has_key, credential, expires_at, lease_next, cap_nonce,
--     lanes, lane (null: plain FIFO lease order), capabilities (rows deferred from the last lease),
--     event_ids: [...], groups: [{run_id, prev_hash, prev_pos, chain_head, final_event_id,
--     items: [{task_id, fencing_token, ev: [[event_id, type, data], ...]}]}]}
-- A group is one run's receipts in chain order; ev[0] is its receipt_recorded, ev[1] its
-- step_completed, both built by the engine in Python (fleet._events). Returns {done, conflicts,
-- heads, leased, ready}.
-- As the product's lease does (prefer_index_order): a young inbox has no statistics, and the
-- planner's guess is a bitmap scan that reads every queued task and sorts them; the ordered
-- walk of tasks_inbox stops at LIMIT.
CREATE OR REPLACE FUNCTION fleetfloor.cycle(p jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET enable_bitmapscan = off
AS $fn$
DECLARE
    v_now timestamptz := (p->>'now')::timestamptz;
    v_at text := p->>'now';
    v_worker text := p->>'worker_id';
    v_n integer := coalesce((p->>'lease_next')::integer, 0);
    g jsonb;
    v_run text;
    cur_hash text;
    cur_pos integer;
    n_held integer;
    n_items integer;
    left_steps integer;
    outs jsonb;
    evs jsonb := '[]'::jsonb;
    conflicts jsonb := '[]'::jsonb;
    heads jsonb := '{}'::jsonb;
    ready jsonb := '[]'::jsonb;
    leased jsonb := '[]'::jsonb;
    done integer := 0;
    pass integer;
BEGIN
    -- the capability tokens of this worker's previous lease, when it defers them to this call
    -- (the variant without a statement of their own)
    IF jsonb_array_length(coalesce(p->'capabilities', '[]'::jsonb)) > 0 THEN
        PERFORM fleetfloor.capabilities(p->'capabilities');
    END IF;
    -- ── receipts, one run at a time (runs locked in run_id order: the client sorts groups) ──
    FOR g IN SELECT value FROM jsonb_array_elements(coalesce(p->'groups', '[]'::jsonb)) LOOP
        v_run := g->>'run_id';
        -- the run's row serializes its receipt chain (as post_receipt does); held to COMMIT,
        -- never across a client round trip
        PERFORM 1 FROM runs WHERE run_id = v_run AND status = 'running' FOR UPDATE;
        IF NOT FOUND THEN
            conflicts := conflicts || jsonb_build_array(
                jsonb_build_object('run_id', v_run, 'reason', 'run_not_running'));
            CONTINUE;
        END IF;
        cur_hash := NULL;
        cur_pos := NULL;
        SELECT r.hash, r.position INTO cur_hash, cur_pos
        FROM receipts r WHERE r.run_id = v_run ORDER BY r.position DESC LIMIT 1;
        cur_pos := coalesce(cur_pos, 0);
        -- compare-and-swap on the chain head the client signed against
        IF cur_hash IS DISTINCT FROM (g->>'prev_hash') OR cur_pos <> (g->>'prev_pos')::integer THEN
            conflicts := conflicts || jsonb_build_array(jsonb_build_object(
                'run_id', v_run, 'reason', 'chain_head', 'hash', cur_hash, 'pos', cur_pos));
            CONTINUE;
        END IF;
        -- fencing: every task of the group still leased to this worker by this token, unexpired
        n_items := jsonb_array_length(g->'items');
        SELECT count(*) INTO n_held FROM (
            SELECT 1 FROM tasks t, jsonb_array_elements(g->'items') i
            WHERE t.run_id = v_run AND t.task_id = i->>'task_id' AND t.status = 'leased'
              AND t.fencing_token = (i->>'fencing_token')::bigint AND t.worker_id = v_worker
              AND t.lease_expires_at >= v_now
            FOR UPDATE OF t) x;
        IF n_held <> n_items THEN
            conflicts := conflicts || jsonb_build_array(jsonb_build_object(
                'run_id', v_run, 'reason', 'lease_lost', 'hash', cur_hash, 'pos', cur_pos,
                'tasks', (SELECT jsonb_agg(i->>'task_id') FROM jsonb_array_elements(g->'items') i
                          WHERE NOT EXISTS (
                              SELECT 1 FROM tasks t
                              WHERE t.run_id = v_run AND t.task_id = i->>'task_id'
                                AND t.status = 'leased' AND t.worker_id = v_worker
                                AND t.fencing_token = (i->>'fencing_token')::bigint
                                AND t.lease_expires_at >= v_now))));
            CONTINUE;
        END IF;
        -- receipt_recorded -> tasks (TasksProjection._receipt_recorded: task_receipt)
        UPDATE tasks t
        SET output = x.r->'result'->'output',
            status = CASE WHEN x.r->>'status' = 'accepted' THEN 'completed' ELSE t.status END,
            lease_expires_at = CASE WHEN x.r->>'status' = 'accepted' THEN NULL
                                    ELSE t.lease_expires_at END
        FROM (SELECT i->'ev'->0->2->'receipt' AS r FROM jsonb_array_elements(g->'items') i) x
        WHERE t.run_id = v_run AND t.task_id = x.r->>'task_id';
        -- receipt_recorded -> receipts (ReceiptsProjection: receipt_insert, chained positions)
        INSERT INTO receipts (run_id, receipt_id, position, task_id, step_id, attempt, worker_id,
                              status, receipt, score, hash, prev_hash, posted_at, attestation)
        SELECT v_run, x.r->>'receipt_id', cur_pos + x.n::integer, x.r->>'task_id',
               x.r->>'step_id', (x.r->>'attempt')::integer, x.r->>'worker_id', x.r->>'status',
               x.r || '{"status": "pending", "score": null}'::jsonb,
               NULLIF(x.r->'score', 'null'::jsonb), x.r->>'hash', x.r->>'prev_hash', v_now,
               NULLIF(x.d->'attestation', 'null'::jsonb)
        FROM (SELECT i->'ev'->0->2 AS d, i->'ev'->0->2->'receipt' AS r, n
              FROM jsonb_array_elements(g->'items') WITH ORDINALITY AS a(i, n)) x;
        -- step_completed -> steps (RunsProjection._step_finished); the schema's triggers move
        -- run_progress.unfinished_steps and the dependents' deps_open
        UPDATE steps s
        SET status = 'completed', output = NULLIF(x.d->'output', 'null'::jsonb),
            failure_kind = NULL, error = NULL, finished_at = v_now
        FROM (SELECT i->'ev'->1->2 AS d FROM jsonb_array_elements(g->'items') i) x
        WHERE s.run_id = v_run AND s.step_id = x.d->>'step_id';
        -- the next steps: dependents with no open dependency (by key, as step_dependents reads)
        ready := ready || coalesce((
            SELECT jsonb_agg(jsonb_build_array(v_run, e.dependent_id))
            FROM jsonb_array_elements(g->'items') i
            JOIN step_edges e ON e.run_id = v_run AND e.step_id = i->'ev'->1->2->>'step_id'
            WHERE (SELECT s.deps_open FROM steps s
                   WHERE s.run_id = v_run AND s.step_id = e.dependent_id) = 0
              AND (SELECT s.status FROM steps s
                   WHERE s.run_id = v_run AND s.step_id = e.dependent_id) = 'pending'),
            '[]'::jsonb);
        -- the group's events, in chain order
        evs := evs || (SELECT jsonb_agg(jsonb_build_array(v_run, e->>0, e->>1, v_at, e->2)
                                        ORDER BY a.n, b.m)
                       FROM jsonb_array_elements(g->'items') WITH ORDINALITY AS a(i, n),
                            jsonb_array_elements(a.i->'ev') WITH ORDINALITY AS b(e, m));
        heads := heads || jsonb_build_object(v_run, jsonb_build_array(
            g->'items'->(n_items - 1)->'ev'->0->2->'receipt'->>'hash', cur_pos + n_items));
        done := done + n_items;
        -- the run's end: no unfinished step left (StepsMixin._complete_run); the chain head
        -- statement was signed by the client for this very head, in case
        SELECT unfinished_steps INTO left_steps FROM run_progress WHERE run_id = v_run;
        IF left_steps = 0 THEN
            SELECT coalesce(jsonb_object_agg(step_id, coalesce(output, 'null'::jsonb)),
                            '{}'::jsonb)
            INTO outs FROM steps WHERE run_id = v_run AND status = 'completed';
            evs := evs || jsonb_build_array(jsonb_build_array(
                v_run, g->>'final_event_id', 'run_completed', v_at,
                jsonb_build_object('outputs', outs, 'chain_head', g->'chain_head')));
            UPDATE runs SET status = 'completed', outputs = outs, error = NULL,
                            finished_at = v_now, updated_at = v_now
            WHERE run_id = v_run;
        END IF;
    END LOOP;

    -- ── the next lease: set-based, FOR UPDATE SKIP LOCKED (lease_candidates + task_leased) ──
    -- with lanes (the run-affine variant), a worker first takes tasks of the runs of its lane
    -- (hashtext(run_id) mod lanes), then any: workers then rarely share a run's chain
    FOR pass IN 1..2 LOOP
        EXIT WHEN jsonb_array_length(leased) >= v_n OR (pass = 2 AND p->'lanes' = 'null'::jsonb);
        WITH c AS (
            SELECT t.run_id, t.task_id, t.step_id, t.entry_id, t.attempt,
                   t.fencing_token + 1 AS ft, t.spec, t.enqueued_at, t.available_at, t.resume
            FROM tasks t
            WHERE t.status = 'queued' AND t.available_at <= v_now AND t.held = 0
              AND (t.role IS NULL OR t.role = p->>'role') AND t.min_trust <= (p->>'rank')::integer
              AND t.needs_key <= (p->>'has_key')::integer
              AND t.map_index IS NULL
              -- what fleet/service/leasing.py's _matches checks in Python, for tasks that ask
              -- for nothing (the floor's scope)
              AND t.spec->'worker'->'tools' = '[]'::jsonb
              AND t.spec->'worker'->'labels' = '{}'::jsonb
              AND t.spec->'workspace' = 'null'::jsonb
              AND (pass = 2 OR p->'lanes' = 'null'::jsonb
                   OR abs(hashtext(t.run_id)) % (p->>'lanes')::integer = (p->>'lane')::integer)
            ORDER BY t.available_at, t.task_id
            LIMIT v_n - jsonb_array_length(leased)
            FOR UPDATE SKIP LOCKED
        ), u AS (
            UPDATE tasks t
            SET status = 'leased', worker_id = v_worker, fencing_token = c.ft, leased_at = v_now,
                lease_expires_at = (p->>'expires_at')::timestamptz,
                lease_credential = p->>'credential'
            FROM c WHERE t.run_id = c.run_id AND t.task_id = c.task_id
            RETURNING c.*
        )
        SELECT leased || coalesce(jsonb_agg(to_jsonb(u)), '[]'::jsonb) INTO leased FROM u;
    END LOOP;
    IF v_n > 0 THEN
        IF jsonb_array_length(leased) > 0 THEN
            -- task_leased -> steps (RunsProjection._leased: step_lease_single)
            UPDATE steps s
            SET status = 'running', attempt = (l->>'attempt')::integer,
                task_ids = jsonb_build_array(l->>'task_id'),
                started_at = coalesce(s.started_at, v_now)
            FROM jsonb_array_elements(leased) l
            WHERE s.run_id = l->>'run_id' AND s.step_id = l->>'step_id'
              AND (s.status <> 'running' OR s.attempt < (l->>'attempt')::integer);
            -- task_leased -> workers (WorkersProjection: worker_seen busy)
            UPDATE workers SET status = 'busy', last_seen_at = v_now WHERE worker_id = v_worker;
            -- the task_leased events, in (run, step, task) order; the capability id is fixed
            -- here (from the client's nonce) so the token minted after commit can carry it
            evs := evs || (
                SELECT jsonb_agg(jsonb_build_array(
                    l->>'run_id', p->'event_ids'->>(k::integer - 1), 'task_leased', v_at,
                    jsonb_build_object(
                        'policy', NULL, 'attempt', (l->'attempt'), 'step_id', l->'step_id',
                        'task_id', l->'task_id', 'entry_id', l->'entry_id',
                        'worker_id', v_worker, 'credential', p->'credential',
                        'expires_at', p->'expires_at',
                        'capability_id', CASE WHEN p->>'cap_nonce' IS NULL THEN NULL ELSE
                            'cap_' || substr(encode(sha256(convert_to(
                                (p->>'cap_nonce') || ':' || (l->>'task_id') || ':' || (l->>'ft'),
                                'UTF8')), 'hex'), 1, 32) END,
                        'fencing_token', l->'ft')) ORDER BY k)
                FROM (SELECT l, row_number() OVER (
                          ORDER BY l->>'run_id', l->>'step_id', l->>'task_id') AS k
                      FROM jsonb_array_elements(leased) l) a);
            -- the chain heads of the leased tasks' runs, for the client's next compare-and-swap
            heads := heads || coalesce((
                SELECT jsonb_object_agg(z.run_id, (
                    SELECT jsonb_build_array(r.hash, r.position) FROM receipts r
                    WHERE r.run_id = z.run_id ORDER BY r.position DESC LIMIT 1))
                FROM (SELECT DISTINCT l->>'run_id' AS run_id
                      FROM jsonb_array_elements(leased) l) z
                WHERE NOT heads ? z.run_id), '{}'::jsonb);
        END IF;
    END IF;

    -- ── the events, last (after every row lock), under the store's shared append lock ──
    IF jsonb_array_length(evs) > 0 THEN
        PERFORM pg_advisory_xact_lock_shared(5074542366556581746);
        INSERT INTO events (run_id, event_id, type, at, data)
        SELECT e->>0, e->>1, e->>2, (e->>3)::timestamptz, e->4
        FROM jsonb_array_elements(evs) WITH ORDINALITY AS x(e, n) ORDER BY n;
    END IF;
    RETURN jsonb_build_object('done', done, 'conflicts', conflicts, 'heads', heads,
                              'leased', leased, 'ready', ready);
END
$fn$;

-- The capability tokens minted after a lease committed (trust on): one statement, its own
-- transaction (fleet/sql/service.sql capability_upsert, set-based).
CREATE OR REPLACE FUNCTION fleetfloor.capabilities(p jsonb) RETURNS integer
LANGUAGE sql AS $fn$
    INSERT INTO task_capabilities (task_id, run_id, fencing_token, capability_id, token,
                                   expires_at)
    SELECT c->>0, c->>1, (c->>2)::bigint, c->>3, c->>4, (c->>5)::timestamptz
    FROM jsonb_array_elements(p) c
    ON CONFLICT (task_id) DO UPDATE SET
        run_id = excluded.run_id, fencing_token = excluded.fencing_token,
        capability_id = excluded.capability_id, token = excluded.token,
        expires_at = excluded.expires_at
    RETURNING 1
$fn$;
