"""Every event the engine writes is a valid `run_event`, in exactly the form pydantic would dump.

The engine builds its events without pydantic (fleetforge.fleet._events); this story drives it
through every kind of event it writes, on both stores, and checks each stored event against the
published schema and against the model's own JSON dump, key order included.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from fleetforge import schemas
from fleetforge.contracts import FleetReceipt
from fleetforge.contracts.events import EVENT_TYPES, parse_event
from fleetforge.errors import ForbiddenError, LeaseLostError
from fleetforge.fleet.access import Caller
from fleetforge.fleet.alerts.config import AlertSettings, DispatchSettings
from fleetforge.fleet.alerts.dispatcher import AlertDispatcher
from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.projections.coordination import CoordinationProjection
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore
from fleetforge.fleet.tokens import TokenStore
from fleetforge.fleet.trust.policy import PolicySet

from .test_service import agent, receipt, spec

LOG_ALERT = {"events": ["run_completed"], "endpoints": [{"channel": "log"}]}
NOBODY = {"channel": "webhook", "url": "http://127.0.0.1:9/none"}
DEAD_HOOK = {"events": ["task_failed"], "endpoints": [NOBODY]}

# types only a person, an import or another component writes (not this story's engine calls)
NOT_FROM_THIS_STORY = {"step_started", "receipt_posted", "receipt_accepted", "receipt_rejected"}
# coordination events: tests/test_coord.py checks each the same way (schema, pydantic, replay)
NOT_FROM_THIS_STORY |= CoordinationProjection.handles


def _envelope(entry: Any, kind: str, seq: int, **fields: Any) -> dict[str, Any]:
    task = entry.task
    return {
        "kind": kind,
        "seq": seq,
        "at": "2026-12-01T00:00:00Z",
        "run_id": task.run_id,
        "step_id": task.step_id,
        "task_id": task.task_id,
        "seed": task.seed,
        "adapter": {"name": "t", "version": "1"},
        **fields,
    }


def _story(fleet: SyncFleetService, clock: ManualClock) -> None:
    fleet.register_worker({"worker_id": "w1", "trust_level": "privileged", "tools": ["*"]})
    fleet.worker_heartbeat("w1", status="busy")
    tokens = TokenStore(fleet.store)
    tokens.create("ops", ["admin"])
    tokens.revoke("ops", by="test")
    main = fleet.submit_run(
        spec(
            agent("plan", retry={"max_attempts": 3, "backoff_s": 1, "retry_on": ["transient"]}),
            {"id": "each", "type": "map", "depends_on": ["plan"], "max_parallel": 1,
             "over": {"from": "steps.plan.output#/items"}, "step": {"type": "tool", "tool": "t"}},
            agent("judge", "each", scorer={"kind": "regex", "pattern": "^OK"},
                  retry={"max_attempts": 1}),
            agent("after", "judge", optional=True),
            {"id": "ok", "type": "human", "depends_on": ["plan"], "prompt": "ship?"},
            agent("capped", optional=True, budget={"max_tokens": 5}),
            agent("uses_capped", "capped"),
            breakpoints=["ok"],
        )
    )  # fmt: skip
    # a fleet with a Cedar policy that forbids every lease writes policy_denied (once each)
    forbids = PolicySet("forbid(principal, action, resource);")
    denying = SyncFleetService(fleet.store, clock=clock, policy=forbids)
    assert denying.lease_task("w1", max_tasks=2) == []
    leased = {e.task.step_id: e for e in fleet.lease_task("w1", max_tasks=2, lease_seconds=10)}
    plan, capped = leased["plan"], leased["capped"]
    assert plan.lease is not None
    assert capped.lease is not None
    # a heartbeat that extends the lease (less than half left) writes task_heartbeat
    clock.advance(6)
    fleet.heartbeat(plan.task.task_id, plan.lease.fencing_token, lease_seconds=10)
    current = fleet.task_capability(plan.task.task_id)
    assert current is not None
    fleet.revoke_capability(current.token_id, reason="leaked", by="test")
    fleet.post_event(plan.task.task_id, plan.lease.fencing_token, _envelope(plan, "start", 0))
    fleet.post_event(
        plan.task.task_id,
        plan.lease.fencing_token,
        _envelope(plan, "checkpoint", 1, checkpoint_id="c1", state_digest="sha256:" + "0" * 64),
    )
    digest = "sha256:" + "1" * 64
    tool = {"type": "tool_called", "tool": "workspace.read", "arguments_digest": digest,
            "duration_ms": 3.5, "outcome": "ok"}  # fmt: skip
    fleet.post_event(
        plan.task.task_id,
        plan.lease.fencing_token,
        _envelope(plan, "emit", 2, event="custom", payload=tool),
    )
    refused = {"type": "tool_refused", "tool": "shell.run", "reason": "not granted"}
    fleet.post_event(
        plan.task.task_id,
        plan.lease.fencing_token,
        _envelope(plan, "emit", 3, event="custom", payload=refused),
    )
    fleet.put_artifact(b"notes", media_type="text/plain", run_id=main.run_id,
                       task_id=plan.task.task_id)  # fmt: skip
    # another worker's credential is refused and recorded
    stranger = Caller.as_worker("w2")
    with pytest.raises(ForbiddenError):
        fleet.heartbeat(plan.task.task_id, plan.lease.fencing_token, caller=stranger)
    fleet.fail_task(plan.task.task_id, plan.lease.fencing_token, "transient", "flaky")
    # over budget: rejected receipt, budget_exceeded, the step fails (not optional: run fails
    # later; the human step and the rest go on until then)
    usage = {"input_tokens": 9, "output_tokens": 0, "total_tokens": 9}
    fleet.complete_task(capped.task.task_id, capped.lease.fencing_token, "x", usage=usage)
    clock.advance(2)
    [plan] = fleet.lease_task("w1", lease_seconds=10)
    assert plan.lease is not None
    fleet.release_task(plan.task.task_id, plan.lease.fencing_token, reason="shutdown")
    [plan] = fleet.lease_task("w1", lease_seconds=10)
    assert plan.lease is not None
    fleet.pause_task(plan.task.task_id, plan.lease.fencing_token, reason="ask", waiting_for=["?"])
    fleet.resume_run(main.run_id, value="yes")
    [plan] = fleet.lease_task("w1", lease_seconds=10)
    fleet.post_receipt(receipt(plan, {"items": ["a", "b"]}))
    fleet.resume_run(main.run_id)  # the human step after plan is a breakpoint
    [item] = fleet.lease_task("w1", lease_seconds=10)
    # its lease lapses: task_lease_expired, and the item is enqueued again
    clock.advance(11)
    fleet.expire_leases(force=True)
    with pytest.raises(LeaseLostError):
        fleet.post_receipt(receipt(item, "late"))
    drained = 0
    while leased_now := fleet.lease_task("w1", lease_seconds=10):
        [entry] = leased_now
        output = "nope" if entry.task.step_id == "judge" else entry.task.step_id
        fleet.post_receipt(receipt(entry, output))
        drained += 1
    assert drained >= 2
    assert fleet.get_run(main.run_id).status == "failed"  # judge rejected "nope"
    clock.advance(1)
    assert fleet.mark_offline_workers(after_seconds=0) == ["w1"]
    done = fleet.submit_run(spec(agent("z"), alerts=LOG_ALERT))
    [z] = fleet.lease_task("w1")
    fleet.post_receipt(FleetReceipt.success(z, "z"))
    assert fleet.get_run(done.run_id).status == "completed"
    other = fleet.submit_run(spec(agent("a"), agent("b", "a")))
    [a] = fleet.lease_task("w1")
    fleet.post_receipt(FleetReceipt.success(a, 1))
    fleet.cancel_run(other.run_id, reason="enough")
    third = fleet.submit_run(
        spec({"id": "h", "type": "human", "prompt": "go?"}, agent("x", "h"), alerts=DEAD_HOOK)
    )
    fleet.approve_step(third.run_id, "h", comment="fine")
    [x] = fleet.lease_task("w1")
    fleet.fail_task(x.task.task_id, x.lease.fencing_token if x.lease else 1, "agent_error", "no")
    fleet.retry_step(third.run_id, "x")
    # a run over its budget (issue 23): usage_reported, budget_exceeded, its attempt given
    # back and the run paused; resumed with a raised budget (run_budget_changed)
    capped_run = fleet.submit_run(spec(agent("y"), budget={"max_tokens": 10, "on_exceed": "pause"}))
    [y] = [e for e in fleet.lease_task("w1", max_tasks=5) if e.task.run_id == capped_run.run_id]
    assert y.lease is not None
    used = {"input_tokens": 8, "output_tokens": 4, "model": "m"}
    fleet.post_event(y.task.task_id, y.lease.fencing_token,
                     _envelope(y, "emit", 0, event="message", usage=used))  # fmt: skip
    fleet.resume_run(capped_run.run_id, budget={"max_tokens": 100})
    # the alerts those runs raised: one delivered to the log, one webhook nobody answers
    settings = AlertSettings(dispatch=DispatchSettings(jitter=0))
    assert anyio.run(AlertDispatcher(fleet.store, settings=settings, clock=clock).run_once) == 2


@pytest.fixture
def story(store: EventStore, tmp_path: Path) -> EventStore:
    clock = ManualClock()
    fleet = SyncFleetService(store, clock=clock, artifacts=ArtifactStore(tmp_path / "cas"))
    _story(fleet, clock)
    return store


def test_every_engine_event_is_a_valid_run_event_as_pydantic_dumps_it(story: EventStore) -> None:
    seen: set[str] = set()
    for row in story.iter_rows():
        event = row.to_json()
        schemas.validate("run_event", event)
        model = parse_event(event)
        dumped = model.model_dump(mode="json")["data"]
        assert dumped == row.data, row.type
        if story.backend.name == "sqlite":  # (jsonb keeps its own key order)
            assert list(dumped) == list(row.data), row.type  # the same key order
        seen.add(row.type)
    missing = set(EVENT_TYPES) - seen - NOT_FROM_THIS_STORY
    assert not missing, f"the story writes no {sorted(missing)}"
    assert verify(story) == []


def test_a_task_cycle_writes_three_events_in_two_transactions(store: EventStore) -> None:
    fleet = SyncFleetService(store, clock=ManualClock())
    fleet.register_worker({"worker_id": "w1", "tools": ["*"]})
    run = fleet.submit_run(spec(agent("a")))
    before = store.info().latest_seq
    [entry] = fleet.lease_task("w1", lease_seconds=30)
    assert entry.lease is not None
    fleet.heartbeat(entry.task.task_id, entry.lease.fencing_token, lease_seconds=30)
    fleet.complete_task(entry.task.task_id, entry.lease.fencing_token, None)
    types = [e.type for e in store.query(run_id=run.run_id, after=before)]
    assert types == ["task_leased", "receipt_recorded", "step_completed", "run_completed"]
    [step] = fleet.get_run(run.run_id).steps
    assert (step.status, step.attempt, step.task_ids) == ("completed", 1, [entry.task.task_id])


def test_a_heartbeat_writes_only_when_it_extends_the_lease(store: EventStore) -> None:
    clock = ManualClock()
    fleet = SyncFleetService(store, clock=clock)
    fleet.register_worker({"worker_id": "w1", "tools": ["*"]})
    fleet.submit_run(spec(agent("a")))
    [entry] = fleet.lease_task("w1", lease_seconds=30)
    assert entry.lease is not None
    token, task_id = entry.lease.fencing_token, entry.task.task_id
    clock.advance(10)  # 20 s of 30 left: more than half
    lease = fleet.heartbeat(task_id, token, lease_seconds=30)
    assert lease.expires_at == entry.lease.expires_at
    assert store.count(types=["task_heartbeat"]) == 0
    clock.advance(6)  # 14 s left: less than half of 30
    lease = fleet.heartbeat(task_id, token, lease_seconds=30)
    assert lease.expires_at == clock.now() + timedelta(seconds=30)
    [beat] = store.query(types=["task_heartbeat"])
    assert beat.data.expires_at == lease.expires_at
    # asking for a longer lease extends at once (less than half of 300 s is left)
    longer = fleet.heartbeat(task_id, token, lease_seconds=300)
    assert longer.expires_at == clock.now() + timedelta(seconds=300)
    assert store.count(types=["task_heartbeat"]) == 2
    # a stale token is refused on the read-only path too
    with pytest.raises(LeaseLostError):
        fleet.heartbeat(task_id, token + 1, lease_seconds=300)
    assert verify(store) == []
