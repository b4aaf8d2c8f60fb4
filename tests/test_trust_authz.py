"""Authorization (issue 21): trust from tokens, capability tokens per task, the run's security
policy at lease and at receipt, and why a ready step waits — on both stores."""

from __future__ import annotations

import base64
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetforge.capabilities import Capability, attenuate
from fleetforge.contracts import FleetInboxEntry, FleetTrustLevel
from fleetforge.errors import ForbiddenError
from fleetforge.fleet.access import Caller
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore, open_store
from fleetforge.fleet.tokens import TokenStore
from fleetforge.signing import public_key_of, receipt_digest, sign_receipt

from .test_service import agent, receipt, spec


@pytest.fixture
def clock() -> ManualClock:
    # capability checks default to the wall clock: the fleet's starts at it
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def fleet(store: EventStore, clock: ManualClock) -> SyncFleetService:
    return SyncFleetService(store, clock=clock)


def _types(store: EventStore) -> list[str]:
    return [row.type for row in store.iter_rows()]


def _caller(tokens: TokenStore, name: str, worker_id: str, **fields: Any) -> Caller:
    _, record = tokens.create(name, ["work"], worker_id=worker_id, **fields)
    return Caller.token(
        record.token_id,
        record.name,
        record.scopes,
        worker_id=worker_id,
        trust_level=record.trust_level.value,
        public_key=record.public_key,
    )


def _lease_one(fleet: SyncFleetService, worker_id: str, **kw: Any) -> FleetInboxEntry:
    [entry] = fleet.lease_task(worker_id, **kw)
    assert entry.lease is not None
    return entry


# ── trust comes from the token ───────────────────────────────────────────────────────────────


def test_a_token_worker_gets_the_token_trust_and_key_not_its_own(fleet: SyncFleetService) -> None:
    tokens = TokenStore(fleet.store)
    key = public_key_of(Ed25519PrivateKey.generate())
    low = _caller(tokens, "low", "w_low", trust_level="untrusted")
    keyed = _caller(tokens, "keyed", "w_key", trust_level="internal", public_key=key)
    claimed = {"worker_id": "w_low", "trust_level": "privileged"}
    assert fleet.register_worker(claimed, caller=low).trust_level == FleetTrustLevel.UNTRUSTED
    worker = fleet.register_worker({"worker_id": "w_key"}, caller=keyed)
    assert worker.trust_level == FleetTrustLevel.INTERNAL
    assert worker.auth.kind == "ed25519"
    assert worker.auth.public_key == key
    other = public_key_of(Ed25519PrivateKey.generate())
    wrong = {"worker_id": "w_key", "auth": {"kind": "ed25519", "key_id": "k", "public_key": other}}
    with pytest.raises(ForbiddenError, match="not the key registered"):
        fleet.register_worker(wrong, caller=keyed)
    # a trusted in-process caller keeps what it declares, ed25519 auth included (not `none`)
    mine = {"worker_id": "w_local", "trust_level": "privileged",
            "auth": {"kind": "ed25519", "key_id": "k", "public_key": other}}  # fmt: skip
    local = fleet.register_worker(mine)
    assert local.trust_level == FleetTrustLevel.PRIVILEGED
    assert local.auth.kind == "ed25519"
    [listed] = [w for w in fleet.list_workers() if w.spec.worker_id == "w_local"]
    assert listed.spec.auth.kind == "ed25519"
    created = [r.data for r in fleet.store.iter_rows() if r.type == "token_created"]
    assert [(d["trust_level"], d["public_key"]) for d in created] == [
        ("untrusted", None),
        ("internal", key),
    ]
    assert {r.name: r.trust_level for r in tokens.list()}["keyed"] == FleetTrustLevel.INTERNAL


def test_a_worker_below_the_run_min_trust_never_leases_its_tasks(fleet: SyncFleetService) -> None:
    levels = ["untrusted", "sandboxed", "internal", "privileged"]
    for i in range(8):
        fleet.register_worker({"worker_id": f"w{i}", "trust_level": levels[i % 4]})
    run = fleet.submit_run(
        spec(
            {"id": "m", "type": "map", "over": {"from": "inputs.items"},
             "step": {"type": "agent", "agent": "a"}},
            inputs={"items": list(range(40))},
            security={"min_trust": "internal"},
        )
    )  # fmt: skip
    done = 0
    while done < 40:
        for i in range(8):
            for entry in fleet.lease_task(f"w{i}", max_tasks=3):
                fleet.post_receipt(receipt(entry, "ok"))
                done += 1
    assert fleet.get_run(run.run_id).status == "completed"
    leased = [r.data["worker_id"] for r in fleet.store.iter_rows() if r.type == "task_leased"]
    assert len(leased) == 40
    assert set(leased) <= {"w2", "w3", "w6", "w7"}  # internal and privileged only


TRUST_TASKS = 500 if os.environ.get("FLEETFORGE_STRESS") == "1" else 48  # make stress: 500
LEVELS = ("untrusted", "sandboxed", "internal", "privileged")


def _work_until_idle(url: str, worker_id: str, level: str, go: threading.Event) -> int:
    """One worker (a store of its own): lease, receipt, until the inbox stays empty a while."""
    with open_store(url) as store:
        fleet = SyncFleetService(store)
        fleet.register_worker({"worker_id": worker_id, "trust_level": level})
        go.wait(timeout=30)
        done, idle = 0, 0
        while idle < 20:
            leased = fleet.lease_task(worker_id, max_tasks=4, wait_seconds=0.05)
            idle = 0 if leased else idle + 1
            for entry in leased:
                fleet.post_receipt(receipt(entry, worker_id))
                done += 1
        return done


def test_eight_concurrent_workers_never_lease_a_task_above_their_trust(store_url: str) -> None:
    """8 workers (two of each level) lease at once from runs with and without a `min_trust`
    of `internal`; the event log shows every protected task leased by an internal or
    privileged worker, and every task done."""
    with open_store(store_url) as store:
        fleet = SyncFleetService(store)
        runs = {}
        for protected in (True, False):
            security = {"min_trust": "internal"} if protected else None
            items = list(range(TRUST_TASKS // 2))
            step = {"id": "m", "type": "map", "over": {"from": "inputs.items"},
                    "step": {"type": "agent", "agent": "a"}}  # fmt: skip
            run = fleet.submit_run(spec(step, inputs={"items": items}, security=security))
            runs[run.run_id] = protected
    go = threading.Event()
    workers = [(f"w{i}", LEVELS[i % 4]) for i in range(8)]
    with ThreadPoolExecutor(len(workers)) as pool:
        futures = [pool.submit(_work_until_idle, store_url, w, lvl, go) for w, lvl in workers]
        go.set()
        done = sum(f.result(timeout=600) for f in futures)
    assert done == TRUST_TASKS
    level_of = dict(workers)
    with open_store(store_url) as store:
        leases = [r for r in store.iter_rows() if r.type == "task_leased"]
        assert len(leases) == TRUST_TASKS
        low = [(r.run_id, r.data["worker_id"]) for r in leases
               if runs[r.run_id] and level_of[r.data["worker_id"]] in LEVELS[:2]]  # fmt: skip
        assert low == []
        for run_id in runs:
            assert SyncFleetService(store).get_run(run_id).status == "completed"


# ── signed receipts ──────────────────────────────────────────────────────────────────────────


def _signed_run(fleet: SyncFleetService) -> str:
    return fleet.submit_run(spec(agent("a"), security={"require_signed_receipts": True})).run_id


def test_require_signed_receipts_leases_only_to_a_keyed_worker(fleet: SyncFleetService) -> None:
    key = Ed25519PrivateKey.generate()
    fleet.register_worker({"worker_id": "bare"})
    run_id = _signed_run(fleet)
    assert fleet.lease_task("bare") == []
    [blocked] = fleet.get_run(run_id).blocked
    assert (blocked.step_id, blocked.code) == ("a", "no_signing_worker")
    auth = {"kind": "ed25519", "key_id": "k1", "public_key": public_key_of(key)}
    fleet.register_worker({"worker_id": "signer", "auth": auth})
    assert fleet.get_run(run_id).blocked == []
    entry = _lease_one(fleet, "signer")
    posted = fleet.post_receipt(sign_receipt(receipt(entry, "ok"), key, key_id="k1"))
    assert posted.status == "accepted"
    assert posted.worker_signature is not None
    assert posted.worker_signature.digest == receipt_digest(posted)


@pytest.mark.parametrize("how", ["unsigned", "other key", "altered"])
def test_a_bad_receipt_under_require_signed_receipts_is_refused_and_nothing_else_written(
    fleet: SyncFleetService, how: str
) -> None:
    key = Ed25519PrivateKey.generate()
    auth = {"kind": "ed25519", "key_id": "k1", "public_key": public_key_of(key)}
    fleet.register_worker({"worker_id": "signer", "auth": auth})
    run_id = _signed_run(fleet)
    entry = _lease_one(fleet, "signer")
    good = receipt(entry, "ok")
    bad = {
        "unsigned": good,
        "other key": sign_receipt(good, Ed25519PrivateKey.generate(), key_id="k1"),
        "altered": sign_receipt(good, key, key_id="k1").model_copy(
            update={"result": receipt(entry, "forged").result}
        ),
    }[how]
    before = _types(fleet.store)
    with pytest.raises(ForbiddenError, match=r"signature|signed"):
        fleet.post_receipt(bad)
    assert _types(fleet.store) == [*before, "access_denied"]
    [denied] = [r.data for r in fleet.store.iter_rows() if r.type == "access_denied"]
    assert denied["what"] == "post_receipt"
    assert denied["task_id"] == entry.task.task_id
    assert fleet.get_run(run_id).status == "running"


# ── capability tokens ────────────────────────────────────────────────────────────────────────


def _two_tasks(fleet: SyncFleetService, **security: Any) -> tuple[FleetInboxEntry, ...]:
    fleet.register_worker({"worker_id": "w1", "tools": ["*"]})
    worker = {"tools": ["workspace.*"]}
    fleet.submit_run(
        spec(agent("a", worker=worker), agent("b", worker=worker), security=security or None)
    )
    return tuple(fleet.lease_task("w1", max_tasks=2, lease_seconds=30))


def _capability(entry: FleetInboxEntry, task_id: str | None = None) -> Capability:
    assert entry.lease is not None
    assert entry.lease.capability is not None
    return Capability(
        entry.lease.capability.token,
        entry.lease.capability.public_key,
        entry.task.run_id,
        task_id or entry.task.task_id,
    )


def test_a_lease_carries_a_capability_token_scoped_to_its_task(fleet: SyncFleetService) -> None:
    a, b = _two_tasks(fleet, denied_tools=["workspace.write"])
    cap = _capability(a)
    assert cap.check("workspace.read").allowed
    denied = cap.check("workspace.write")
    assert not denied.allowed
    assert "denied" in denied.reason
    assert denied.token_id == a.lease.capability.token_id  # type: ignore[union-attr]
    assert not cap.check("shell.run").allowed  # outside the step's grant
    replayed = _capability(a, task_id=b.task.task_id).check("workspace.read")
    assert not replayed.allowed
    assert "another task" in replayed.reason
    leased = {r.data["task_id"]: r.data for r in fleet.store.iter_rows() if r.type == "task_leased"}
    assert leased[a.task.task_id]["capability_id"] == cap.token_id
    assert leased[a.task.task_id]["capability_id"] != leased[b.task.task_id]["capability_id"]
    # kept with the task: another service of the store hands out the same token
    again = SyncFleetService(fleet.store).task_capability(a.task.task_id)
    assert again is not None
    assert again.token == a.lease.capability.token
    # the token is never written to the event log
    assert all(a.lease.capability.token not in str(r.data) for r in fleet.store.iter_rows())  # type: ignore[union-attr]


def test_a_capability_is_refused_after_its_lease_expiry(fleet: SyncFleetService) -> None:
    a, _ = _two_tasks(fleet)
    cap = _capability(a)
    assert a.lease is not None
    assert cap.check("workspace.read", now=a.lease.expires_at - timedelta(seconds=1)).allowed
    late = cap.check("workspace.read", now=a.lease.expires_at + timedelta(seconds=1))
    assert not late.allowed
    assert "expired" in late.reason


def test_a_revoked_capability_reaches_the_worker_with_its_heartbeat(
    fleet: SyncFleetService, clock: ManualClock
) -> None:
    a, b = _two_tasks(fleet)
    assert a.lease is not None
    assert b.lease is not None
    cap = _capability(a)
    assert cap.check("workspace.read").allowed
    answer = fleet.revoke_capability(cap.token_id, reason="leaked", by="test")
    assert answer["task_id"] == a.task.task_id
    assert answer["revoked"] is True
    lease = fleet.heartbeat(a.task.task_id, a.lease.fencing_token, lease_seconds=30)
    assert lease.revoked_capabilities == [cap.token_id]
    cap.update(lease)
    refused = cap.check("workspace.read")
    assert not refused.allowed
    assert "revoked" in refused.reason
    # the other task's token is untouched; batch heartbeats answer the same; an extension
    # never re-mints a revoked token
    assert fleet.heartbeat(b.task.task_id, b.lease.fencing_token).revoked_capabilities == []
    clock.advance(20)
    many = fleet.heartbeat_many(
        [{"task_id": t.task.task_id, "fencing_token": t.lease.fencing_token} for t in (a, b)],  # type: ignore[union-attr]
        lease_seconds=30,
    )
    first, second = many.leases
    assert first is not None
    assert second is not None
    assert first.revoked_capabilities == [cap.token_id]
    assert first.capability is None
    assert second.capability is not None
    assert second.revoked_capabilities == []
    assert fleet.revoked_capabilities()[0]["capability_id"] == cap.token_id
    assert "capability_revoked" in _types(fleet.store)


def test_a_heartbeat_that_extends_the_lease_renews_the_capability(
    fleet: SyncFleetService, clock: ManualClock
) -> None:
    a, _ = _two_tasks(fleet)
    assert a.lease is not None
    cap = _capability(a)
    clock.advance(20)
    lease = fleet.heartbeat(a.task.task_id, a.lease.fencing_token, lease_seconds=30)
    assert lease.capability is not None
    assert lease.capability.expires_at == lease.expires_at
    cap.update(lease)
    assert cap.check("workspace.read", now=a.lease.expires_at + timedelta(seconds=5)).allowed


def test_a_restarted_service_renews_a_capability_with_the_same_root_key(
    fleet: SyncFleetService, clock: ManualClock
) -> None:
    a, _ = _two_tasks(fleet)
    assert a.lease is not None
    assert a.lease.capability is not None
    restarted = SyncFleetService(fleet.store, clock=clock)  # its first call extends a lease
    clock.advance(20)
    lease = restarted.heartbeat(a.task.task_id, a.lease.fencing_token, lease_seconds=30)
    assert lease.capability is not None
    assert lease.capability.public_key == a.lease.capability.public_key
    assert restarted.task_capability(a.task.task_id) == lease.capability


def test_a_worker_attenuates_its_capability_offline_for_a_sub_agent(
    fleet: SyncFleetService,
) -> None:
    a, _ = _two_tasks(fleet)
    assert a.lease is not None
    assert a.lease.capability is not None
    token, key = a.lease.capability.token, a.lease.capability.public_key
    narrow = attenuate(token, key, tools=["workspace.list"])
    sub = Capability(narrow, key, a.task.run_id, a.task.task_id)
    assert sub.check("workspace.list").allowed
    assert not sub.check("workspace.read").allowed  # the parent may, the sub-agent may not
    assert sub.token_id == a.lease.capability.token_id  # revoking the parent revokes it
    wider = attenuate(narrow, key, tools=["*"])  # attenuation never widens
    assert not Capability(wider, key, a.task.run_id, a.task.task_id).check("x.y").allowed
    forged = Capability(token[:-8] + "AAAAAAAA", key, a.task.run_id, a.task.task_id)
    assert not forged.check("workspace.list").allowed


def test_the_armory_refuses_a_tool_outside_the_capability_with_its_token_id(
    fleet: SyncFleetService, tmp_path: Any
) -> None:
    import os

    from fleetforge.armory import get_pack, open_kit

    a, _ = _two_tasks(fleet, denied_tools=["workspace.write"])
    cap = _capability(a)
    recorded: list[tuple[str, dict[str, Any]]] = []

    async def main() -> None:
        kit_cm = open_kit(
            [get_pack("workspace")],
            recorder=lambda kind, data: recorded.append((kind, data)),
            capability=cap,
            environ={**os.environ, "FLEETFORGE_WORKSPACE": str(tmp_path)},
        )
        async with kit_cm as kit:
            write = next(t.name for t in kit.available() if t.capability == "workspace.write")
            with pytest.raises(ForbiddenError, match="denied"):
                await kit.call(write, {"path": "x.txt", "content": "no"})

    anyio.run(main)
    assert recorded[-1][0] == "tool_refused"
    assert recorded[-1][1]["token_id"] == cap.token_id


# ── why a ready step waits ───────────────────────────────────────────────────────────────────


def test_run_blocked_says_why_no_live_worker_may_take_a_step(fleet: SyncFleetService) -> None:
    fleet.register_worker({"worker_id": "w1", "trust_level": "sandboxed", "tools": ["*"]})
    run = fleet.submit_run(
        spec(
            agent("high", worker={"min_trust": "privileged"}),
            agent("denied", worker={"tools": ["shell.run"]}),
            agent("fine"),
            security={"denied_tools": ["shell.*"]},
        )
    )
    blocked = {b.step_id: b.code for b in fleet.get_run(run.run_id).blocked}
    assert blocked == {"high": "trust_too_low", "denied": "tool_denied"}
    [entry] = fleet.lease_task("w1", max_tasks=3)
    assert entry.task.step_id == "fine"
    fleet.mark_offline_workers(after_seconds=-1)  # no live worker at all now
    blocked = {b.step_id: b.code for b in fleet.get_run(run.run_id).blocked}
    assert blocked == {"high": "no_worker", "denied": "tool_denied"}


def test_an_unknown_trust_level_or_key_is_refused_when_issuing(fleet: SyncFleetService) -> None:
    from fleetforge.errors import UsageError

    tokens = TokenStore(fleet.store)
    with pytest.raises(UsageError, match="trust level"):
        tokens.create("t", ["work"], trust_level="root")
    with pytest.raises(UsageError, match="public-key"):
        tokens.create("t", ["work"], public_key=base64.b64encode(b"short").decode())
    assert tokens.list() == []


def test_the_cli_issues_trust_and_revokes_a_capability(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from fleetforge.cli._app import app
    from fleetforge.fleet.store import open_store

    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    key = public_key_of(Ed25519PrivateKey.generate())
    runner = CliRunner()
    env = {"FLEETFORGE_HOME": str(tmp_path)}
    made = runner.invoke(
        app,
        ["--store", url, "token", "create", "w", "--scope", "work", "--trust-level", "internal",
         "--public-key", key],
        env=env,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    with open_store(url) as store:
        fleet = SyncFleetService(store, clock=ManualClock(datetime.now(UTC)))
        [record] = TokenStore(store).list()
        assert (record.trust_level, record.public_key) == (FleetTrustLevel.INTERNAL, key)
        a, _ = _two_tasks(fleet)
        cap = _capability(a)
    bad = runner.invoke(app, ["--store", url, "token", "revoke-capability", "cap_x"], env=env)
    assert bad.exit_code == 1  # invalid input, its field named
    assert "/capability_id" in bad.output
    done = runner.invoke(
        app, ["--store", url, "token", "revoke-capability", cap.token_id, "--reason", "leak"],
        env=env,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    with open_store(url) as store:
        [revoked] = SyncFleetService(store).revoked_capabilities()
    assert revoked["capability_id"] == cap.token_id
    assert revoked["reason"] == "leak"


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["local", "http"])
async def test_the_sdk_worker_signs_its_receipts_when_given_a_key(
    transport: str, tmp_path: Any
) -> None:
    from fleetforge.worker import TaskRun, Worker

    from .test_worker import client_for

    key = Ed25519PrivateKey.generate()

    async def handler(task: TaskRun) -> dict[str, Any]:
        task.artifacts = []
        return {"n": task.inputs.get("n", 0) * 2}

    signed_spec = spec(
        {"id": "a", "type": "tool", "tool": "t", "inputs": {"n": 2}},
        {"id": "b", "type": "tool", "tool": "t", "depends_on": ["a"]},
        security={"require_signed_receipts": True},
    )
    async with client_for(transport, tmp_path) as client:
        run = await client.submit_run(signed_spec)
        bare = await Worker(client, handler, worker_id="bare").run(stop_when_idle=True)
        assert bare.completed == 0  # no key: the run's tasks are never leased to it
        assert [b.code for b in (await client.get_run(run.run_id)).blocked] == ["no_signing_worker"]
        stats = await Worker(client, handler, worker_id="signer", signing_key=key).run(
            stop_when_idle=True
        )
        assert stats.completed == 2
        done = await client.get_run(run.run_id)
        assert done.status == "completed"
        events = await client.run_events(run.run_id, limit=1000)
    receipts = [e.data.receipt for e in events if e.type == "receipt_recorded"]  # type: ignore[attr-defined]
    assert len(receipts) == 2
    for posted in receipts:
        assert posted.worker_signature is not None
        assert posted.worker_signature.digest == receipt_digest(posted)


# ── Cedar policies ───────────────────────────────────────────────────────────────────────────

CEDAR = """
permit(principal, action, resource);
forbid(principal, action == Action::"lease", resource)
  when { resource.step_id == "secret" && principal.trust_rank < 2 };
forbid(principal, action == Action::"call_tool", resource)
  when { resource.name like "workspace.write*" };
"""


def test_cedar_policies_decide_leases_and_each_decision_names_the_policy_digest(
    store: EventStore, clock: ManualClock
) -> None:
    from fleetforge.fleet.trust.policy import PolicySet

    policy = PolicySet(CEDAR)
    fleet = SyncFleetService(store, clock=clock, policy=policy)
    fleet.register_worker({"worker_id": "low", "trust_level": "sandboxed"})
    fleet.register_worker({"worker_id": "high", "trust_level": "internal"})
    fleet.submit_run(spec(agent("secret"), agent("open")))
    [low] = fleet.lease_task("low", max_tasks=2)
    assert low.task.step_id == "open"
    [high] = fleet.lease_task("high", max_tasks=2)
    assert high.task.step_id == "secret"
    leased = [r.data for r in store.iter_rows() if r.type == "task_leased"]
    assert [d["policy"]["decision"] for d in leased] == ["allow", "allow"]
    assert {d["policy"]["policy_digest"] for d in leased} == {policy.digest}
    assert policy.digest.startswith("sha256:")


def test_a_cedar_lease_denial_is_recorded_once_per_attempt_worker_and_policy_set(
    store: EventStore, clock: ManualClock
) -> None:
    """A denied worker polls again and again: one policy_denied event (with the policy set's
    digest) per task attempt, worker and policy set, also across a restart of the service;
    Run.blocked says policy_denied while every live worker that could take the step is
    denied; another policy set records anew."""
    from fleetforge.fleet.trust.policy import PolicySet

    policy = PolicySet(CEDAR)
    fleet = SyncFleetService(store, clock=clock, policy=policy)
    fleet.register_worker({"worker_id": "low", "trust_level": "sandboxed"})
    run = fleet.submit_run(spec(agent("secret")))

    def denials() -> list[dict[str, Any]]:
        return [r.data for r in store.iter_rows() if r.type == "policy_denied"]

    for _ in range(3):
        assert fleet.lease_task("low", max_tasks=2) == []
    [denied] = denials()
    assert denied == {
        "action": "lease",
        "task_id": f"{run.run_id}.secret",
        "step_id": "secret",
        "attempt": 1,
        "worker_id": "low",
        "policy": {"decision": "deny", "policy_digest": policy.digest,
                   "reasons": denied["policy"]["reasons"]},
    }  # fmt: skip
    assert denied["policy"]["reasons"]  # the forbid rule that decided
    [blocked] = fleet.get_run(run.run_id).blocked
    assert (blocked.step_id, blocked.code) == ("secret", "policy_denied")
    assert policy.digest in blocked.message
    restarted = SyncFleetService(store, clock=clock, policy=policy)
    assert restarted.lease_task("low") == []
    assert len(denials()) == 1
    stricter = PolicySet(CEDAR + "\nforbid(principal, action, resource) when { false };")
    changed = SyncFleetService(store, clock=clock, policy=stricter)
    assert changed.lease_task("low") == []
    changed.lease_task("low")
    assert [d["policy"]["policy_digest"] for d in denials()] == [policy.digest, stricter.digest]
    fleet.register_worker({"worker_id": "high", "trust_level": "internal"})
    assert fleet.get_run(run.run_id).blocked == []  # a live worker the policy allows
    [high] = fleet.lease_task("high")
    assert high.task.step_id == "secret"
    assert len(denials()) == 2  # an allow writes no denial


def test_cedar_policies_decide_tool_calls_in_the_armory(
    fleet: SyncFleetService, tmp_path: Any, spans: Any
) -> None:
    import os

    from fleetforge.armory import get_pack, open_kit
    from fleetforge.fleet.trust.policy import PolicySet

    policy = PolicySet(CEDAR)
    a, _ = _two_tasks(fleet)
    cap = _capability(a)
    recorded: list[tuple[str, dict[str, Any]]] = []

    async def main() -> None:
        async with open_kit(
            [get_pack("workspace")],
            recorder=lambda kind, data: recorded.append((kind, data)),
            capability=cap,
            policy=policy,
            worker_id="w1",
            environ={**os.environ, "FLEETFORGE_WORKSPACE": str(tmp_path)},
        ) as kit:
            await kit.call("workspace.list_files", {})
            with pytest.raises(ForbiddenError, match="policy"):
                await kit.call("workspace.write", {"path": "x.txt", "content": "no"})

    anyio.run(main)
    called, refused = recorded[-2], recorded[-1]
    assert called[0] == "tool_called"
    assert called[1]["policy_digest"] == policy.digest
    assert refused[0] == "tool_refused"
    assert refused[1]["policy_digest"] == policy.digest
    assert refused[1]["token_id"] == cap.token_id
    [span] = [s for s in spans.get_finished_spans() if s.name.startswith("execute_tool")]
    assert span.attributes["trust.policy.decision"] == "allow"
    assert span.attributes["trust.capability_token_id"] == cap.token_id


def test_a_policy_file_that_does_not_parse_is_refused_with_its_path(tmp_path: Any) -> None:
    from fleetforge.errors import ContractError
    from fleetforge.fleet.trust.policy import load_policy

    bad = tmp_path / "bad.cedar"
    bad.write_text("permit(principal action resource);")
    with pytest.raises(ContractError, match=r"bad\.cedar"):
        load_policy({"FLEETFORGE_POLICY": str(bad)})
    assert load_policy({}) is None


def test_db_export_carries_token_trust_and_keys_and_revocations(
    store: EventStore, tmp_path: Any
) -> None:
    import io

    from fleetforge.fleet.transfer import export_events, import_events

    key = public_key_of(Ed25519PrivateKey.generate())
    TokenStore(store).create("w", ["work"], trust_level="privileged", public_key=key)
    fleet = SyncFleetService(store, clock=ManualClock(datetime.now(UTC)))
    a, _ = _two_tasks(fleet)
    fleet.revoke_capability(_capability(a).token_id, reason="leak")
    dump = io.StringIO()
    export_events(store, dump)
    dump.seek(0)
    with open_store(f"sqlite:///{tmp_path / 'copy.db'}") as copy:
        import_events(copy, dump)
        [record] = TokenStore(copy).list()
        assert (record.trust_level, record.public_key) == (FleetTrustLevel.PRIVILEGED, key)
        revoked = SyncFleetService(copy).revoked_capabilities()
        assert [r["capability_id"] for r in revoked] == [_capability(a).token_id]


def test_fleetforge_show_says_why_a_step_waits(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from fleetforge.cli._app import app

    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with open_store(url) as store:
        fleet = SyncFleetService(store)
        fleet.register_worker({"worker_id": "w1", "trust_level": "sandboxed"})
        run = fleet.submit_run(spec(agent("a"), security={"min_trust": "privileged"}))
    env = {"FLEETFORGE_HOME": str(tmp_path)}
    shown = CliRunner().invoke(app, ["--store", url, "show", run.run_id], env=env)
    assert shown.exit_code == 0, shown.output
    assert "step a blocked (trust_too_low)" in shown.output
    as_json = CliRunner().invoke(app, ["--store", url, "show", run.run_id, "--json"], env=env)
    assert '"code": "trust_too_low"' in as_json.output
