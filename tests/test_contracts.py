"""Behaviour of the contract models beyond their schemas."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from fleetforge import ContractError
from fleetforge.contracts import (
    EVENT_TYPES,
    AdapterInfo,
    AgentRunEnvelope,
    CompleteEnvelope,
    EmitEnvelope,
    FleetSecretRef,
    FleetTrustLevel,
    StartEnvelope,
    artifact_path,
    parse_envelope,
    parse_event,
)
from fleetforge.fleet.projections.coordination import CoordinationProjection

# The catalogue of DESIGN.md "Decisions / Events", copied verbatim.
DESIGN_EVENTS = [
    "run_submitted",
    "run_started",
    "run_paused",
    "run_resumed",
    "run_completed",
    "run_failed",
    "run_cancelled",
    "step_ready",
    "step_started",
    "step_completed",
    "step_failed",
    "step_skipped",
    "step_approved",
    "task_enqueued",
    "task_leased",
    "task_heartbeat",
    "task_lease_expired",
    "task_released",
    "task_failed",
    "task_retry_scheduled",
    "task_event",
    "receipt_posted",
    "receipt_accepted",
    "receipt_rejected",
    "receipt_recorded",
    "budget_exceeded",
    "breakpoint_hit",
    "checkpoint_saved",
    "artifact_stored",
    "worker_registered",
    "worker_heartbeat",
    "worker_offline",
    "tool_called",
    "tool_refused",
]


# Events added beyond DESIGN.md's "at least" list, each explained in docs/contracts.md.
ADDED_EVENTS = [
    "step_reset", "task_paused", "token_created", "token_revoked", "access_denied",
    "capability_revoked", "policy_denied", "alert_fired", "alert_delivered", "alert_failed",
    "usage_reported", "run_budget_changed",  # run-level budgets (issue 23)
]  # fmt: skip
ADDED_EVENTS += sorted(CoordinationProjection.handles)  # issue 22 (docs/contracts.md)


def test_event_catalogue_is_the_design_list_plus_documented_additions() -> None:
    assert sorted(EVENT_TYPES) == sorted(DESIGN_EVENTS + ADDED_EVENTS)


def test_events_parse_into_their_type() -> None:
    event = parse_event(
        {"event_id": "e1", "type": "step_ready", "run_id": "r1", "at": "2026-11-22T10:00:00Z",
         "data": {"step_id": "plan"}}
    )  # fmt: skip
    assert type(event) is EVENT_TYPES["step_ready"]
    assert event.data.step_id == "plan"


# ── secrets ──────────────────────────────────────────────────────────────────────────────────


def test_secret_ref_holds_no_value_and_resolves_to_a_masked_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ref = FleetSecretRef(ref="env://FF_TEST_TOKEN")
    assert ref.model_dump() == {"ref": "env://FF_TEST_TOKEN"}
    value = ref.resolve({"FF_TEST_TOKEN": "s3cr3t-value"})
    assert value.get_secret_value() == "s3cr3t-value"
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("token %s %r", value, value)
    rendered = [repr(ref), str(ref), repr(value), str(value), caplog.text, f"{value}"]
    assert not any("s3cr3t" in text for text in rendered)


def test_secret_ref_reads_files(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    assert FleetSecretRef(ref=f"file://{secret}").resolve().get_secret_value() == "from-a-file"


def test_secret_ref_errors_name_the_ref_not_a_value(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"env://MISSING_FF_VAR is not set"):
        FleetSecretRef(ref="env://MISSING_FF_VAR").resolve({})
    with pytest.raises(ContractError, match="cannot be read"):
        FleetSecretRef(ref=f"file://{tmp_path / 'absent'}").resolve()
    with pytest.raises(ContractError, match=r"secret vault://kv/app#token: set VAULT_ADDR"):
        FleetSecretRef(ref="vault://kv/app#token").resolve({})


def test_secret_ref_rejects_values_that_are_not_refs() -> None:
    with pytest.raises(ValidationError):
        FleetSecretRef(ref="sk-live-abc123")


# ── trust ────────────────────────────────────────────────────────────────────────────────────


def test_trust_levels_are_ordered() -> None:
    internal = FleetTrustLevel.INTERNAL
    assert internal.admits(FleetTrustLevel.PRIVILEGED)
    assert internal.admits(FleetTrustLevel.INTERNAL)
    assert not internal.admits(FleetTrustLevel.SANDBOXED)


# ── envelopes ────────────────────────────────────────────────────────────────────────────────

COMMON = {
    "run_id": "r1",
    "step_id": "s1",
    "task_id": "t1",
    "adapter": AdapterInfo(name="test", version="0"),
    "at": datetime(2026, 11, 22, tzinfo=UTC),
    "seed": 3,
}


def test_envelope_validate_checks_against_the_json_schema() -> None:
    envelope = StartEnvelope(seq=0, inputs={"q": 1}, **COMMON)  # type: ignore[arg-type]
    assert envelope.validate() is envelope
    broken = CompleteEnvelope.model_construct(**{**COMMON, "seq": -1, "output": 1})
    with pytest.raises(ContractError) as info:
        broken.validate()
    assert [d.pointer for d in info.value.details] == ["/seq"]


def test_envelopes_parse_by_kind() -> None:
    data = EmitEnvelope(seq=1, event="tool_call", payload={"tool": "x"}, **COMMON)  # type: ignore[arg-type]
    parsed = parse_envelope(json.loads(data.model_dump_json()))
    assert isinstance(parsed, EmitEnvelope)
    assert isinstance(parsed, AgentRunEnvelope)
    assert parsed == data


def test_artifact_path_layout() -> None:
    digest = "sha256:" + "ab12" + "0" * 60
    assert artifact_path(digest) == "sha256/ab/12/ab12" + "0" * 60


def test_receipts_for_a_leased_entry() -> None:
    from fleetforge import UsageError as Misuse
    from fleetforge.contracts import FleetInboxEntry, FleetReceipt

    example = json.loads(
        json.dumps(__import__("fleetforge").schemas.load("fleet_inbox_entry")["examples"][0])
    )
    entry = FleetInboxEntry.model_validate(example)
    ok = FleetReceipt.success(entry, {"outline": []}, usage={"total_tokens": 5})  # type: ignore[arg-type]
    assert (ok.task_id, ok.attempt, ok.worker_id, ok.fencing_token) == (
        entry.task.task_id,
        1,
        "wkr_planner_1",
        1,
    )
    assert ok.result.outcome == "success"
    bad = FleetReceipt.failure(entry, "timeout", "model call timed out")
    assert (bad.result.outcome, bad.result.kind) == ("failure", "timeout")  # type: ignore[union-attr]
    with pytest.raises(Misuse, match="is not leased"):
        FleetReceipt.success(entry.model_copy(update={"lease": None}), 1)
