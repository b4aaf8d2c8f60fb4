"""Nobody acts outside their grant (issue 16), on both stores: a lease belongs to the credential
that took it, refusals write nothing but a rate-limited ``access_denied``, receipt ids are
scoped to their task, tokens live in the store and concurrent changes lose nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from fleetforge.contracts import FleetInboxEntry, FleetReceipt
from fleetforge.errors import ConflictError, ForbiddenError, LeaseLostError, NotFoundError
from fleetforge.fleet.access import Caller
from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore, open_store
from fleetforge.fleet.tokens import TokenStore

SPEC = {
    "name": "grants",
    "seed": 1,
    "steps": [{"id": "a", "type": "tool", "tool": "t"}, {"id": "b", "type": "tool", "tool": "t"}],
}

W1 = Caller.token("tok_w1", "w1-token", {"work"}, worker_id="w1")
W2 = Caller.token("tok_w2", "w2-token", {"work"}, worker_id="w2")
U1 = Caller.token("tok_u1", "u1", {"work"}, acting_as="wu")  # names no worker
U2 = Caller.token("tok_u2", "u2", {"work"}, acting_as="wu")  # claims the same worker id
STDIO_W2 = Caller.as_worker("w2")
ADMIN = Caller.token("tok_admin", "root", {"admin"})


@pytest.fixture
def fleet(store: EventStore, tmp_path: Any) -> SyncFleetService:
    service = SyncFleetService(
        store, clock=ManualClock(), artifacts=ArtifactStore(tmp_path / "artifacts")
    )
    for worker in ("w1", "w2", "wu"):
        service.register_worker({"worker_id": worker, "tools": ["*"]})
    return service


def envelope(entry: FleetInboxEntry) -> dict[str, Any]:
    task = entry.task
    return {"kind": "emit", "event": "message", "payload": {"role": "assistant", "content": "x"},
            "seq": 0, "at": "2026-12-01T00:00:00Z", "run_id": task.run_id,
            "step_id": task.step_id, "task_id": task.task_id, "seed": 1,
            "adapter": {"name": "t", "version": "1"}}  # fmt: skip


# Every call on a lease, as an intruder would make it.
TaskCall = Callable[[SyncFleetService, FleetInboxEntry, Caller], Any]
CALLS: dict[str, TaskCall] = {
    "heartbeat": lambda f, e, c: f.heartbeat(e.task.task_id, e.lease.fencing_token, caller=c),  # type: ignore[union-attr]
    "post_event": lambda f, e, c: f.post_event(
        e.task.task_id,
        e.lease.fencing_token,
        envelope(e),
        caller=c,  # type: ignore[union-attr]
    ),
    "complete": lambda f, e, c: f.complete_task(
        e.task.task_id,
        e.lease.fencing_token,
        "forged",
        caller=c,  # type: ignore[union-attr]
    ),
    "post_receipt": lambda f, e, c: f.post_receipt(
        FleetReceipt.success(e, "forged").model_copy(update={"worker_id": c.worker_id or ""}),
        caller=c,
    ),
    "fail": lambda f, e, c: f.fail_task(
        e.task.task_id,
        e.lease.fencing_token,
        "agent_error",
        "no",
        caller=c,  # type: ignore[union-attr]
    ),
    "release": lambda f, e, c: f.release_task(e.task.task_id, e.lease.fencing_token, caller=c),  # type: ignore[union-attr]
    "pause": lambda f, e, c: f.pause_task(e.task.task_id, e.lease.fencing_token, caller=c),  # type: ignore[union-attr]
    "put_artifact": lambda f, e, c: f.put_artifact(
        b"x", media_type="text/plain", run_id=e.task.run_id, task_id=e.task.task_id, caller=c
    ),
}


def state(store: EventStore) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Every event type but access_denied, and the task rows."""
    types = [r.type for r in store.query_rows(limit=10_000) if r.type != "access_denied"]
    return types, store.table_rows("tasks")


@pytest.mark.parametrize(
    ("holder", "intruders"),
    [
        (W1, [W2, STDIO_W2, U1]),  # a bound token's lease
        (U1, [U2, STDIO_W2, Caller.token("tok_wu", "wu-token", {"work"}, worker_id="wu")]),
    ],
    ids=["bound-holder", "unbound-holder"],
)
def test_every_task_call_from_another_credential_is_refused_and_writes_nothing(
    fleet: SyncFleetService, store: EventStore, holder: Caller, intruders: list[Caller]
) -> None:
    run = fleet.submit_run(SPEC)
    worker = holder.worker_id or "wu"
    [entry, other] = fleet.lease_task(worker, max_tasks=2, caller=holder)
    before = state(store)
    refused = 0
    for intruder in intruders:
        for name, call in CALLS.items():
            with pytest.raises(ForbiddenError, match="forbidden") as caught:
                call(fleet, entry, intruder)
            assert caught.value.context["task_id"] == entry.task.task_id, name
            refused += 1
    assert state(store) == before  # nothing written but the refusals
    denied = store.query(types=["access_denied"], limit=1000)
    recorded = sorted((e.data.who, e.data.what) for e in denied)  # type: ignore[attr-defined]
    expected = {
        (i.label, "post_receipt" if n == "complete" else n) for i in intruders for n in CALLS
    }
    assert refused == len(intruders) * len(CALLS)
    assert recorded == sorted(expected)  # complete and post_receipt: one record (rate limit)
    assert {e.run_id for e in denied} == {run.run_id}
    # the holder's calls still work: without naming its worker when its token holds the lease
    me = holder if holder.bound else Caller.token("tok_u1", "u1", {"work"})
    fleet.heartbeat(entry.task.task_id, entry.lease.fencing_token, caller=me)  # type: ignore[union-attr]
    fleet.put_artifact(b"ok", media_type="text/plain", task_id=entry.task.task_id, caller=me)
    done = fleet.complete_task(entry.task.task_id, entry.lease.fencing_token, "real", caller=me)  # type: ignore[union-attr]
    assert (done.status, done.worker_id) == ("accepted", worker)
    fleet.complete_task(other.task.task_id, other.lease.fencing_token, "real", caller=me)  # type: ignore[union-attr]
    final = fleet.get_run(run.run_id)
    assert (final.status, final.outputs) == ("completed", {"a": "real", "b": "real"})
    assert verify(store) == []


def test_a_stale_token_is_lease_lost_for_anyone_and_refusals_are_rate_limited(
    fleet: SyncFleetService, store: EventStore
) -> None:
    fleet.submit_run(SPEC)
    [entry] = fleet.lease_task("w1", caller=W1)
    task_id, token = entry.task.task_id, entry.lease.fencing_token  # type: ignore[union-attr]
    with pytest.raises(LeaseLostError):  # honest or not, a stale token says "lease lost"
        fleet.heartbeat(task_id, token + 1, caller=W2)
    for _ in range(5):
        with pytest.raises(ForbiddenError):
            fleet.heartbeat(task_id, token, caller=W2)
    with pytest.raises(ForbiddenError):
        fleet.fail_task(task_id, token, "agent_error", "x", caller=W2)
    denied = store.query(types=["access_denied"])
    assert [(e.data.what, e.data.repeats) for e in denied] == [("heartbeat", 0), ("fail", 0)]  # type: ignore[attr-defined]
    assert denied[0].data.who == "token:w2-token"  # type: ignore[attr-defined]
    assert "w2" in denied[0].data.reason  # type: ignore[attr-defined]


def test_admin_may_release_any_lease_and_the_event_says_so(
    fleet: SyncFleetService, store: EventStore
) -> None:
    fleet.submit_run(SPEC)
    [entry] = fleet.lease_task("w1", caller=W1)
    fleet.release_task(entry.task.task_id, entry.lease.fencing_token, reason="stuck", caller=ADMIN)  # type: ignore[union-attr]
    [released] = store.query(types=["task_released"])
    assert (released.data.by, released.data.worker_id) == ("token:root", "w1")  # type: ignore[attr-defined]
    [again] = fleet.lease_task("w2", caller=W2)
    assert again.task.task_id == entry.task.task_id
    with pytest.raises(ForbiddenError):  # admin may release, not complete someone's lease
        fleet.complete_task(again.task.task_id, again.lease.fencing_token, 1, caller=ADMIN)  # type: ignore[union-attr]


def test_receipt_ids_are_scoped_to_their_task(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(SPEC)
    [mine, theirs] = fleet.lease_task("w1", max_tasks=2, caller=W1)
    # the squatter finishes its own task with the id the other task's receipt will default to
    victim_default = fleet.complete_task(
        theirs.task.task_id,
        theirs.lease.fencing_token,
        "probe",
        caller=W1,  # type: ignore[union-attr]
    ).receipt_id
    squat = fleet.complete_task(
        mine.task.task_id,
        mine.lease.fencing_token,
        "mine",
        receipt_id=victim_default,
        caller=W1,  # type: ignore[union-attr]
    )
    assert squat.status == "accepted"
    assert fleet.get_run(run.run_id).outputs == {"a": "mine", "b": "probe"}


def test_a_squatted_receipt_id_never_blocks_another_task(fleet: SyncFleetService) -> None:
    spec = {"name": "m", "seed": 1, "inputs": {"xs": [1, 2]},
            "steps": [{"id": "m", "type": "map", "over": {"from": "inputs.xs"},
                       "step": {"type": "tool", "tool": "t"}}]}  # fmt: skip
    run = fleet.submit_run(spec)
    [first] = fleet.lease_task("w2", caller=W2)
    [second] = fleet.lease_task("w1", caller=W1)
    # w2 guesses the id w1's default receipt will get, and uses it for its own task first
    from hashlib import sha256

    guessed = "rcp_" + sha256(f"{second.task.task_id}:1".encode()).hexdigest()[:26]
    fleet.complete_task(first.task.task_id, 1, "squat", receipt_id=guessed, caller=W2)
    honest = fleet.complete_task(second.task.task_id, 1, "honest", caller=W1)
    assert (honest.receipt_id, honest.status) == (guessed, "accepted")
    assert fleet.get_run(run.run_id).outputs == {"m": ["squat", "honest"]}
    with pytest.raises(ForbiddenError):  # and nobody reads back another worker's verdict
        fleet.complete_task(second.task.task_id, 1, "honest", caller=W2)


def test_artifacts_need_a_lease_in_the_run_or_the_submit_scope(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(SPEC)
    [entry] = fleet.lease_task("w1", caller=W1)
    fleet.put_artifact(b"1", media_type="text/plain", run_id=run.run_id, caller=W1)
    with pytest.raises(ForbiddenError, match="holds no lease in run"):
        fleet.put_artifact(b"2", media_type="text/plain", run_id=run.run_id, caller=W2)
    submitter = Caller.token("tok_s", "s", {"work", "submit"})
    fleet.put_artifact(b"3", media_type="text/plain", run_id=run.run_id, caller=submitter)
    fleet.put_artifact(b"4", media_type="text/plain", caller=W2)  # no run: anyone with work
    with pytest.raises(NotFoundError):
        fleet.put_artifact(b"5", media_type="text/plain", task_id="run_x.a", caller=W2)
    with pytest.raises(ForbiddenError):  # a task's artifact needs that task's lease
        fleet.put_artifact(b"6", media_type="text/plain", task_id=entry.task.task_id, caller=W2)


# ── tokens in the store ─────────────────────────────────────────────────────────────────────


def test_tokens_live_in_the_store_and_replay(store: EventStore) -> None:
    tokens = TokenStore(store)
    secret, record = tokens.create("alice", ["read", "submit"], by="cli:test")
    assert secret.startswith("ffk_")
    assert secret not in repr(store.query_rows())
    assert tokens.lookup(secret) == record
    with pytest.raises(ConflictError, match="exists"):
        tokens.create("alice", ["read"])
    tokens.revoke("alice", by="cli:test")
    assert tokens.lookup(secret) is None
    assert tokens.create("alice", ["work"])[1].scopes == ("work",)  # the name is free again
    assert [e.type for e in store.query()] == ["token_created", "token_revoked", "token_created"]
    assert verify(store) == []


def test_concurrent_token_creates_and_revokes_lose_nothing(store_url: str) -> None:
    with open_store(store_url) as store:
        for i in range(8):
            TokenStore(store).create(f"old-{i}", ["read"])
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def change(i: int) -> None:
        try:
            with open_store(store_url) as own:  # its own connection, as another process has
                start.wait()
                if i < 8:
                    TokenStore(own).create(f"new-{i}", ["work"])
                else:
                    TokenStore(own).revoke(f"old-{i - 8}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=change, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with open_store(store_url) as store:
        listed = TokenStore(store).list(include_revoked=True)
    assert sorted(r.name for r in listed if r.active) == [f"new-{i}" for i in range(8)]
    assert sorted(r.name for r in listed if not r.active) == [f"old-{i}" for i in range(8)]
