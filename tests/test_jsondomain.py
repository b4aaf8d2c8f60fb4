"""The JSON value domain (fleetforge._jsondomain): the checker against an independent reference,
its limits at their edges, and accepted values read back equal from both stores."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetforge._jsondomain import (
    INT_MAX,
    INT_MIN,
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_STRING_BYTES,
    check_json_value,
    deeper_than,
    json_size,
)
from fleetforge.errors import ContractError
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore
from fleetforge.fleet.store._base import canonical_json, json_loads, storage_json


def nest(depth: int, leaf: Any = 1) -> Any:
    """``leaf`` inside ``depth`` arrays."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def pointers(value: Any, **options: Any) -> list[str]:
    with pytest.raises(ContractError) as refused:
        check_json_value(value, **options)
    return [d.pointer for d in refused.value.details]


# ── the reference: the rules written down as plainly as possible ──────────────────────────


def reference(value: Any, depth: int = 0) -> str | None:
    """The first problem's pointer-free reason, or None when the value is in the domain."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if INT_MIN <= value <= INT_MAX else "int"
    if isinstance(value, float):
        return None if math.isfinite(value) else "float"
    if isinstance(value, str):
        if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            return "str"
        return None if len(value.encode()) <= MAX_STRING_BYTES else "long"
    if isinstance(value, list | dict):
        if depth == MAX_DEPTH:
            return "deep"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and reference(key) is not None:
                return "key"
            problem = reference(item, depth + 1)
            if problem is not None:
                return problem
        return None
    return "type"


def locate(document: Any, pointer: str) -> Any:
    """The value a JSON pointer names (an error here means the checker's pointer is wrong)."""
    node = document
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def has_negative_zero(value: Any) -> bool:
    if isinstance(value, float):
        return value == 0 and math.copysign(1.0, value) < 0
    if isinstance(value, list):
        return any(has_negative_zero(v) for v in value)
    if isinstance(value, dict):
        return any(has_negative_zero(v) for v in value.values())
    return False


_LONG = "x" * MAX_STRING_BYTES
text = st.one_of(
    st.text(max_size=8),
    st.text(st.characters(exclude_categories=()), max_size=4),  # NUL and lone surrogates
    st.sampled_from(["a\x00b", "\ud800", "x\udfff", "é" * 3, _LONG, _LONG + "y"]),
)
numbers = st.one_of(
    st.integers(),  # hypothesis favours the edges, huge ones too
    st.sampled_from([INT_MAX, INT_MIN, INT_MAX + 1, INT_MIN - 1, 2**70]),
    st.floats(),  # NaN, ±Infinity, -0.0, subnormals, 1e308
    st.sampled_from([-0.0, 1.2345678901234568e18, 1e16, 5e-324]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4) | text, inner, max_size=4)
    ),
    max_leaves=12,
)
deep_values = st.tuples(st.integers(MAX_DEPTH - 3, MAX_DEPTH + 3), scalars).map(
    lambda t: nest(t[0], t[1])
)


@given(st.one_of(json_values, deep_values))
def test_the_checker_agrees_with_the_reference(value: Any) -> None:
    problem = reference(value)
    if problem is None:
        checked = check_json_value(value, max_bytes=None)
        assert not has_negative_zero(checked)
        assert checked == value  # -0.0 == 0.0: only the sign changed
        assert json.loads(json.dumps(checked)) == checked
        assert json.loads(storage_json(checked)) == checked
        return
    with pytest.raises(ContractError) as refused:
        check_json_value(value, max_bytes=None)
    details = refused.value.details
    assert details, "a refusal names where"
    for detail in details:  # every pointer names a real place (bad keys are shown escaped)
        if "\\u" not in detail.pointer and "…" not in detail.pointer:
            locate(value, detail.pointer)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values)
def test_accepted_values_read_back_equal_from_the_store(store: EventStore, value: Any) -> None:
    """Each example submits its own run into the shared store (append-only; runs are apart)."""
    if reference(value) is not None or json_size(spec_with(value)) > MAX_DOCUMENT_BYTES:
        with pytest.raises(ContractError):
            SyncFleetService(store).submit_run(spec_with(value))
        return
    run = SyncFleetService(store).submit_run(spec_with(value))
    read = SyncFleetService(store).get_run(run.run_id).spec.inputs["v"]  # a fresh service
    assert read == value
    assert not has_negative_zero(read)
    [submitted] = store.query_rows(run_id=run.run_id, types=["run_submitted"])
    assert submitted.data["spec"]["inputs"]["v"] == value
    [enqueued] = store.query_rows(run_id=run.run_id, types=["task_enqueued"])
    assert enqueued.data["task"]["inputs"]["v"] == value


def spec_with(value: Any) -> dict[str, Any]:
    return {
        "name": "domain",
        "seed": 1,
        "inputs": {"v": value},
        "steps": [{"id": "a", "type": "tool", "tool": "t", "inputs": {"v": {"from": "inputs.v"}}}],
    }


# ── the limits at their edges ───────────────────────────────────────────────────────────────


def test_numbers() -> None:
    assert check_json_value([INT_MAX, INT_MIN, 1e308, -1e308, 5e-324]) == [
        INT_MAX, INT_MIN, 1e308, -1e308, 5e-324
    ]  # fmt: skip
    value = {"a": [1, -0.0], "b": -0.0}
    checked = check_json_value(value)
    assert checked == {"a": [1, 0.0], "b": 0.0}
    assert not has_negative_zero(checked)
    assert has_negative_zero(value)
    bad = {
        "nan": math.nan,
        "inf": [math.inf],
        "ninf": -math.inf,
        "big": 2**63,
        "small": -(2**63) - 1,
    }
    assert sorted(pointers(bad)) == ["/big", "/inf/0", "/nan", "/ninf", "/small"]


def test_messages_say_what_is_wrong() -> None:
    with pytest.raises(ContractError) as refused:
        check_json_value({"x": [math.nan, 2**70, "a\x00", "\udc80"]}, what="run spec")
    assert refused.value.message == "invalid run spec: 4 problems with JSON values"
    messages = {d.pointer: d.message for d in refused.value.details}
    assert "NaN is not a JSON number" in messages["/x/0"]
    assert "71 bits" in messages["/x/1"]
    assert "NUL" in messages["/x/2"]
    assert "lone surrogate (\\udc80" in messages["/x/3"]


def test_strings_and_keys() -> None:
    check_json_value({"k": "x" * MAX_STRING_BYTES})
    check_json_value("é" * (MAX_STRING_BYTES // 2))  # 2 bytes each: exactly 1 MiB
    assert pointers({"k": "x" * (MAX_STRING_BYTES + 1)}) == ["/k"]
    assert pointers("é" * (MAX_STRING_BYTES // 2) + "x") == [""]
    assert pointers({"a/b": ["ok", "\x00"]}) == ["/a~1b/1"]
    assert pointers({"bad\x00key": 1, 7: 2}) == ["/bad\\u0000key", "/7"]
    check_json_value("emoji 😀, \n\t controls and é are text")


def test_depth() -> None:
    assert check_json_value(nest(MAX_DEPTH)) == nest(MAX_DEPTH)
    assert pointers(nest(MAX_DEPTH + 1)) == ["/0" * MAX_DEPTH]
    assert pointers({"a": nest(MAX_DEPTH)}) == ["/a" + "/0" * (MAX_DEPTH - 1)]
    assert pointers(nest(100_000)) == ["/0" * MAX_DEPTH]  # no RecursionError
    loop: list[Any] = []
    loop.append(loop)
    assert pointers(loop) == ["/0" * MAX_DEPTH]
    assert deeper_than(nest(10), 10) is None
    assert deeper_than({"a": nest(10)}, 10) == "/a" + "/0" * 9


def test_document_size() -> None:
    items = [{"id": i, "text": f"item {i} " + "x" * 80} for i in range(10_000)]
    spec_sized = {"inputs": {"items": items}}
    assert json_size(spec_sized) < MAX_DOCUMENT_BYTES  # a 10,000-item map input fits
    assert check_json_value(spec_sized) is spec_sized
    big = ["x" * (MAX_STRING_BYTES - 2)] * 4
    assert json_size(big) > MAX_DOCUMENT_BYTES
    with pytest.raises(ContractError, match="over the 4 MiB limit"):
        check_json_value(big)
    assert check_json_value(big, max_bytes=None) is big


def test_types() -> None:
    assert check_json_value((1, (2,))) == [1, [2]]
    assert pointers({"when": object(), "set": {1}}) == ["/when", "/set"]
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    assert pointers({"at": now}) == ["/at"]
    assert check_json_value({"at": now}, lenient=True) == {"at": now}  # a model's python dump


def test_pointer_prefix_and_every_problem_at_once() -> None:
    found = pointers({"a": [math.nan] * 60}, pointer="/output")
    assert len(found) == 50  # bounded
    assert found[0] == "/output/a/0"


@pytest.mark.parametrize("number", [1.2345678901234568e18, 1e16, 1e308, -1e22, 5e-324, 0.1])
def test_floats_are_written_to_read_back_as_the_same_floats(number: float) -> None:
    for text_ in (storage_json({"n": [number]}), canonical_json({"n": [number], "a": "e+"})):
        assert "e+" not in text_.replace('"e+"', "")
        (read,) = json.loads(text_)["n"]
        assert type(read) is float
        assert read == number


def test_floats_read_back_as_floats_from_both_stores(store: EventStore) -> None:
    numbers = [1.2345678901234568e18, 1e16, -1e308, 1e22, 5e-324, 0.1, 3.0, INT_MAX, INT_MIN]
    fleet = SyncFleetService(store)
    run = fleet.submit_run(spec_with(numbers))
    read = SyncFleetService(store).get_run(run.run_id).spec.inputs["v"]
    assert read == numbers
    assert [type(n) for n in read] == [type(n) for n in numbers]
    [row] = store.query_rows(run_id=run.run_id, types=["run_submitted"])
    assert [type(n) for n in row.data["spec"]["inputs"]["v"]] == [type(n) for n in numbers]


@pytest.mark.parametrize(
    "text",
    [
        '{"v": 1180591620717411303424}',  # past 64 bits: orjson would read a float
        "[-9223372036854775809, 9223372036854775807, 18446744073709551616]",
        '{"x": NaN, "y": [Infinity, -Infinity]}',  # orjson refuses these
        '{"s": "12345678901234567890 in a string", "f": 1.2345678901234567890}',
        '{"a": [1, 2.5, "\\u00e9", null, true, {"b": []}]}',
    ],
)
def test_stored_json_reads_back_as_json_loads_reads_it(text: str) -> None:
    """Stored JSON is read with orjson for speed, yet always to the value json.loads gives
    (records stored before the value domain may hold huge integers or NaN)."""
    want = json.loads(text)
    for given_ in (text, text.encode()):
        got = json_loads(given_)
        assert repr(got) == repr(want)  # repr: nan != nan, and 1e21 == 10**21 as numbers
