"""The published JSON Schemas: well-formed, up to date, and in agreement with the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter

from fleetforge import ContractError, NotFoundError, schemas
from fleetforge.schemas._build import CATALOG, build_all, render
from tests.schema_strategies import instances

SCHEMA_DIR = Path(schemas.__file__).parent
ENTRIES = {entry.name: entry for entry in CATALOG}
ADAPTERS = {name: TypeAdapter(entry.type) for name, entry in ENTRIES.items()}


def _dump(name: str, value: Any) -> Any:
    return ADAPTERS[name].dump_python(value, mode="json")


def test_committed_files_match_the_models() -> None:
    """Regenerate with `make schemas` when this fails (and review the diff: it is the contract)."""
    built = build_all()
    on_disk = {p.stem: p.read_text("utf-8") for p in SCHEMA_DIR.glob("*.json")}
    assert sorted(on_disk) == sorted(built)
    for name, doc in built.items():
        assert on_disk[name] == render(doc), f"{name}.json is out of date: run `make schemas`"


def test_every_seed_type_is_published() -> None:
    expected = {
        "run_spec", "step", "run", "run_event", "artifact", "agent_run",
        "fleet_run", "fleet_task_spec", "fleet_inbox_entry", "fleet_receipt", "fleet_score",
        "fleet_scorer_spec", "fleet_task_result", "fleet_task_failure_kind", "fleet_worker_spec",
        "fleet_worker_event", "fleet_worker_event_payload", "fleet_worker_status",
        "fleet_worker_auth", "fleet_host_spec", "fleet_trust_level", "fleet_capability_grant",
        "fleet_secret_ref", "fleet_security_policy", "fleet_task_budget", "fleet_retry_policy",
        "fleet_alert_policy", "fleet_alert_endpoint", "fleet_alert_channel",
        "fleet_alert_event_class", "fleet_artifact_ref", "fleet_artifact_kind",
        "fleet_environment_requirements", "fleet_workspace_requirements",
        "fleet_task_worker_profile", "fleet_run_status", "fleet_protocol_version",
    }  # fmt: skip
    assert expected <= set(schemas.names())


@pytest.mark.parametrize("name", schemas.names())
def test_schema_is_well_formed(name: str) -> None:
    doc = schemas.load(name)
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == schemas.schema_id(name)
    assert doc["title"]
    assert doc["description"]
    assert doc["examples"], f"{name} has no example"


def _properties(node: Any, where: str = "") -> list[tuple[str, Any]]:
    found = []
    if isinstance(node, dict):
        for prop, sub in (node.get("properties") or {}).items():
            found.append((f"{where}/properties/{prop}", sub))
        for key, sub in node.items():
            if key not in {"examples", "default", "const", "enum"}:
                found += _properties(sub, f"{where}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            found += _properties(sub, f"{where}/{i}")
    return found


@pytest.mark.parametrize("name", schemas.names())
def test_every_property_has_a_description(name: str) -> None:
    doc = schemas.load(name)
    missing = [
        where
        for where, sub in _properties(doc)
        # `if` and `not` hold probes, not properties
        if "description" not in sub and "/if/" not in where and "/not/" not in where
    ]
    assert not missing


@pytest.mark.parametrize("name", schemas.names())
def test_examples_validate_and_load_into_the_model(name: str) -> None:
    for example in schemas.load(name)["examples"]:
        schemas.validate(name, example)
        if name in ADAPTERS:
            model = ADAPTERS[name].validate_python(example)
            schemas.validate(name, _dump(name, model))


@pytest.mark.parametrize("name", sorted(ENTRIES))
@settings(max_examples=40)
@given(data=st.data())
def test_generated_instances_round_trip(name: str, data: st.DataObject) -> None:
    """schema instance → model → JSON → valid under the schema → the same model again."""
    instance = data.draw(instances(name))
    schemas.validate(name, instance)
    model = ADAPTERS[name].validate_python(instance)
    dumped = _dump(name, model)
    schemas.validate(name, dumped)
    assert ADAPTERS[name].validate_python(dumped) == model


def test_unknown_schema_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="no schema named 'nope'"):
        schemas.load("nope")


def test_validators_are_built_once() -> None:
    assert schemas.validator("run_spec") is schemas.validator("run_spec")


def test_references_resolve_across_files_by_id() -> None:
    task = json.loads(json.dumps(schemas.load("fleet_task_spec")["examples"][0]))
    task["budget"] = {"max_tokens": 0}
    task["retry"] = {"retry_on": ["sometimes"]}
    assert [d.pointer for d in schemas.errors("fleet_task_spec", task)] == [
        "/budget/max_tokens",
        "/retry/retry_on/0",
    ]


def test_event_errors_point_into_the_selected_type() -> None:
    event = {"event_id": "e1", "type": "task_leased", "run_id": "r1", "at": "2026-01-01T00:00:00Z"}
    event["data"] = {"task_id": "t1"}
    pointers = [d.pointer for d in schemas.errors("run_event", event)]
    assert pointers == [
        "/data/attempt",
        "/data/entry_id",
        "/data/expires_at",
        "/data/fencing_token",
        "/data/worker_id",
    ]


def test_unknown_event_type_names_the_type_field() -> None:
    event = {"event_id": "e1", "type": "run_exploded", "run_id": "r1", "at": "2026-01-01T00:00Z"}
    [detail] = schemas.errors("run_event", {**event, "data": {}})
    assert detail.pointer == "/type"
    assert "run_exploded" in detail.message


@pytest.mark.parametrize("value", [1.0, True, "3"])
def test_integers_are_strict(value: Any) -> None:
    assert not schemas.is_valid("fleet_task_budget", {"max_tokens": value})


@pytest.mark.parametrize("value", ["yesterday", "2026-11-22T10:00:00", "2026-11-22 10:00:00Z"])
def test_timestamps_need_rfc3339_with_offset(value: str) -> None:
    lease = {"worker_id": "w", "fencing_token": 1, "leased_at": value, "expires_at": value}
    assert not schemas.is_valid("fleet_lease", lease)


def test_protocol_types_accept_unknown_fields() -> None:
    budget = {"max_tokens": 10, "added_in_protocol_1_1": True}
    schemas.validate("fleet_task_budget", budget)
    assert ADAPTERS["fleet_task_budget"].validate_python(budget).max_tokens == 10


def test_run_specs_reject_unknown_fields_by_name() -> None:
    spec = {"name": "x", "seed": 1, "steps": [{"id": "a", "type": "tool", "tool": "t"}]}
    with pytest.raises(ContractError) as info:
        schemas.validate("run_spec", {**spec, "stesp": []})
    assert [(d.pointer, d.message) for d in info.value.details] == [("/stesp", "unknown field")]


def test_alert_endpoint_takes_url_or_url_ref_not_both() -> None:
    both = {"channel": "webhook", "url": "https://x", "url_ref": {"ref": "env://X"}}
    [detail] = schemas.errors("fleet_alert_endpoint", both)
    assert detail.message == "give either url or url_ref, not both"
    with pytest.raises(ValueError, match="not both"):
        ADAPTERS["fleet_alert_endpoint"].validate_python(both)
    schemas.validate("fleet_alert_endpoint", {**both, "url": None})
