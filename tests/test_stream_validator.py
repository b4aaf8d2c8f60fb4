"""StreamValidator (schemas): validating a stream of envelopes incrementally reports exactly what
full validation reports, however the stream interleaves valid and invalid instances."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fleetforge import schemas
from fleetforge.errors import ContractError

BASE: dict[str, Any] = {
    "protocol_version": "1.0",
    "kind": "emit",
    "run_id": "run_1",
    "step_id": "plan",
    "task_id": "run_1.plan",
    "adapter": {"name": "t", "version": "1"},
    "seq": 1,
    "at": "2026-11-23T00:00:00+00:00",
    "seed": 3,
    "trace": {},
    "event": "message",
    "payload": {"content": "hi"},
}

BROKEN: list[tuple[str, Any]] = [
    ("seq", -1),
    ("seq", "2"),
    ("seq", True),
    ("at", "yesterday"),
    ("at", "2026-11-23T00:00:00"),
    ("event", "exploded"),
    ("payload", ["not", "an", "object"]),
    ("run_id", "not an id!"),
    ("adapter", {"name": ""}),
    ("seed", 0),
    ("trace", {"traceparent": 5}),
    ("kind", "nonsense"),
]


def full_errors(instance: Any) -> set[tuple[str, str]]:
    return {(d.pointer, d.message) for d in schemas.errors("agent_run", instance)}


def stream_errors(validator: schemas.StreamValidator, instance: Any) -> set[tuple[str, str]]:
    try:
        validator.validate(instance)
    except ContractError as exc:
        return {(d.pointer, d.message) for d in exc.details}
    return set()


@pytest.mark.parametrize(("field", "value"), BROKEN, ids=[f"{f}={v!r}" for f, v in BROKEN])
def test_a_bad_field_after_good_envelopes_is_reported_as_in_full(field: str, value: Any) -> None:
    validator = schemas.StreamValidator("agent_run")
    for seq in range(3):  # the memo now holds valid values of every field
        assert stream_errors(validator, BASE | {"seq": seq}) == set()
    bad = copy.deepcopy(BASE) | {field: value}
    expected = full_errors(bad)
    assert expected, "the case must be invalid"
    assert stream_errors(validator, bad) == expected
    # and a good envelope afterwards is still good
    assert stream_errors(validator, BASE | {"seq": 9}) == set()


def test_missing_fields_and_other_kinds() -> None:
    validator = schemas.StreamValidator("agent_run")
    validator.validate(BASE)
    missing = {k: v for k, v in BASE.items() if k != "event"}
    assert stream_errors(validator, missing) == full_errors(missing)
    complete = {k: v for k, v in BASE.items() if k not in ("event", "payload")}
    complete |= {"kind": "complete", "output": {"x": 1}, "usage": {"input_tokens": -1}}
    assert stream_errors(validator, complete) == full_errors(complete)
    assert stream_errors(validator, "not an object") == full_errors("not an object")


def test_schemas_without_a_simple_shape_are_validated_in_full() -> None:
    validator = schemas.StreamValidator("run_spec")
    bad = {"name": "x", "seed": 1, "steps": [], "unknown": 1}
    assert stream_errors(validator, bad) == full_errors_of("run_spec", bad)


def full_errors_of(name: str, instance: Any) -> set[tuple[str, str]]:
    return {(d.pointer, d.message) for d in schemas.errors(name, instance)}
