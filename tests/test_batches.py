"""Batch operations on both stores: one transaction, each item all or nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetforge.contracts import FleetInboxEntry
from fleetforge.fleet.access import Caller
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore, open_store
from fleetforge.operations.batches import LeaseItem, TaskCompletion, TaskEnvelope

from .test_service import agent, spec


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fleet(store: EventStore, clock: ManualClock) -> SyncFleetService:
    service = SyncFleetService(store, clock=clock)
    service.register_worker({"worker_id": "w1", "tools": ["*"]})
    service.register_worker({"worker_id": "w2", "tools": ["*"]})
    return service


def envelope(
    entry: FleetInboxEntry, kind: str = "emit", seq: int = 1, **fields: Any
) -> dict[str, Any]:
    task = entry.task
    body = {"kind": kind, "seq": seq, "at": "2026-12-01T00:00:00Z", "run_id": task.run_id,
            "step_id": task.step_id, "task_id": task.task_id, "seed": task.seed,
            "adapter": {"name": "t", "version": "1"}}  # fmt: skip
    if kind == "emit":
        body |= {"event": "message", "payload": {"text": "hi"}}
    return body | fields


def token(entry: FleetInboxEntry) -> int:
    assert entry.lease is not None
    return entry.lease.fencing_token


def test_receipts_with_envelopes_and_the_next_lease_in_one_call(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(spec(agent("a"), agent("b"), agent("c"), agent("d"), agent("e")))
    a, b, c = fleet.lease_task("w1", max_tasks=3)
    items = [
        TaskCompletion(task_id=a.task.task_id, fencing_token=token(a), output="A",
                       envelopes=[envelope(a, "start", 0), envelope(a)]),
        # the second envelope is another task's: the whole item is undone, its first too
        TaskCompletion(task_id=b.task.task_id, fencing_token=token(b), output="B",
                       envelopes=[envelope(b, "start", 0), envelope(c)]),
        TaskCompletion(task_id=c.task.task_id, fencing_token=token(c) + 1, output="stale"),
    ]  # fmt: skip
    done = fleet.complete_tasks(items, worker_id="w1", lease_next=2, lease_seconds=60)
    assert [r.status if r else None for r in done.receipts] == ["accepted", None, None]
    assert [(f.index, f.error["code"]) for f in done.failures] == [
        (1, "ContractError"),
        (2, "LeaseLostError"),
    ]
    assert {e.task.step_id for e in done.leased} == {"d", "e"}
    events = fleet.store.query(run_id=run.run_id, types=["task_event"])
    assert [e.data.task_id for e in events] == [a.task.task_id] * 2
    steps = {s.step_id: s.status for s in fleet.get_run(run.run_id).steps}
    assert steps == {"a": "completed", "b": "running", "c": "running", "d": "running",
                     "e": "running"}  # fmt: skip
    # b and c are still held and can be finished; repeating a's receipt has one effect
    finish = [
        TaskCompletion(
            task_id=t.task.task_id, fencing_token=token(t), output=t.task.step_id.upper()
        )
        for t in (a, b, c, *done.leased)
    ]
    again = fleet.complete_tasks(finish, worker_id="w1")
    assert [r.status for r in again.receipts if r] == ["accepted"] * 5
    assert again.receipts[0] == done.receipts[0]
    assert fleet.get_run(run.run_id).status == "completed"
    assert fleet.store.count(types=["receipt_recorded"]) == 5
    assert verify(fleet.store) == []


def test_an_item_on_another_workers_lease_is_refused_and_recorded(
    fleet: SyncFleetService,
) -> None:
    fleet.submit_run(spec(agent("a"), agent("b")))
    [a] = fleet.lease_task("w1")
    [b] = fleet.lease_task("w2")
    w2 = Caller.as_worker("w2")
    done = fleet.complete_tasks(
        [TaskCompletion(task_id=a.task.task_id, fencing_token=token(a), output="mine?"),
         TaskCompletion(task_id=b.task.task_id, fencing_token=token(b), output="B")],
        caller=w2,
    )  # fmt: skip
    assert done.receipts[0] is None
    assert done.receipts[1] is not None
    assert done.failures[0].error["code"] == "ForbiddenError"
    [denied] = fleet.store.query(types=["access_denied"])
    assert (denied.data.what, denied.data.task_id) == ("post_receipt", a.task.task_id)
    assert verify(fleet.store) == []


def test_heartbeats_keep_extend_or_lose_each_lease(
    fleet: SyncFleetService, clock: ManualClock
) -> None:
    fleet.submit_run(
        spec(agent("a"), agent("b"), agent("c", optional=True, budget={"max_wall_s": 5}))
    )
    a, b, c = fleet.lease_task("w1", max_tasks=3, lease_seconds=10)
    clock.advance(6)  # 4 s of 10 left: each needs extending; c is past its wall-time budget
    items = [LeaseItem(task_id=t.task.task_id, fencing_token=token(t)) for t in (a, b, c)]
    items[1] = LeaseItem(task_id=b.task.task_id, fencing_token=token(b) + 1)  # stale
    kept = fleet.heartbeat_many(items, lease_seconds=10)
    assert kept.leases[0] is not None
    assert kept.leases[0].expires_at == clock.now() + timedelta(seconds=10)
    assert kept.leases[1] is None
    assert kept.leases[2] is None
    assert [(f.index, f.error["code"]) for f in kept.failures] == [
        (1, "LeaseLostError"),
        (2, "LeaseLostError"),
    ]
    assert "budget" in kept.failures[1].error["message"]
    assert fleet.store.count(types=["budget_exceeded"]) == 1  # c's failure is committed
    clock.advance(1)  # 9 of 10 s left: a read-only check writes nothing
    before = fleet.store.info().latest_seq
    again = fleet.heartbeat_many(items[:1], lease_seconds=10)
    # the same lease; the capability token renewed with the extension is not sent again
    assert kept.leases[0].capability is not None
    assert again.leases[0] == kept.leases[0].model_copy(update={"capability": None})
    assert fleet.store.info().latest_seq == before
    assert verify(fleet.store) == []


def test_envelopes_in_order_with_a_bad_one_refused_alone(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(spec(agent("a"), agent("b")))
    a, b = fleet.lease_task("w1", max_tasks=2)

    def item(entry: FleetInboxEntry, body: dict[str, Any]) -> TaskEnvelope:
        return TaskEnvelope(task_id=entry.task.task_id, fencing_token=token(entry), envelope=body)

    items = [
        item(a, envelope(a, "start", 0)),
        item(b, envelope(b, "start", 0)),
        item(a, {"kind": "nope"}),
        item(a, envelope(a)),
    ]
    posted = fleet.post_events(items)
    assert [p is None for p in posted.events] == [False, False, True, False]
    seqs = [p.seq for p in posted.events if p]
    assert seqs == sorted(seqs)
    assert posted.failures[0].index == 2
    stored = fleet.store.query(run_id=run.run_id, types=["task_event"])
    assert [e.seq for e in stored] == seqs


def test_a_batch_is_one_write_transaction(tmp_path: Path) -> None:
    # counted on SQLite, whose statements can be traced; PostgreSQL runs the same code path
    store = open_store(f"sqlite:///{tmp_path / 'one.db'}")
    fleet = SyncFleetService(store, clock=ManualClock())
    fleet.register_worker({"worker_id": "w1", "tools": ["*"]})
    fleet.submit_run(spec(*(agent(s) for s in "abcdef")))
    leased = fleet.lease_task("w1", max_tasks=3)
    statements: list[str] = []
    store.backend._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    try:
        fleet.complete_tasks(
            [TaskCompletion(task_id=t.task.task_id, fencing_token=token(t), output=1,
                            envelopes=[envelope(t, "start", 0)]) for t in leased],
            worker_id="w1",
            lease_next=3,
        )  # fmt: skip
    finally:
        store.backend._conn.set_trace_callback(None)  # type: ignore[attr-defined]
        store.close()
    assert sum(s.startswith("BEGIN IMMEDIATE") for s in statements) == 1
    assert sum(s == "COMMIT" for s in statements) == 1
    assert sum("FROM run_progress" in s for s in statements) == 1  # the run's end, once


def test_a_batch_finishes_its_runs_once_after_its_items(fleet: SyncFleetService) -> None:
    """Each run's end is checked once per batch (one read for all runs), after every item: a
    run whose last task is in the batch completes, one whose last task's item failed does not
    and completes later."""
    done_run = fleet.submit_run(spec(agent("a"), agent("b")))
    open_run = fleet.submit_run(spec(agent("a"), agent("b")))
    held = fleet.lease_task("w1", max_tasks=4)
    stale = next(t for t in held if t.task.run_id == open_run.run_id)
    items = [
        TaskCompletion(task_id=t.task.task_id, output=1,
                       fencing_token=token(t) + (1 if t is stale else 0))
        for t in held
    ]  # fmt: skip
    result = fleet.complete_tasks(items, worker_id="w1")
    assert [f.error["code"] for f in result.failures] == ["LeaseLostError"]
    assert fleet.get_run(done_run.run_id).status == "completed"
    assert fleet.get_run(open_run.run_id).status == "running"
    ends = fleet.store.query(types=["run_completed"])
    assert [e.run_id for e in ends] == [done_run.run_id]
    again = fleet.complete_tasks(
        [TaskCompletion(task_id=stale.task.task_id, fencing_token=token(stale), output=1)],
        worker_id="w1",
    )
    assert not again.failures
    assert fleet.get_run(open_run.run_id).status == "completed"
    assert verify(fleet.store) == []


def test_heartbeats_that_extend_nothing_are_one_read(tmp_path: Path) -> None:
    # counted on SQLite (traceable); on PostgreSQL each read is a round trip
    store = open_store(f"sqlite:///{tmp_path / 'one.db'}")
    fleet = SyncFleetService(store, clock=ManualClock())
    fleet.register_worker({"worker_id": "w1", "tools": ["*"]})
    fleet.submit_run(spec(*(agent(s) for s in "abcd")))
    leased = fleet.lease_task("w1", max_tasks=4, lease_seconds=60)
    statements: list[str] = []
    store.backend._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    try:
        kept = fleet.heartbeat_many(
            [LeaseItem(task_id=t.task.task_id, fencing_token=token(t)) for t in leased],
            lease_seconds=60,
        )
    finally:
        store.backend._conn.set_trace_callback(None)  # type: ignore[attr-defined]
        store.close()
    assert not kept.failures
    assert [lease is not None for lease in kept.leases] == [True] * 4
    assert sum("FROM tasks t JOIN runs r" in s for s in statements) == 1
    assert not any(s.startswith("BEGIN IMMEDIATE") for s in statements)  # nothing written


def test_items_may_be_plain_mappings_and_a_bad_one_names_its_field(
    fleet: SyncFleetService,
) -> None:
    from fleetforge.errors import ContractError

    fleet.submit_run(spec(agent("a"), agent("b")))
    a, b = fleet.lease_task("w1", max_tasks=2)
    kept = fleet.heartbeat_many([{"task_id": a.task.task_id, "fencing_token": token(a)}])
    assert not kept.failures
    posted = fleet.post_events(
        [
            {
                "task_id": a.task.task_id,
                "fencing_token": token(a),
                "envelope": envelope(a, "start", 0),
            }
        ]
    )
    assert not posted.failures
    with pytest.raises(ContractError) as bad:
        fleet.complete_tasks([{"task_id": b.task.task_id, "fencing_token": "x"}], worker_id="w1")
    assert [d.pointer for d in bad.value.details] == ["/items/0/fencing_token"]
    done = fleet.complete_tasks(
        [{"task_id": t.task.task_id, "fencing_token": token(t), "output": 1} for t in (a, b)],
        worker_id="w1",
    )
    assert not done.failures
    assert len(done.receipts) == 2


def test_batches_refuse_another_workers_leases_and_odd_json(fleet: SyncFleetService) -> None:
    """As an attacker would: w2's credential on w1's leases in every batch call, leasing for
    w1 as w2, and values outside the JSON domain; refused, and nothing but access_denied
    written."""
    from fleetforge.errors import ContractError, ForbiddenError

    fleet.submit_run(spec(agent("a"), agent("b")))
    [a] = fleet.lease_task("w1")
    w2 = Caller.as_worker("w2")
    before = fleet.store.query()[-1].seq
    mine = {"task_id": a.task.task_id, "fencing_token": token(a)}
    kept = fleet.heartbeat_many([mine], caller=w2)
    posted = fleet.post_events([mine | {"envelope": envelope(a, "start", 0)}], caller=w2)
    assert [f.error["code"] for f in (*kept.failures, *posted.failures)] == ["ForbiddenError"] * 2
    with pytest.raises(ForbiddenError):
        fleet.complete_tasks([], worker_id="w1", lease_next=1, caller=w2)
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    for output in (float("nan"), "a\x00b", deep):
        done = fleet.complete_tasks([mine | {"output": output}], worker_id="w1")
        assert done.failures[0].error["code"] == ContractError.__name__
    bad = envelope(a, "emit", 1, payload={"text": "\ud800"})
    posted = fleet.post_events([mine | {"envelope": bad}])
    assert posted.failures[0].error["code"] == "ContractError"
    written = fleet.store.query(after=before)
    assert {e.type for e in written} <= {"access_denied"}
    assert fleet.get_run(a.task.run_id).steps[0].status == "running"
    assert verify(fleet.store) == []


def test_only_envelopes_the_in_process_worker_checked_skip_the_engines_check(
    fleet: SyncFleetService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK Worker's in-process delivery checks each envelope (JSON value domain) just
    before complete_tasks and marks the item DomainChecked: the engine does not check those a
    second time. Every other item's envelopes are checked (a mapping, an object of the
    caller's own, a TaskCompletion)."""
    from dataclasses import dataclass, field

    from fleetforge._delivery import _Completion
    from fleetforge.contracts.envelope import parse_envelope

    @dataclass
    class Own:
        task_id: str
        fencing_token: int
        output: Any = None
        envelopes: list[Any] = field(default_factory=list)

    fleet.submit_run(spec(agent("a"), agent("b")))
    a, b = fleet.lease_task("w1", max_tasks=2)
    checked: list[str] = []
    original = SyncFleetService._envelope

    def counting(self: SyncFleetService, env: Any) -> Any:
        checked.append(env.task_id if hasattr(env, "task_id") else env["task_id"])
        return original(self, env)

    monkeypatch.setattr(SyncFleetService, "_envelope", counting)
    items = [
        _Completion(a.task.task_id, token(a), "A", None, [],
                    [parse_envelope(envelope(a, "start", 0))]),
        Own(b.task.task_id, token(b), "B", [parse_envelope(envelope(b, "start", 0))]),
    ]  # fmt: skip
    done = fleet.complete_tasks(items, worker_id="w1")
    assert [r.status for r in done.receipts if r] == ["accepted", "accepted"]
    assert checked == [b.task.task_id]
    assert fleet.store.count(types=["task_event"]) == 2
    assert verify(fleet.store) == []
