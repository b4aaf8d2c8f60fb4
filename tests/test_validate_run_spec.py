"""validate_run_spec: schema + DAG + seed rules, every problem reported at once."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fleetforge import ContractError, RunSpec, schemas, validate_run_spec
from fleetforge.contracts import InputRef, MapStep
from tests.schema_strategies import json_values


def spec(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "t", "seed": 7, "steps": list(steps), **fields}


def tool(step_id: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "tool", "tool": "echo", "depends_on": list(deps), **fields}


def problems(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(ContractError) as info:
        validate_run_spec(document)
    return [(d.pointer, d.message) for d in info.value.details]


def test_the_design_example_is_valid() -> None:
    example = schemas.load("run_spec")["examples"][0]
    model = validate_run_spec(example)
    assert isinstance(model, RunSpec)
    assert [s.id for s in model.steps] == ["plan", "write", "each", "review"]
    write = model.step("write")
    outline = write.inputs["outline"]
    assert isinstance(outline, InputRef)
    assert (outline.step_id, outline.pointer) == ("plan", "/outline")
    assert write.inputs["style"] == "short"
    each = model.step("each")
    assert isinstance(each, MapStep)
    assert isinstance(each.over, InputRef)


def test_a_model_passes_through_unchanged() -> None:
    model = validate_run_spec(spec(tool("a"), tool("b", "a")))
    assert validate_run_spec(model) == model


@pytest.mark.parametrize(
    ("seed", "shown"),
    [
        (0, "got 0"),
        (-3, "got -3"),
        (1.5, "got a number: 1.5"),
        (1.0, "got a number: 1.0"),
        ("42", "got a string: '42'"),
        (True, "got a boolean: True"),
        (None, "got null: None"),
    ],
)
def test_seed_must_be_a_positive_integer(seed: Any, shown: str) -> None:
    assert problems(spec(tool("a"), seed=seed)) == [
        ("/seed", f"a positive integer seed is required; {shown}")
    ]


def test_missing_seed_is_rejected_with_the_seed_message() -> None:
    document = spec(tool("a"))
    del document["seed"]
    assert problems(document) == [
        ("/seed", "a positive integer seed is required; the spec has none")
    ]


def test_duplicate_step_ids() -> None:
    assert problems(spec(tool("a"), tool("b"), tool("a"))) == [
        ("/steps/2/id", "duplicate step id 'a' (/steps/0)")
    ]


def test_unknown_dependencies() -> None:
    assert problems(spec(tool("a"), tool("b", "a", "ghost"))) == [
        ("/steps/1/depends_on/1", "unknown step 'ghost'")
    ]


@pytest.mark.parametrize(
    ("steps", "cycle"),
    [
        ([tool("a", "a")], "a -> a"),
        ([tool("a", "b"), tool("b", "a")], "a -> b -> a"),
        ([tool("r"), tool("a", "r", "c"), tool("b", "a"), tool("c", "b")], "a -> c -> b -> a"),
    ],
)
def test_cycles(steps: list[dict[str, Any]], cycle: str) -> None:
    [(pointer, message)] = problems(spec(*steps))
    assert pointer.endswith("/depends_on")
    assert message == f"dependency cycle: {cycle}"


def test_breakpoints_must_name_steps() -> None:
    assert problems(spec(tool("a"), breakpoints=["a", "nope"])) == [
        ("/breakpoints/1", "unknown step 'nope'")
    ]


def test_references_to_run_inputs_must_exist() -> None:
    step = tool("a", inputs={"x": {"from": "inputs.topic"}, "y": {"from": "inputs.other"}})
    assert problems(spec(step, inputs={"topic": "t"})) == [
        ("/steps/0/inputs/y/from", "unknown run input 'other'")
    ]


def test_references_to_steps_need_a_dependency_path() -> None:
    uses = {"p": {"from": "steps.a.output#/x"}}
    assert problems(spec(tool("a"), tool("b", inputs=uses))) == [
        (
            "/steps/1/inputs/p/from",
            "step 'b' uses the output of 'a' but does not depend on it (add it to depends_on)",
        )
    ]
    # a transitive dependency is enough
    validate_run_spec(spec(tool("a"), tool("m", "a"), tool("b", "m", inputs=uses)))


def test_references_to_unknown_steps() -> None:
    step = tool("b", inputs={"p": {"from": "steps.zz.output"}})
    assert problems(spec(step)) == [("/steps/0/inputs/p/from", "unknown step 'zz'")]


def test_malformed_references_explain_the_syntax() -> None:
    [(pointer, message)] = problems(spec(tool("a", inputs={"p": {"from": "a.output"}})))
    assert pointer == "/steps/0/inputs/p/from"
    assert message == (
        "'a.output' is not a reference: inputs.NAME or steps.ID.output, "
        "optionally then #/json/pointer"
    )


def test_map_references_are_checked_too() -> None:
    fan = {
        "id": "each",
        "type": "map",
        "over": {"from": "steps.plan.output#/items"},
        "step": {"type": "agent", "agent": "x", "inputs": {"t": {"from": "inputs.nope"}}},
    }
    assert problems(spec(tool("plan"), fan)) == [
        ("/steps/1/over/from", "step 'each' uses the output of 'plan' but does not depend on it "
         "(add it to depends_on)"),
        ("/steps/1/step/inputs/t/from", "unknown run input 'nope'"),
    ]  # fmt: skip


def test_all_problems_are_reported_together() -> None:
    document = spec(
        tool("a", "ghost"),
        tool("a"),
        {"id": "b", "type": "agent"},
        seed=0,
        breakpoints=["zz"],
        labels={"ok": 3},
    )
    assert problems(document) == [
        ("/breakpoints/0", "unknown step 'zz'"),
        ("/labels/ok", "3 is not of type 'string'"),
        ("/seed", "a positive integer seed is required; got 0"),
        ("/steps/0/depends_on/0", "unknown step 'ghost'"),
        ("/steps/1/id", "duplicate step id 'a' (/steps/0)"),
        ("/steps/2/agent", "required field is missing"),
    ]


def test_unknown_step_type_and_fields() -> None:
    assert problems(spec({"id": "a", "type": "robot"})) == [
        ("/steps/0/type", "'robot' is not one of ['agent', 'human', 'llm', 'map', 'tool']")
    ]
    assert problems(spec(tool("a", dependson=["x"]))) == [("/steps/0/dependson", "unknown field")]


@pytest.mark.parametrize("document", [None, [], "spec", 3])
def test_non_objects_are_rejected(document: Any) -> None:
    [(pointer, message)] = problems(document)
    assert pointer == ""
    assert message.startswith("expected an object")


# ── fuzzing: whatever the input, the answer is a RunSpec or a ContractError ──────────────────

_VALID = schemas.load("run_spec")["examples"][0]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    document = copy.deepcopy(_VALID)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(document) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "duplicate"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        else:
            parent[path[-1]] = draw(json_values | st.sampled_from(["plan", "steps.plan.output"]))
    return document


@settings(max_examples=500)
@given(mutated_specs())
def test_mutated_specs_yield_a_spec_or_a_contract_error(document: Any) -> None:
    try:
        result = validate_run_spec(document)
    except ContractError as error:
        event("rejected")
        details = error.details
    else:
        event("still valid")
        assert isinstance(result, RunSpec)
        return
    assert details, "a ContractError always says what and where"


@settings(max_examples=150)
@given(json_values)
def test_arbitrary_json_yields_a_spec_or_a_contract_error(document: Any) -> None:
    with pytest.raises(ContractError):
        validate_run_spec(document)
