"""Wide runs, on both stores: a receipt's scheduling reads counters the projections keep (not the
whole run), map steps keep their order and their max_parallel, and the counters are exactly what
replay rebuilds and what migration 0006 backfills into an existing store."""

from __future__ import annotations

import os
import sqlite3
import statistics
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fleetforge.contracts import FleetInboxEntry
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventRow, EventStore, open_store

# A task's fate: ("ok", output) or ("fail", failure kind).
Outcome = Callable[[FleetInboxEntry], tuple[str, Any]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fleet(store: EventStore, clock: ManualClock) -> SyncFleetService:
    return _service(store, clock)


def _service(store: EventStore, clock: ManualClock) -> SyncFleetService:
    service = SyncFleetService(store, clock=clock)
    for role in ("any", "maps", "reset", "fan", "pause"):
        worker = {"worker_id": role, "tools": ["*"], "trust_level": "privileged"}
        service.register_worker(worker | ({"role": role} if role != "any" else {}))
    return service


def _tool(step_id: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "tool", "tool": "t", "depends_on": list(deps), **fields}


def _map(step_id: str, over: str, *deps: str, retry: Any = None, **fields: Any) -> dict[str, Any]:
    item = {"type": "tool", "tool": "t"} | ({"retry": retry} if retry else {})
    return {"id": step_id, "type": "map", "depends_on": list(deps), "over": {"from": over},
            "step": item, **fields}  # fmt: skip


def _spec(*steps: dict[str, Any], role: str | None = None, **fields: Any) -> dict[str, Any]:
    defaults = {"defaults": {"worker": {"role": role}}} if role else {}
    return {"name": "wide", "seed": 5, "steps": list(steps), **defaults, **fields}


def _item_output(entry: FleetInboxEntry) -> tuple[str, Any]:
    inputs = entry.task.inputs
    return "ok", ({"items": list(range(10))} if "item" not in inputs else inputs["item"] * 2)


def _settle(
    fleet: SyncFleetService, worker: str, outcome: Outcome, limit: int | None = None
) -> int:
    """Lease as ``worker`` and settle tasks until none is queued, or ``limit`` are settled."""
    settled = 0
    while limit is None or settled < limit:
        want = 100 if limit is None else min(100, limit - settled)
        leased = fleet.lease_task(worker, max_tasks=want, lease_seconds=600)
        if not leased:
            break
        for entry in leased:
            assert entry.lease is not None
            verdict, value = outcome(entry)
            token = entry.lease.fencing_token
            if verdict == "ok":
                fleet.complete_task(entry.task.task_id, token, value)
            else:
                fleet.fail_task(entry.task.task_id, token, value, "planned failure")
            settled += 1
    return settled


# ── a wide map ───────────────────────────────────────────────────────────────────────────────


# 10,000 items (the size) under `make stress`; in CI 1,000 keeps the file near 30 s
WIDE_MAP = 10_000 if os.environ.get("FLEETFORGE_STRESS") == "1" else 1_000


def test_a_wide_map_completes(fleet: SyncFleetService) -> None:
    width = WIDE_MAP
    run = fleet.submit_run(
        _spec(_tool("plan"), _map("each", "steps.plan.output#/items", "plan"), _tool("end", "each"))
    )

    def work(entry: FleetInboxEntry) -> tuple[str, Any]:
        step, inputs = entry.task.step_id, entry.task.inputs
        if step == "plan":
            return "ok", {"items": list(range(width))}
        return "ok", (inputs["index"] if step == "each" else "end")

    assert _settle(fleet, "any", work) == width + 2
    final = fleet.get_run(run.run_id)
    assert final.status == "completed"
    assert final.outputs["each"] == list(range(width))
    assert verify(fleet.store) == []


def test_max_parallel_enqueues_items_in_order_as_slots_free(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(
        _spec(_tool("plan"), _map("each", "steps.plan.output#/items", "plan", max_parallel=3))
    )
    _settle(fleet, "any", _item_output, limit=1)  # the plan
    finished = 0
    while True:
        leased = fleet.lease_task("any", max_tasks=10)
        if not leased:
            break
        assert len(leased) <= 3
        for entry in reversed(leased):  # out of order: the outputs still gather in order
            assert entry.lease is not None
            fleet.complete_task(entry.task.task_id, entry.lease.fencing_token, entry.task.inputs)
            finished += 1
    assert finished == 10
    enqueued = [e.data.task.map_index for e in fleet.store.query(types=["task_enqueued"])]
    assert enqueued == [None, *range(10)]
    in_flight = peak = 0
    for event in fleet.store.query(types=["task_enqueued", "receipt_recorded"]):
        in_flight += 1 if event.type == "task_enqueued" else -1  # every receipt is accepted
        peak = max(peak, in_flight)
    assert peak == 3
    final = fleet.get_run(run.run_id)
    assert [o["index"] for o in final.outputs["each"]] == list(range(10))
    assert verify(fleet.store) == []


def test_a_failed_map_step_retried_runs_every_item_again(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(
        _spec(_tool("plan"), _map("each", "steps.plan.output#/items", "plan", max_parallel=2))
    )

    def item_3_fails(entry: FleetInboxEntry) -> tuple[str, Any]:
        if entry.task.inputs.get("item") == 3:
            return "fail", "agent_error"
        return _item_output(entry)

    _settle(fleet, "any", item_3_fails)
    assert fleet.get_run(run.run_id).status == "failed"
    fleet.retry_step(run.run_id, "each")
    attempts: dict[int, int] = {}

    def record(entry: FleetInboxEntry) -> tuple[str, Any]:
        attempts[entry.task.inputs["index"]] = entry.attempt
        return _item_output(entry)

    assert _settle(fleet, "any", record) == 10
    assert set(attempts) == set(range(10))
    final = fleet.get_run(run.run_id)
    assert final.status == "completed"
    assert final.outputs["each"] == [i * 2 for i in range(10)]
    assert verify(fleet.store) == []


# ── fan-out and fan-in ───────────────────────────────────────────────────────────────────────


def test_a_join_waits_for_its_last_dependency(fleet: SyncFleetService) -> None:
    wide = [_tool(f"s{i}") for i in range(60)]
    join = _tool("join", *(s["id"] for s in wide), inputs={"last": {"from": "steps.s59.output"}})
    run = fleet.submit_run(_spec(*wide, join, _tool("tail", "join")))
    assert _settle(fleet, "any", lambda e: ("ok", e.task.step_id), limit=59) == 59
    pending = [s.status for s in fleet.get_run(run.run_id).steps if s.step_id in {"join", "tail"}]
    assert pending == ["pending", "pending"]
    seen: list[tuple[str, Any]] = []

    def work(entry: FleetInboxEntry) -> tuple[str, Any]:
        seen.append((entry.task.step_id, entry.task.inputs))
        return "ok", entry.task.step_id

    assert _settle(fleet, "any", work) == 3
    assert seen[1:] == [("join", {"last": "s59"}), ("tail", {})]
    assert fleet.get_run(run.run_id).status == "completed"
    assert verify(fleet.store) == []


def test_a_failed_optional_step_skips_what_follows_it_in_a_wide_run(
    fleet: SyncFleetService,
) -> None:
    wide = [_tool(f"s{i}") for i in range(40)]
    chain = [_tool("opt", optional=True), _tool("a", "opt"), _tool("b", "a", "s0"), _tool("c", "b")]
    run = fleet.submit_run(_spec(*wide, *chain))

    def opt_fails(entry: FleetInboxEntry) -> tuple[str, Any]:
        return ("fail", "agent_error") if entry.task.step_id == "opt" else ("ok", 1)

    assert _settle(fleet, "any", opt_fails) == 41
    final = fleet.get_run(run.run_id)
    statuses = {s.step_id: (s.status, s.error) for s in final.steps}
    assert statuses["opt"][0] == "failed"
    assert statuses["a"] == ("skipped", "dependency opt did not complete")
    assert statuses["b"] == ("skipped", "dependency a did not complete")
    assert statuses["c"] == ("skipped", "dependency b did not complete")
    assert final.status == "completed"
    assert verify(fleet.store) == []


def test_a_step_failing_as_it_becomes_ready_skips_its_dependents_once(
    fleet: SyncFleetService,
) -> None:
    bad_ref = {"x": {"from": "steps.gate.output#/missing"}}
    run = fleet.submit_run(
        _spec(
            _tool("after", "broken"),  # listed before what it depends on
            _tool("broken", "gate", inputs=bad_ref, optional=True),
            _tool("fine", "gate"),
            {"id": "gate", "type": "human", "prompt": "go?"},
        )
    )
    fleet.approve_step(run.run_id, "gate", by="me")  # every pending step looked at once
    final = fleet.get_run(run.run_id)
    statuses = {s.step_id: s.status for s in final.steps}
    assert statuses == {"after": "skipped", "broken": "failed", "gate": "completed",
                        "fine": "ready"}  # fmt: skip
    skipped = fleet.store.query(run_id=run.run_id, types=["step_skipped"])
    assert [e.data.step_id for e in skipped] == ["after"]
    assert _settle(fleet, "any", lambda e: ("ok", 1)) == 1
    assert fleet.get_run(run.run_id).status == "completed"
    assert verify(fleet.store) == []


# ── the counters: replay, rows and migration ─────────────────────────────────────────────────


def _mixed_runs(fleet: SyncFleetService) -> dict[str, str]:
    """Runs in many states, each with its own worker role: finished, failed, reset and part way
    through again, paused at a breakpoint, and half done."""
    runs: dict[str, str] = {}
    flaky = {"max_attempts": 2, "backoff_s": 0, "retry_on": ["transient"]}
    maps = _spec(
        _tool("plan"),
        _map("each", "steps.plan.output#/items", "plan", max_parallel=3, retry=flaky),
        _tool("opt", "plan", optional=True),
        _tool("after_opt", "opt"),
        _tool("join", "each", inputs={"all": {"from": "steps.each.output"}}),
        role="maps",
    )
    runs["maps"] = fleet.submit_run(maps).run_id

    def maps_work(entry: FleetInboxEntry) -> tuple[str, Any]:
        step, index = entry.task.step_id, entry.task.inputs.get("index")
        if step == "opt":
            return "fail", "agent_error"
        if step == "each" and index is not None and index % 4 == 1 and entry.attempt == 1:
            return "fail", "transient"
        return _item_output(entry)

    _settle(fleet, "maps", maps_work)

    reset = _spec(_tool("plan"), _map("each", "steps.plan.output#/items", "plan", max_parallel=2),
                  _tool("after", "each"), role="reset")  # fmt: skip
    runs["reset"] = fleet.submit_run(reset).run_id

    def item_5_fails(entry: FleetInboxEntry) -> tuple[str, Any]:
        if entry.task.inputs.get("item") == 5:
            return "fail", "agent_error"
        return _item_output(entry)

    _settle(fleet, "reset", item_5_fails)
    fleet.retry_step(runs["reset"], "each")
    _settle(fleet, "reset", _item_output, limit=3)  # part way through the items again

    fan = [_tool(f"s{i}") for i in range(30)]
    runs["fan"] = fleet.submit_run(
        _spec(*fan, _tool("join", *(s["id"] for s in fan)), _tool("tail", "join"), role="fan")
    ).run_id
    _settle(fleet, "fan", lambda e: ("ok", e.task.step_id), limit=12)

    paused = _spec(_tool("a"), _tool("b", "a"), _tool("c", "a"), breakpoints=["b"], role="pause")
    runs["pause"] = fleet.submit_run(paused).run_id
    _settle(fleet, "pause", lambda e: ("ok", e.task.step_id))
    return runs


_COUNTERS = """
SELECT s.run_id, s.step_id, s.deps_open, s.items_done, s.next_item,
    (SELECT COUNT(*) FROM step_edges e JOIN steps d ON d.run_id = e.run_id
         AND d.step_id = e.step_id
     WHERE e.run_id = s.run_id AND e.dependent_id = s.step_id AND d.status <> 'completed'),
    (SELECT COUNT(*) FROM tasks t WHERE t.run_id = s.run_id AND t.step_id = s.step_id
         AND t.map_index IS NOT NULL AND t.status = 'completed')
FROM steps s ORDER BY s.run_id, s.step_id
"""
_UNFINISHED = """
SELECT p.run_id, p.unfinished_steps,
    (SELECT COUNT(*) FROM steps s WHERE s.run_id = p.run_id
         AND s.status NOT IN ('completed', 'failed', 'skipped', 'cancelled'))
FROM run_progress p ORDER BY p.run_id
"""


def _check_counters(store: EventStore) -> None:
    """Each counter equals what it counts, computed from the rows."""
    with store.backend.read() as tx:
        for run_id, step_id, deps_open, items_done, _, open_deps, done in tx.fetchall(_COUNTERS):
            assert (deps_open, items_done) == (open_deps, done), (run_id, step_id)
        runs = tx.fetchall(_UNFINISHED)
        assert [(r[0], r[1]) for r in runs] == [(r[0], r[2]) for r in runs]
        assert len(runs) == int(tx.fetchone("SELECT COUNT(*) FROM runs")[0])  # type: ignore[index]


def test_projections_equal_replay_after_wide_runs(fleet: SyncFleetService) -> None:
    runs = _mixed_runs(fleet)
    states = {name: fleet.get_run(run_id) for name, run_id in runs.items()}
    assert states["maps"].status == "completed"
    assert states["maps"].outputs["each"] == [i * 2 for i in range(10)]
    assert {s.step_id: s.status for s in states["maps"].steps}["after_opt"] == "skipped"
    assert states["reset"].status == "running"
    assert states["pause"].status == "paused"
    _check_counters(fleet.store)
    assert verify(fleet.store) == []
    before = {t: fleet.store.table_rows(t) for t in ("steps", "step_edges", "run_progress")}
    fleet.store.rebuild()
    assert {t: fleet.store.table_rows(t) for t in before} == before
    # and they carry the runs on to the end
    for name in ("reset", "fan"):
        _settle(fleet, name, lambda e: _item_output(e) if "item" in e.task.inputs else ("ok", 1))
    fleet.resume_run(runs["pause"])
    _settle(fleet, "pause", lambda e: ("ok", e.task.step_id))
    assert {fleet.get_run(r).status for r in runs.values()} == {"completed"}
    _check_counters(fleet.store)
    assert verify(fleet.store) == []


def _before_0_2(rows: Iterable[EventRow]) -> list[dict[str, Any]]:
    """The events as the engine wrote them before 0.2: a lease without ``step_id``, followed by
    a ``step_started`` when it started its step's attempt; ``receipt_posted`` (the receipt as
    received: pending, no score) then ``receipt_accepted`` or ``receipt_rejected``."""
    running: dict[tuple[str | None, str], int] = {}  # steps running: their attempt
    events: list[dict[str, Any]] = []
    for row in rows:
        event = row.to_json()
        del event["seq"]
        data = event["data"]
        if row.type == "task_leased" and "step_id" in data:
            step_id = data.pop("step_id")
            events.append(event)
            if running.get((row.run_id, step_id), 0) < data["attempt"]:
                running[row.run_id, step_id] = data["attempt"]
                started = {"step_id": step_id, "task_id": data["task_id"],
                           "attempt": data["attempt"]}  # fmt: skip
                events.append(event | {"event_id": f"{row.event_id}s", "type": "step_started",
                                       "data": started})  # fmt: skip
            continue
        if row.type in {"step_completed", "step_failed", "step_skipped", "step_reset",
                        "step_ready", "breakpoint_hit", "task_paused"}:  # fmt: skip
            running.pop((row.run_id, data["step_id"]), None)
        if row.type == "receipt_recorded":
            receipt = data["receipt"]
            verdict = {"receipt_id": receipt["receipt_id"], "task_id": receipt["task_id"],
                       "score": receipt["score"], "hash": receipt["hash"]}  # fmt: skip
            posted = receipt | {"status": "pending", "score": None}
            events.append(event | {"type": "receipt_posted", "data": {"receipt": posted}})
            events.append(event | {"event_id": f"{row.event_id}v", "data": verdict,
                                   "type": f"receipt_{receipt['status']}"})  # fmt: skip
            continue
        events.append(event)
    return events


_SCHEDULING_ROWS = {
    "steps": "SELECT run_id, step_id, status, deps_open, items_done, next_item FROM steps",
    "tasks": "SELECT run_id, task_id, status, attempt FROM tasks",
    "step_edges": "SELECT run_id, step_id, dependent_id FROM step_edges",
    "run_progress": "SELECT run_id, unfinished_steps FROM run_progress",
}


def _scheduling_rows(store: EventStore) -> dict[str, list[tuple[Any, ...]]]:
    with store.backend.read() as tx:
        return {t: sorted(tuple(r) for r in tx.fetchall(q)) for t, q in _SCHEDULING_ROWS.items()}


def test_a_log_written_before_0_2_projects_the_same_counters(
    store: EventStore, clock: ManualClock, tmp_path: Path
) -> None:
    """step_started, receipt_posted and receipt_accepted/rejected (the task cycle's events
    before 0.2) move the counters as task_leased and receipt_recorded do, and the runs go on
    from such a log."""
    with open_store(f"sqlite:///{tmp_path / 'new.db'}") as new:
        runs = _mixed_runs(_service(new, clock))
        expected = _scheduling_rows(new)
        old = _before_0_2(new.iter_rows())
    assert {e["type"] for e in old} >= {"step_started", "receipt_posted", "receipt_accepted"}
    assert not {e["type"] for e in old} & {"receipt_recorded"}
    store.append_json(old)
    assert _scheduling_rows(store) == expected
    _check_counters(store)
    assert verify(store) == []
    fleet = _service(store, clock)
    for name in ("reset", "fan"):
        _settle(fleet, name, lambda e: _item_output(e) if "item" in e.task.inputs else ("ok", 1))
    fleet.resume_run(runs["pause"])
    _settle(fleet, "pause", lambda e: ("ok", e.task.step_id))
    assert {fleet.get_run(r).status for r in runs.values()} == {"completed"}
    _check_counters(store)
    assert verify(store) == []


# what the authorization migration (issue 21) added, undone too: it runs again after 0006
_UNDO_TRUST = [
    "DROP TABLE task_capabilities",
    "DROP TABLE revoked_capabilities",
    "DROP TABLE trust_keys",
    "ALTER TABLE tokens DROP COLUMN trust_level",
    "ALTER TABLE tokens DROP COLUMN public_key",
    "ALTER TABLE tasks DROP COLUMN needs_key",
]
_COORDINATION = [  # migration 0012 (issue 22), undone first
    *(f"DROP TABLE {table}" for table in ("coord_agents", "coord_messages", "coord_inbox",
      "coord_reservations", "coord_locks", "coord_checkpoints", "coord_cursors")),
    "ALTER TABLE tokens DROP COLUMN projects",
]  # fmt: skip
_BUDGETS = ["DROP TABLE attempt_usage", "DROP TABLE run_budgets"]  # run budgets (issue 23)
_DOWNGRADE = {
    "sqlite": [
        *_BUDGETS,
        *_COORDINATION,
        "DROP TABLE coord_messages_fts",
        "DROP TRIGGER steps_counters",
        "DROP TRIGGER tasks_counters",
        "DROP TABLE step_edges",
        "DROP TABLE run_progress",
        "ALTER TABLE steps DROP COLUMN deps_open",
        "ALTER TABLE steps DROP COLUMN items_done",
        "ALTER TABLE steps DROP COLUMN next_item",
        *_UNDO_TRUST,
        "ALTER TABLE receipts DROP COLUMN attestation",
        "DELETE FROM fleetforge_migrations WHERE version >= 6",
    ],
    "postgres": [
        *_BUDGETS,
        *_COORDINATION,
        "DROP TRIGGER steps_counters ON steps",
        "DROP TRIGGER tasks_counters ON tasks",
        "DROP FUNCTION fleetforge_step_counters()",
        "DROP FUNCTION fleetforge_task_counters()",
        "DROP TABLE step_edges",
        "DROP TABLE run_progress",
        "ALTER TABLE steps DROP COLUMN deps_open, DROP COLUMN items_done, DROP COLUMN next_item",
        *_UNDO_TRUST,
        "ALTER TABLE receipts DROP COLUMN attestation",
        "DELETE FROM fleetforge_migrations WHERE version >= 6",
    ],
}


def _downgrade(url: str) -> None:
    """Take a store back to schema version 5, as a store written before migration 0006."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            for statement in _DOWNGRADE["sqlite"]:
                conn.execute(statement)
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(url) as conn:
        for statement in _DOWNGRADE["postgres"]:
            conn.execute(statement)  # type: ignore[arg-type]


def test_an_existing_store_migrates_with_its_counters_backfilled(
    store_url: str, clock: ManualClock
) -> None:
    with open_store(store_url) as store:
        runs = _mixed_runs(_service(store, clock))
        expected = {t: store.table_rows(t) for t in ("steps", "step_edges", "run_progress")}
    _downgrade(store_url)
    with open_store(store_url) as store:
        with store.backend.read() as tx:
            assert [c for c in tx.columns("SELECT * FROM steps") if c == "deps_open"] == [
                "deps_open"
            ]
        assert {t: store.table_rows(t) for t in expected} == expected
        assert verify(store) == []
        fleet = _service(store, clock)  # a new service: nothing cached
        for name in ("reset", "fan"):
            _settle(
                fleet, name, lambda e: _item_output(e) if "item" in e.task.inputs else ("ok", 1)
            )
        fleet.resume_run(runs["pause"])
        _settle(fleet, "pause", lambda e: ("ok", e.task.step_id))
        assert {fleet.get_run(r).status for r in runs.values()} == {"completed"}
        _check_counters(store)
        assert verify(store) == []


# ── the work of one receipt does not grow with the run ───────────────────────────────────────


def _tuples_read(tx: Any) -> int:
    row = tx.fetchone(
        "SELECT COALESCE(SUM(seq_tup_read), 0) + COALESCE(SUM(idx_tup_fetch), 0) "
        "FROM pg_stat_xact_user_tables"
    )
    return int(row[0])


@contextmanager
def _work_meter(store: EventStore, samples: list[int]) -> Iterator[None]:
    """Record the database work of every write transaction: SQLite's virtual machine steps (in
    units of 100), PostgreSQL's tuples read (``pg_stat_xact_user_tables``)."""
    write = store.backend.write

    @contextmanager
    def metered(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with write(*args, **kwargs) as tx:
            if store.backend.name == "sqlite":
                steps = [0]

                def tick() -> int:
                    steps[0] += 1
                    return 0

                conn: sqlite3.Connection = tx._conn  # the transaction's own connection
                conn.set_progress_handler(tick, 100)
                try:
                    yield tx
                finally:
                    conn.set_progress_handler(None, 0)
                samples.append(steps[0])
            else:  # the view counts what is not yet reported: this transaction's = after - before
                before = _tuples_read(tx)
                yield tx
                samples.append(_tuples_read(tx) - before)

    # without group commit the store calls the write it bound when opened (PostgreSQL's default)
    grouped = store.group is not None
    if grouped:
        store.backend.write = metered  # type: ignore[method-assign]
    else:
        store._write = metered
    try:
        yield
    finally:
        if grouped:
            del store.backend.write  # type: ignore[method-assign]
        else:
            store._write = write


def _receipt_work(fleet: SyncFleetService, spec: dict[str, Any], output: Outcome) -> float:
    """The median database work of the receipts of 10 tasks from the middle of a run of
    ``spec`` (whose worker role is its own: what it leaves queued is no other run's)."""
    role = spec["defaults"]["worker"]["role"]
    fleet.register_worker({"worker_id": role, "role": role, "tools": ["*"]})
    run = fleet.submit_run(spec)
    _settle(fleet, role, output, limit=20)
    leased = fleet.lease_task(role, max_tasks=10, lease_seconds=600)
    assert len(leased) == 10
    samples: list[int] = []
    with _work_meter(fleet.store, samples):
        for entry in leased:
            assert entry.lease is not None
            fleet.complete_task(entry.task.task_id, entry.lease.fencing_token, output(entry)[1])
    assert fleet.get_run(run.run_id).status == "running"
    return statistics.median(samples)


@pytest.mark.parametrize("shape", ["map", "map_max_parallel", "flat", "fan_in"])
def test_a_receipts_database_work_does_not_grow_with_the_run(
    fleet: SyncFleetService, shape: str
) -> None:
    """Not a timing: what the database does for one receipt, in a run 20 times wider."""

    def spec(width: int) -> dict[str, Any]:
        if shape.startswith("map"):
            plan = _tool("plan", inputs={"n": {"from": "inputs.n"}})
            slots = {"max_parallel": 10} if shape == "map_max_parallel" else {}
            each = _map("each", "steps.plan.output#/items", "plan", **slots)
            return _spec(plan, each, inputs={"n": width}, role=f"{shape}{width}")
        wide = [_tool(f"s{i}") for i in range(width)]
        join = [_tool("join", *(s["id"] for s in wide))] if shape == "fan_in" else []
        return _spec(*wide, *join, role=f"{shape}{width}")

    def output(entry: FleetInboxEntry) -> tuple[str, Any]:
        if entry.task.step_id == "plan":
            return "ok", {"items": list(range(entry.task.inputs["n"]))}
        return "ok", entry.task.task_id

    work = {width: _receipt_work(fleet, spec(width), output) for width in (50, 1000)}
    assert work[1000] <= 1.5 * work[50], work
