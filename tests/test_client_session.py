"""FleetClientSession's output-schema checks: the fast path (code fastjsonschema generates) stands
in for jsonschema only where it is never more lenient, and is taken for every fleet tool."""

from __future__ import annotations

import copy
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from fleetforge.client._session import _fast_check
from fleetforge.fleet.service import FleetService
from fleetforge.fleet.store import open_store
from fleetforge.mcp_server.server import build_server

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | st.sampled_from(
        ["", "a", "queued", "leased", "2026-11-29T00:00:00Z", "run_1.a", "-x"]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["tasks", "task", "lease", "attempt", "status", "entry_id", "error", "x"]), inner,
        max_size=3),
    max_leaves=8,
)  # fmt: skip


def _output_schemas() -> dict[str, dict[str, Any]]:
    """Each fleet tool's outputSchema, as the server advertises it."""
    with open_store("sqlite://") as store:
        server = build_server(FleetService(store))
        tools = anyio.run(server.list_tools)
        return {t.name: t.outputSchema for t in tools if t.outputSchema is not None}


OUTPUT_SCHEMAS = _output_schemas()


def test_every_fleet_tool_result_takes_the_fast_path() -> None:
    assert len(OUTPUT_SCHEMAS) >= 15
    slow = [name for name, schema in OUTPUT_SCHEMAS.items() if _fast_check(schema) is None]
    assert slow == []


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/$defs/x", "$defs": {"x": {"type": "string"}}},
        {"type": "array", "prefixItems": [{"type": "string"}]},
        {"type": "array", "items": [{"type": "string"}]},
        {"enum": [1, True]},
        {"const": 0},
        {"type": "object", "unevaluatedProperties": False},
    ],
)
def test_schemas_with_other_keywords_stay_with_jsonschema(schema: dict[str, Any]) -> None:
    assert _fast_check(schema) is None


def test_the_fast_path_leaves_the_result_as_it_came() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "default": 3}}}
    check = _fast_check(schema)
    assert check is not None
    result: dict[str, Any] = {}
    check(result)
    assert result == {}


def _paths(value: Any) -> list[tuple[Any, ...]]:
    """The path of every node in a JSON document, the root's ``()`` first."""
    found: list[tuple[Any, ...]] = [()]
    if isinstance(value, dict | list):
        for step, item in value.items() if isinstance(value, dict) else enumerate(value):
            found += [(step, *p) for p in _paths(item)]
    return found


def _edited(document: Any, path: tuple[Any, ...], new: Any, *, drop: bool) -> Any:
    """A copy of ``document`` with the node at ``path`` replaced by ``new`` (or removed)."""
    if not path:
        return new
    copied = copy.deepcopy(document)
    parent = copied
    for step in path[:-1]:
        parent = parent[step]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return copied


LEASE_RESULT = {
    "tasks": [
        {
            "entry_id": "ent_1",
            "task": {"task_id": "run_1.a", "run_id": "run_1", "step_id": "a"},
            "attempt": 1,
            "status": "leased",
            "priority": 0,
            "enqueued_at": "2026-11-29T00:00:00Z",
            "available_at": "2026-11-29T00:00:00Z",
            "lease": {"worker_id": "w", "fencing_token": 1},
        }
    ]
}


@settings(max_examples=300, deadline=None)
@given(where=st.integers(0, 100), new=JSON, drop=st.booleans())
def test_what_the_fast_path_accepts_jsonschema_accepts(where: int, new: Any, drop: bool) -> None:
    # The lease tool's own schema, and a mutated result: a node replaced by any JSON value, or
    # a key dropped. The fast path may refuse more (jsonschema then decides), never less.
    schema = OUTPUT_SCHEMAS["fleet_lease_task"]
    check = _fast_check(schema)
    assert check is not None
    paths = _paths(LEASE_RESULT)
    document = _edited(LEASE_RESULT, paths[where % len(paths)], new, drop=drop)
    try:
        check(copy.deepcopy(document))
    except Exception:  # refused: jsonschema decides
        return
    assert Draft202012Validator(schema).is_valid(document), document
