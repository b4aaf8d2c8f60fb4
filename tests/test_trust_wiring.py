"""The two halves of the trust plane together (issue 21): a receipt's signed statement names the
capability token of its attempt, the policy decisions and the worker's signature, and offline
verify checks that the token covered every tool the task used; on both stores."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from fleetforge.contracts import FleetInboxEntry, FleetReceipt
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.settings import fleet_home
from fleetforge.fleet.store import EventStore
from fleetforge.fleet.trust.attest import statement_of
from fleetforge.fleet.trust.bundle import Bundle, build_bundle
from fleetforge.fleet.trust.keys import TrustStore, init_key
from fleetforge.fleet.trust.verify import verify_bundle

DIGEST = "sha256:" + "0" * 64


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fleet(store: EventStore, clock: ManualClock) -> SyncFleetService:
    fleet = SyncFleetService(store, clock=clock)
    fleet.register_worker({"worker_id": "w1", "tools": ["*"]})
    return fleet


def _run(fleet: SyncFleetService, name: str) -> FleetInboxEntry:
    spec = {
        "name": name,
        "seed": 1,
        "security": {"denied_tools": ["shell.*"]},
        "steps": [{"id": "a", "type": "agent", "agent": "x",
                   "worker": {"tools": ["workspace.*"]}}],
    }  # fmt: skip
    run = fleet.submit_run(spec)
    [entry] = [e for e in fleet.lease_task("w1", max_tasks=5) if e.task.run_id == run.run_id]
    return entry


def _use(fleet: SyncFleetService, entry: FleetInboxEntry, tool: str) -> None:
    assert entry.lease is not None
    envelope = {
        "kind": "emit", "event": "custom", "seq": 0, "at": "2026-12-01T00:00:00Z",
        "run_id": entry.task.run_id, "step_id": "a", "task_id": entry.task.task_id, "seed": 1,
        "adapter": {"name": "t", "version": "1"},
        "payload": {"type": "tool_called", "tool": tool, "arguments_digest": DIGEST,
                    "duration_ms": 1.0, "outcome": "ok"},
    }  # fmt: skip
    fleet.post_event(entry.task.task_id, entry.lease.fencing_token, envelope)


def _bundle(fleet: SyncFleetService, run_id: str) -> tuple[Bundle, TrustStore]:
    home = fleet_home()
    init_key(home)
    trust = TrustStore.load(home / "keys" / "trust.json")
    return build_bundle(fleet.store, run_id, artifacts=None, trust=trust), trust


def _where(failures: list[Any]) -> list[str]:
    return [f"{f.check} {f.where}" for f in failures]


def test_the_statement_names_the_capability_and_verify_checks_the_tools_used(
    fleet: SyncFleetService,
) -> None:
    entry = _run(fleet, "tools")
    assert entry.lease is not None
    assert entry.lease.capability is not None
    _use(fleet, entry, "workspace.read")
    fleet.post_receipt(FleetReceipt.success(entry, "done"))
    [recorded] = [e for e in fleet.store.query_rows(limit=1000) if e.type == "receipt_recorded"]
    predicate = statement_of(recorded.data["attestation"])["predicate"]
    assert predicate["capability_token_id"] == entry.lease.capability.token_id
    bundle, trust = _bundle(fleet, entry.task.run_id)
    assert bundle.capabilities[entry.task.task_id]["token_id"] == entry.lease.capability.token_id
    assert "private" not in repr(bundle.capabilities) + str(bundle.capability_key)
    assert verify_bundle(bundle, trust) == []


def test_verify_finds_a_tool_the_token_did_not_cover(fleet: SyncFleetService) -> None:
    entry = _run(fleet, "denied")
    _use(fleet, entry, "shell.exec")  # reported as used although the token denies it
    fleet.post_receipt(FleetReceipt.success(entry, "done"))
    bundle, trust = _bundle(fleet, entry.task.run_id)
    assert [w for w in _where(verify_bundle(bundle, trust)) if "capabilities" in w] == [
        f"capabilities seq {_seq(bundle, 'tool_called')} tool_called shell.exec"
    ]


def test_verify_finds_a_token_replayed_on_another_task(fleet: SyncFleetService) -> None:
    first = _run(fleet, "first")
    second = _run(fleet, "second")
    _use(fleet, first, "workspace.read")
    fleet.post_receipt(FleetReceipt.success(first, "done"))
    bundle, trust = _bundle(fleet, first.task.run_id)
    assert second.lease is not None
    assert second.lease.capability is not None
    stolen = copy.deepcopy(bundle)
    mine = stolen.capabilities[first.task.task_id]
    # the other task's token, under this task's token id: its facts name the other task
    mine["token"] = second.lease.capability.token
    failures = _where(verify_bundle(stolen, trust))
    assert f"capabilities seq {_seq(bundle, 'tool_called')} tool_called workspace.read" in (
        failures
    )
    swapped = copy.deepcopy(bundle)
    swapped.capabilities[first.task.task_id]["token_id"] = second.lease.capability.token_id
    assert f"capabilities seq {_seq(bundle, 'receipt_recorded')} receipt " in " ".join(
        _where(verify_bundle(swapped, trust))
    )


def test_verify_finds_a_token_used_after_expiry_or_revocation(
    fleet: SyncFleetService, clock: ManualClock
) -> None:
    entry = _run(fleet, "late")
    _use(fleet, entry, "workspace.read")
    fleet.post_receipt(FleetReceipt.success(entry, "done"))
    bundle, trust = _bundle(fleet, entry.task.run_id)
    call = next(e for e in bundle.events if e.type == "tool_called")
    expired = copy.deepcopy(bundle)
    late = next(e for e in expired.events if e.seq == call.seq)
    late.at = (clock.now() + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    where = f"capabilities seq {call.seq} tool_called workspace.read"
    assert where in _where(verify_bundle(expired, trust))
    revoked = copy.deepcopy(bundle)
    token_id = bundle.capabilities[entry.task.task_id]["token_id"]
    revoked.revocations[token_id] = "2000-01-01T00:00:00.000000Z"  # before the call
    assert where in _where(verify_bundle(revoked, trust))


def _seq(bundle: Bundle, type_: str) -> int:
    return next(e.seq for e in bundle.events if e.type == type_)


def test_the_answer_to_a_receipt_names_its_attestation(fleet: SyncFleetService) -> None:
    """complete_task / post_receipt answer with the id of the fleet's attestation (what the
    worker puts on its spans as trust.attestation_id), a repeated post with the same one; the
    id is no part of the receipt: not hashed, not stored, and one a client sends is not kept."""
    from fleetforge.fleet.trust.attest import attestation_id, receipt_hash

    entry = _run(fleet, "answer")
    assert entry.lease is not None
    answer = fleet.complete_task(entry.task.task_id, entry.lease.fencing_token, "done")
    [recorded] = [e for e in fleet.store.query_rows(limit=1000) if e.type == "receipt_recorded"]
    assert answer.attestation_id == attestation_id(recorded.data["attestation"])
    assert "attestation_id" not in recorded.data["receipt"]
    assert receipt_hash(answer.model_dump(mode="json")) == answer.hash
    again = fleet.complete_task(entry.task.task_id, entry.lease.fencing_token, "done")
    assert again.attestation_id == answer.attestation_id
    forged = _run(fleet, "forged")
    sent = FleetReceipt.success(forged, "done").model_copy(update={"attestation_id": DIGEST})
    kept = fleet.post_receipt(sent)
    assert kept.attestation_id not in (None, DIGEST)
    rows = [e for e in fleet.store.query_rows(limit=1000) if e.type == "receipt_recorded"]
    assert all("attestation_id" not in e.data["receipt"] for e in rows)
    bundle, trust = _bundle(fleet, forged.task.run_id)
    assert verify_bundle(bundle, trust) == []
