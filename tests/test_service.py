"""FleetService behaviour on both stores: scheduling, leases, receipts, retries, budgets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fleetforge.contracts import FleetInboxEntry, FleetReceipt
from fleetforge.errors import (
    AlreadyCompletedError,
    ConflictError,
    ContractError,
    ForbiddenError,
    LeaseLostError,
    NotFoundError,
    RunCancelledError,
    StoreError,
)
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.replay import verify
from fleetforge.fleet.scoring import register_scorer, unregister_scorer
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fleet(store: EventStore, clock: ManualClock) -> SyncFleetService:
    service = SyncFleetService(store, clock=clock)
    service.register_worker({"worker_id": "w1", "trust_level": "privileged", "tools": ["*"]})
    return service


def receipt(entry: FleetInboxEntry, output: Any = None, **fields: Any) -> FleetReceipt:
    """A success receipt for a leased entry, with any field overridden (to make bad ones)."""
    base = FleetReceipt.success(entry, output).model_dump(mode="json")
    return FleetReceipt.model_validate(base | fields)


def drain(
    fleet: SyncFleetService, work: Callable[[FleetInboxEntry], Any], limit: int = 100
) -> list[str]:
    """Lease and complete tasks until none is left; return the step ids in the order done."""
    done = []
    for _ in range(limit):
        leased = fleet.lease_task("w1", max_tasks=1)
        if not leased:
            return done
        [entry] = leased
        fleet.post_receipt(receipt(entry, work(entry)))
        done.append(entry.task.step_id)
    raise AssertionError("tasks kept coming")


def spec(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "t", "seed": 11, "steps": list(steps), **fields}


def agent(step_id: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "agent", "agent": "a", "depends_on": list(deps), **fields}


# ── submission and scheduling ────────────────────────────────────────────────────────────────


def test_a_dag_runs_in_dependency_order_with_outputs_flowing(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(
        spec(
            agent("plan", inputs={"topic": {"from": "inputs.topic"}}),
            agent("left", "plan", inputs={"outline": {"from": "steps.plan.output#/outline"}}),
            agent("right", "plan"),
            agent("join", "left", "right", inputs={"l": {"from": "steps.left.output"}}),
            inputs={"topic": "queues"},
        )
    )
    assert run.status == "running"
    seen: dict[str, dict[str, Any]] = {}

    def work(entry: FleetInboxEntry) -> Any:
        seen[entry.task.step_id] = entry.task.inputs
        return {"outline": ["a", "b"], "by": entry.task.step_id}

    order = drain(fleet, work)
    assert order[0] == "plan"
    assert order[-1] == "join"
    assert seen["plan"] == {"topic": "queues"}
    assert seen["left"] == {"outline": ["a", "b"]}
    assert seen["join"] == {"l": {"outline": ["a", "b"], "by": "left"}}
    final = fleet.get_run(run.run_id)
    assert final.status == "completed"
    assert final.outputs["join"]["by"] == "join"
    assert [s.status for s in final.steps] == ["completed"] * 4
    assert verify(fleet.store) == []


def test_invalid_spec_writes_nothing(fleet: SyncFleetService) -> None:
    before = fleet.store.count()
    with pytest.raises(ContractError):
        fleet.submit_run(spec(agent("a", "ghost"), seed=0))
    assert fleet.store.count() == before


def test_idempotent_submit(fleet: SyncFleetService) -> None:
    first = fleet.submit_run(spec(agent("a")), idempotency_key="k-1")
    again = fleet.submit_run(spec(agent("a")), idempotency_key="k-1")
    assert again.run_id == first.run_id
    assert fleet.store.count(types=["run_submitted"]) == 1


def test_map_steps_fan_out_and_gather_in_order(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(
        spec(
            agent("plan"),
            {"id": "each", "type": "map", "depends_on": ["plan"], "max_parallel": 2,
             "over": {"from": "steps.plan.output#/items"},
             "step": {"type": "tool", "tool": "upper", "inputs": {"k": "v"}}},
        )
    )  # fmt: skip

    def work(entry: FleetInboxEntry) -> Any:
        if entry.task.step_id == "plan":
            return {"items": ["x", "y", "z"]}
        assert entry.task.inputs["k"] == "v"
        return entry.task.inputs["item"].upper() + str(entry.task.inputs["index"])

    drain(fleet, work)
    final = fleet.get_run(run.run_id)
    assert final.outputs["each"] == ["X0", "Y1", "Z2"]
    assert final.status == "completed"


def test_human_steps_wait_for_approval(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(
        spec(agent("draft"), {"id": "ok", "type": "human", "prompt": "Ship?",
                              "depends_on": ["draft"]}, agent("ship", "ok"))
    )  # fmt: skip
    assert drain(fleet, lambda e: "text") == ["draft"]
    assert fleet.get_run(run.run_id).steps[1].status == "ready"
    with pytest.raises(ConflictError, match="not a human step"):
        fleet.approve_step(run.run_id, "draft")
    fleet.approve_step(run.run_id, "ok", by="ana", comment="go")
    assert drain(fleet, lambda e: "shipped") == ["ship"]
    final = fleet.get_run(run.run_id)
    assert final.outputs["ok"] == {"approved": True, "by": "ana", "comment": "go"}
    assert final.status == "completed"


def test_breakpoints_pause_until_resume(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(spec(agent("a"), agent("b", "a"), breakpoints=["b"]))
    assert drain(fleet, lambda e: 1) == ["a"]
    paused = fleet.get_run(run.run_id)
    assert paused.status == "paused"
    assert paused.steps[1].status == "waiting"
    assert fleet.lease_task("w1") == []
    resumed = fleet.resume_run(run.run_id)
    assert resumed.status == "running"
    assert drain(fleet, lambda e: 2) == ["b"]
    assert fleet.get_run(run.run_id).status == "completed"
    with pytest.raises(ConflictError, match="not paused"):
        fleet.resume_run(run.run_id)


def test_a_task_finishing_while_the_run_is_paused_still_counts(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(spec(agent("a"), agent("b"), agent("c", "a"), breakpoints=["c"]))
    a, b = fleet.lease_task("w1", max_tasks=2)
    fleet.post_receipt(receipt(a, 1))
    assert fleet.get_run(run.run_id).status == "paused"
    fleet.post_receipt(receipt(b, 2))  # b was leased before the pause
    assert fleet.get_run(run.run_id).steps[1].status == "completed"
    fleet.resume_run(run.run_id)
    assert drain(fleet, lambda e: 3) == ["c"]
    assert fleet.get_run(run.run_id).status == "completed"


def test_a_task_paused_for_input_resumes_with_the_value(
    fleet: SyncFleetService, clock: ManualClock
) -> None:
    run = fleet.submit_run(spec(agent("ask"), agent("other"), agent("after", "ask")))
    first, other = fleet.lease_task("w1", max_tasks=2)
    assert first.task.step_id == "ask"
    assert first.resume is None
    assert first.lease is not None
    token = first.lease.fencing_token
    paused = fleet.pause_task(
        first.task.task_id, token, reason="needs a person", waiting_for=[{"question": "ship?"}]
    )
    assert paused.status == "paused"
    assert paused.steps[0].status == "waiting"
    [asking] = paused.waiting_for_input
    assert asking.task_id == first.task.task_id
    assert asking.step_id == "ask"
    assert asking.reason == "needs a person"
    assert asking.waiting_for == [{"question": "ship?"}]
    assert fleet.get_run(run.run_id).waiting_for_input == [asking]
    with pytest.raises(LeaseLostError, match="the task is paused"):
        fleet.heartbeat(first.task.task_id, token)
    with pytest.raises(LeaseLostError):
        fleet.pause_task(first.task.task_id, token)
    assert other.lease is not None  # the other step's lease holds; it completes, nothing follows
    fleet.post_receipt(receipt(other, "done"))
    clock.advance(60)
    assert fleet.lease_task("w1", max_tasks=5) == []  # nothing leasable while paused
    with pytest.raises(ContractError, match="JSON values") as refused:
        fleet.resume_run(run.run_id, value={1, 2})
    assert [d.pointer for d in refused.value.details] == ["/value"]
    assert fleet.get_run(run.run_id).status == "paused"  # the refused resume wrote nothing
    resumed = fleet.resume_run(run.run_id, value={"answer": "yes"})
    assert resumed.status == "running"
    assert resumed.waiting_for_input == []
    [again] = fleet.lease_task("w1", lease_seconds=5)
    assert again.task.task_id == first.task.task_id
    assert again.attempt == first.attempt  # a continuation, not a retry
    assert again.resume is not None
    assert again.resume.value == {"answer": "yes"}
    assert again.lease is not None
    assert again.lease.fencing_token == token + 1
    clock.advance(6)  # the resumed lease lapses: the next attempt still carries the value
    [third] = fleet.lease_task("w1")
    assert third.attempt == again.attempt + 1
    assert third.resume is not None
    assert third.resume.value == {"answer": "yes"}
    fleet.post_receipt(receipt(third, "shipped"))
    assert drain(fleet, lambda e: e.resume) == ["after"]  # other tasks carry no value
    final = fleet.get_run(run.run_id)
    assert final.status == "completed"
    assert final.outputs == {"ask": "shipped", "other": "done", "after": None}
    types = [e.type for e in fleet.run_events(run.run_id, limit=1000)]
    assert types.count("task_paused") == 1
    assert types.count("run_paused") == 1
    assert verify(fleet.store) == []


def test_tasks_waiting_at_once_get_their_own_answers(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(spec(agent("x"), agent("y"), agent("z")))
    leased = {e.task.step_id: e for e in fleet.lease_task("w1", max_tasks=3)}
    for entry in leased.values():
        assert entry.lease is not None
        fleet.pause_task(entry.task.task_id, entry.lease.fencing_token, reason="which?")
    paused = fleet.get_run(run.run_id)
    assert [w.step_id for w in paused.waiting_for_input] == ["x", "y", "z"]
    with pytest.raises(ContractError, match="no task waiting for input as nope") as refused:
        fleet.resume_run(run.run_id, values={"x": 1, "nope": 2})
    assert [d.pointer for d in refused.value.details] == ["/values/nope"]
    assert fleet.get_run(run.run_id).status == "paused"  # refused: nothing written
    y_task = leased["y"].task.task_id
    fleet.resume_run(run.run_id, value="default", values={"x": 1, y_task: 2})
    answers = {e.task.step_id: e.resume.value for e in fleet.lease_task("w1", max_tasks=3)
               if e.resume is not None}  # fmt: skip
    assert answers == {"x": 1, "y": 2, "z": "default"}
    assert verify(fleet.store) == []


def test_a_resumed_task_keeps_its_answer_when_another_task_pauses(
    fleet: SyncFleetService,
) -> None:
    run = fleet.submit_run(spec(agent("x"), agent("y")))
    x, y = fleet.lease_task("w1", max_tasks=2)
    assert x.lease is not None
    assert y.lease is not None
    fleet.pause_task(x.task.task_id, x.lease.fencing_token)
    fleet.resume_run(run.run_id, value="for x")  # x is queued again, not yet leased
    fleet.pause_task(y.task.task_id, y.lease.fencing_token)
    fleet.resume_run(run.run_id, value="for y")  # must not rebuild x's task as a new attempt
    got = {e.task.step_id: (e.attempt, e.resume and e.resume.value)
           for e in fleet.lease_task("w1", max_tasks=2)}  # fmt: skip
    assert got == {"x": (1, "for x"), "y": (1, "for y")}
    assert verify(fleet.store) == []


def test_a_paused_task_of_a_cancelled_run_is_withdrawn(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(spec(agent("a")))
    [entry] = fleet.lease_task("w1")
    assert entry.lease is not None
    fleet.pause_task(entry.task.task_id, entry.lease.fencing_token, reason="question")
    fleet.cancel_run(run.run_id)
    with pytest.raises(ConflictError, match="not paused"):
        fleet.resume_run(run.run_id, value=1)
    assert fleet.lease_task("w1") == []
    assert fleet.get_run(run.run_id).status == "cancelled"
    assert verify(fleet.store) == []


# ── leases ───────────────────────────────────────────────────────────────────────────────────


def test_workers_get_only_matching_tasks(fleet: SyncFleetService) -> None:
    fleet.register_worker({"worker_id": "weak", "role": "writer", "trust_level": "sandboxed"})
    fleet.submit_run(
        spec(agent("secret", worker={"role": "writer", "min_trust": "internal"}),
             agent("tools", worker={"role": "writer", "tools": ["workspace.*"]}),
             agent("open", worker={"role": "writer"}))
    )  # fmt: skip
    got = fleet.lease_task("weak", max_tasks=10)
    assert [e.task.step_id for e in got] == ["open"]
    with pytest.raises(NotFoundError, match="register it first"):
        fleet.lease_task("nobody")


def test_batched_leases_get_distinct_tokens(fleet: SyncFleetService) -> None:
    fleet.submit_run(spec(agent("a"), agent("b"), agent("c")))
    leased = fleet.lease_task("w1", max_tasks=10)
    assert sorted(e.task.step_id for e in leased) == ["a", "b", "c"]
    assert all(e.lease and e.lease.fencing_token == 1 for e in leased)
    assert fleet.lease_task("w1", max_tasks=10) == []


def test_expired_lease_requeues_and_refuses_the_late_worker(
    fleet: SyncFleetService, clock: ManualClock
) -> None:
    run = fleet.submit_run(spec(agent("a")))
    [first] = fleet.lease_task("w1", lease_seconds=10)
    clock.advance(5)
    assert first.lease is not None
    fleet.heartbeat(first.task.task_id, first.lease.fencing_token, lease_seconds=10)
    clock.advance(11)
    [second] = fleet.lease_task("w1", lease_seconds=10)
    assert second.task.task_id == first.task.task_id
    assert second.attempt == 2
    assert second.lease is not None
    assert second.lease.fencing_token == first.lease.fencing_token + 1
    with pytest.raises(LeaseLostError, match="stale fencing token 1"):
        fleet.post_receipt(receipt(first, "late"))
    with pytest.raises(LeaseLostError):
        fleet.heartbeat(first.task.task_id, first.lease.fencing_token)
    assert fleet.post_receipt(receipt(second, "on time")).status == "accepted"
    assert fleet.get_run(run.run_id).outputs["a"] == "on time"
    assert fleet.store.count(types=["task_lease_expired"]) == 1
    assert verify(fleet.store) == []


def test_repeated_expiry_fails_the_step(fleet: SyncFleetService, clock: ManualClock) -> None:
    run = fleet.submit_run(spec(agent("a")))
    for _ in range(3):
        assert fleet.lease_task("w1", lease_seconds=1)
        clock.advance(2)
    fleet.expire_leases()
    final = fleet.get_run(run.run_id)
    assert final.status == "failed"
    assert final.steps[0].failure_kind == "timeout"


# ── receipts ─────────────────────────────────────────────────────────────────────────────────


def test_receipts_are_idempotent_and_chained(fleet: SyncFleetService) -> None:
    fleet.submit_run(spec(agent("a"), agent("b", "a")))
    [a] = fleet.lease_task("w1")
    posted = receipt(a, {"x": 1})
    first = fleet.post_receipt(posted)
    again = fleet.post_receipt(posted)
    assert (again.status, again.hash) == (first.status, first.hash) == ("accepted", first.hash)
    assert fleet.store.count(types=["receipt_recorded"]) == 1
    with pytest.raises(ConflictError, match="different content"):
        fleet.post_receipt(
            posted.model_copy(update={"result": {"outcome": "success", "output": 2}})
        )
    [b] = fleet.lease_task("w1")
    second = fleet.post_receipt(receipt(b, "y"))
    assert first.prev_hash is None
    assert second.prev_hash == first.hash
    assert second.hash != first.hash


def test_scorer_rejection_retries_then_fails(fleet: SyncFleetService, clock: ManualClock) -> None:
    run = fleet.submit_run(
        spec(agent("a", scorer={"kind": "regex", "pattern": "^OK"},
                   retry={"max_attempts": 2, "backoff_s": 10, "jitter": 0,
                          "retry_on": ["invalid_output"]}))
    )  # fmt: skip
    [entry] = fleet.lease_task("w1")
    verdict = fleet.post_receipt(receipt(entry, "nope"))
    assert (verdict.status, verdict.score and verdict.score.reason) == (
        "rejected",
        "no match for '^OK'",
    )
    assert fleet.lease_task("w1") == []  # backing off: 10 s
    clock.advance(10)
    [retry] = fleet.lease_task("w1")
    assert retry.attempt == 2
    fleet.post_receipt(receipt(retry, "still wrong"))
    final = fleet.get_run(run.run_id)
    assert final.status == "failed"
    assert final.steps[0].failure_kind == "invalid_output"
    assert "no match" in (final.error or "")


def test_backoff_grows_and_is_seeded(fleet: SyncFleetService, clock: ManualClock) -> None:
    fleet.submit_run(spec(agent("a", retry={"max_attempts": 4, "backoff_s": 2, "jitter": 0.5})))
    delays = []
    for _ in range(3):
        [entry] = fleet.lease_task("w1", wait_seconds=0)
        assert entry.lease is not None
        fleet.fail_task(entry.task.task_id, entry.lease.fencing_token, "transient", "flaky")
        [scheduled] = fleet.store.query(types=["task_retry_scheduled"])[-1:]
        delays.append(scheduled.data.backoff_s)
        clock.advance(1000)
    assert delays[0] < delays[1] < delays[2]
    assert all(2 * 2**i * 0.5 <= d <= 2 * 2**i * 1.5 for i, d in enumerate(delays))


def test_failures_not_in_retry_on_fail_at_once(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(spec(agent("a", retry={"max_attempts": 5}), agent("b", "a")))
    [entry] = fleet.lease_task("w1")
    assert entry.lease is not None
    assert (
        fleet.fail_task(entry.task.task_id, entry.lease.fencing_token, "agent_error", "boom")
        is False
    )
    final = fleet.get_run(run.run_id)
    assert final.status == "failed"
    assert [s.status for s in final.steps] == ["failed", "pending"]


def test_optional_failures_skip_dependents_and_the_run_goes_on(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(
        spec(agent("maybe", optional=True), agent("after", "maybe"), agent("other"))
    )
    for entry in fleet.lease_task("w1", max_tasks=5):
        assert entry.lease is not None
        if entry.task.step_id == "maybe":
            fleet.fail_task(entry.task.task_id, entry.lease.fencing_token, "agent_error", "no")
        else:
            fleet.post_receipt(receipt(entry, "fine"))
    final = fleet.get_run(run.run_id)
    assert [s.status for s in final.steps] == ["failed", "skipped", "completed"]
    assert final.status == "completed"


def test_custom_scorers(fleet: SyncFleetService) -> None:
    register_scorer("is_even", lambda value, params: value % params["mod"] == 0)
    try:
        run = fleet.submit_run(
            spec(agent("a", scorer={"kind": "custom", "name": "is_even", "params": {"mod": 2}}))
        )
        [entry] = fleet.lease_task("w1")
        assert fleet.post_receipt(receipt(entry, 4)).status == "accepted"
        assert fleet.get_run(run.run_id).status == "completed"
    finally:
        unregister_scorer("is_even")


def test_bad_receipts_are_refused_without_writing(fleet: SyncFleetService) -> None:
    fleet.submit_run(spec(agent("a")))
    [entry] = fleet.lease_task("w1")
    before = fleet.store.count()
    with pytest.raises(NotFoundError):
        fleet.post_receipt(receipt(entry, 1, task_id="run_x.zz"))
    with pytest.raises(ContractError, match="does not match") as info:
        fleet.post_receipt(receipt(entry, 1, attempt=7))
    assert [d.pointer for d in info.value.details] == ["/attempt"]
    with pytest.raises(ForbiddenError):
        fleet.post_receipt(receipt(entry, 1, worker_id="intruder"))
    with pytest.raises(ContractError):
        fleet.post_receipt({"receipt_id": "r1", "task_id": entry.task.task_id})
    assert fleet.store.count() == before


# ── budgets and cancellation ─────────────────────────────────────────────────────────────────


def test_token_budget_is_enforced_from_receipts(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(spec(agent("a", budget={"max_tokens": 100})))
    [entry] = fleet.lease_task("w1")
    usage = {"input_tokens": 90, "output_tokens": 30, "total_tokens": 120, "cost_usd": 0.01}
    verdict = fleet.post_receipt(receipt(entry, "x", usage=usage))
    assert verdict.status == "rejected"
    [exceeded] = fleet.store.query(types=["budget_exceeded"])
    assert (exceeded.data.budget, exceeded.data.limit, exceeded.data.used) == ("tokens", 100, 120)
    final = fleet.get_run(run.run_id)
    assert final.steps[0].failure_kind == "budget_exceeded"
    assert final.usage.total_tokens == 120
    assert final.usage.cost_usd == 0.01


def test_wall_time_budget_ends_the_lease_on_heartbeat(
    fleet: SyncFleetService, clock: ManualClock
) -> None:
    run = fleet.submit_run(spec(agent("a", budget={"max_wall_s": 5})))
    [entry] = fleet.lease_task("w1", lease_seconds=60)
    assert entry.lease is not None
    clock.advance(6)
    with pytest.raises(LeaseLostError, match="exceeds the budget"):
        fleet.heartbeat(entry.task.task_id, entry.lease.fencing_token)
    assert fleet.get_run(run.run_id).steps[0].failure_kind == "budget_exceeded"


def test_cancel_withdraws_tasks_and_tells_the_worker(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(spec(agent("a"), agent("b")))
    [entry] = fleet.lease_task("w1")
    cancelled = fleet.cancel_run(run.run_id, reason="changed my mind")
    assert cancelled.status == "cancelled"
    assert fleet.lease_task("w1", max_tasks=5) == []
    assert entry.lease is not None
    with pytest.raises(RunCancelledError, match="run cancelled"):
        fleet.heartbeat(entry.task.task_id, entry.lease.fencing_token)
    with pytest.raises(RunCancelledError):
        fleet.post_receipt(receipt(entry, "too late"))
    with pytest.raises(AlreadyCompletedError):
        fleet.cancel_run(run.run_id)
    assert verify(fleet.store) == []


def test_list_runs_pages_and_filters(fleet: SyncFleetService) -> None:
    ids = [
        fleet.submit_run(spec(agent("a"), labels={"team": "x" if i % 2 else "y"})).run_id
        for i in range(5)
    ]
    fleet.cancel_run(ids[0])
    page = fleet.list_runs(limit=2)
    assert [r.run_id for r in page.runs] == ids[::-1][:2]
    rest = fleet.list_runs(limit=10, cursor=page.next_cursor)
    assert [r.run_id for r in rest.runs] == ids[::-1][2:]
    assert rest.next_cursor is None
    assert [r.run_id for r in fleet.list_runs(status="cancelled").runs] == [ids[0]]
    assert [r.run_id for r in fleet.list_runs(labels={"team": "x"}).runs] == [ids[3], ids[1]]


# ── retry, workers, artifacts ────────────────────────────────────────────────────────────────


def test_retry_step_reruns_it_and_what_depends_on_it(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(spec(agent("a"), agent("b", "a"), agent("c", "b"), agent("x")))
    leased = fleet.lease_task("w1", max_tasks=5)
    for entry in sorted(leased, key=lambda e: e.task.step_id == "a"):  # x first, then a fails
        assert entry.lease is not None
        if entry.task.step_id == "a":
            fleet.fail_task(entry.task.task_id, entry.lease.fencing_token, "agent_error", "bad")
        else:
            fleet.post_receipt(receipt(entry, "x done"))
    failed = fleet.get_run(run.run_id)
    assert failed.status == "failed"
    with pytest.raises(ConflictError, match="only failed or skipped"):
        fleet.retry_step(run.run_id, "x")
    again = fleet.retry_step(run.run_id, "a")
    assert again.status == "running"
    assert again.error is None
    [entry] = fleet.lease_task("w1")
    assert (entry.task.step_id, entry.attempt) == ("a", 2)
    fleet.post_receipt(receipt(entry, "a done"))
    assert drain(fleet, lambda e: "ok") == ["b", "c"]
    final = fleet.get_run(run.run_id)
    assert final.status == "completed"
    assert verify(fleet.store) == []


def test_workers_are_listed_and_go_offline(fleet: SyncFleetService, clock: ManualClock) -> None:
    fleet.register_worker({"worker_id": "w2"})
    clock.advance(30)
    fleet.worker_heartbeat("w1", status="busy")
    clock.advance(40)
    assert fleet.mark_offline_workers(after_seconds=60) == ["w2"]
    status = {w.spec.worker_id: w.status for w in fleet.list_workers()}
    assert status == {"w1": "busy", "w2": "offline"}
    with pytest.raises(NotFoundError):
        fleet.worker_heartbeat("ghost")


def test_artifacts_through_the_service(store: EventStore, tmp_path: Any) -> None:
    from fleetforge.fleet.artifacts import ArtifactStore

    service = SyncFleetService(store, artifacts=ArtifactStore(tmp_path))
    artifact = service.put_artifact(b"# draft", media_type="text/markdown", name="draft.md")
    meta, content = service.get_artifact(artifact.digest)
    assert content == b"# draft"
    assert (meta.digest, meta.media_type, meta.name) == (
        artifact.digest,
        "text/markdown",
        "draft.md",
    )
    with pytest.raises(NotFoundError):
        service.get_artifact("sha256:" + "1" * 64)


def test_lease_long_poll_returns_when_a_task_arrives(fleet: SyncFleetService) -> None:
    import threading
    import time

    results: list[list[Any]] = []
    waiter = threading.Thread(
        target=lambda: results.append(fleet.lease_task("w1", wait_seconds=10))
    )
    waiter.start()
    time.sleep(0.2)
    started = time.monotonic()
    fleet.submit_run(spec(agent("late")))
    waiter.join(timeout=15)
    assert [e.task.step_id for e in results[0]] == ["late"]
    assert time.monotonic() - started < 5  # woke on the new task, not at the 10 s deadline
    assert fleet.lease_task("w1", wait_seconds=0.2) == []


def test_a_write_rolled_back_for_a_transient_reason_runs_again(
    fleet: SyncFleetService, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fleet.store.transaction
    calls: list[int] = []

    def flaky() -> Any:
        calls.append(1)
        if len(calls) < 3:  # what PostgreSQL does to one side of a deadlock
            raise StoreError("deadlock detected", transient=True)
        return real()

    monkeypatch.setattr(fleet.store, "transaction", flaky)
    fleet.register_worker({"worker_id": "w"})
    assert len(calls) == 3
    assert "w" in {w.spec.worker_id for w in fleet.list_workers()}

    calls.clear()

    def broken() -> Any:
        calls.append(1)
        raise StoreError("disk full")

    monkeypatch.setattr(fleet.store, "transaction", broken)
    with pytest.raises(StoreError, match="disk full"):
        fleet.register_worker({"worker_id": "w2"})
    assert len(calls) == 1  # not transient: not repeated
