"""``validate_run_spec``: the one gate every run spec passes before anything is written.

It checks the JSON value domain (:mod:`fleetforge._jsondomain`), then runs the JSON Schema
(``run_spec.json``) and the rules a schema cannot express, and reports every problem at once as
one :class:`~fleetforge.errors.ContractError`:

- the seed: required, a positive integer (not 0, negative, a float, a string or a bool);
- step ids are unique; ``depends_on`` names existing steps; the dependencies have no cycle;
- ``breakpoints`` name existing steps;
- ``{"from": "inputs.NAME"}`` names a run input; ``{"from": "steps.ID.output"}`` names a step
  this one depends on, directly or through other steps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from fleetforge import schemas
from fleetforge._jsondomain import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_STRING_BYTES,
    check_json_value,
)
from fleetforge.contracts._base import REF_PATTERN
from fleetforge.contracts.spec import RunSpec
from fleetforge.errors import ContractError, ErrorDetail

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_STRING_BYTES",
    "SEED_MESSAGE",
    "check_json_value",
    "pydantic_details",
    "validate_run_spec",
]

SEED_MESSAGE = "a positive integer seed is required"
_REF = re.compile(REF_PATTERN)


def validate_run_spec(spec: Mapping[str, Any] | RunSpec) -> RunSpec:
    """Check a run spec completely and return it as a model; raise ``ContractError`` otherwise.

    First the JSON value domain (:func:`check_json_value`: finite numbers, 64-bit integers,
    strings without NUL or surrogates, depth 64, 4 MiB), then the rules below."""
    data: Any = (
        spec.model_dump(mode="python", exclude_none=True) if isinstance(spec, RunSpec) else spec
    )
    if not isinstance(data, Mapping):
        raise ContractError(
            "invalid run spec: it must be a JSON object",
            details=[ErrorDetail("", f"expected an object, got {_json_type(data)}")],
        )
    data = check_json_value(data, what="run spec")
    problems = [d for d in schemas.errors("run_spec", data) if not d.pointer.startswith("/seed")]
    problems += _seed_problems(data)
    problems += _dag_problems(data)
    if problems:
        problems = sorted(set(problems), key=lambda d: (d.pointer, d.message))
        noun = "problem" if len(problems) == 1 else "problems"
        raise ContractError(f"invalid run spec: {len(problems)} {noun}", details=problems)
    try:
        return RunSpec.model_validate(data)
    except ValidationError as exc:  # the schema passed; a model-only rule did not
        details = pydantic_details(exc)
        raise ContractError(f"invalid run spec: {len(details)} problems", details=details) from exc


def pydantic_details(exc: ValidationError, prefix: str = "") -> list[ErrorDetail]:
    """Translate a pydantic error into (JSON pointer, message) details."""
    out = []
    for err in exc.errors(include_url=False):
        parts = [str(p) for p in err["loc"] if not _is_union_tag(p)]
        pointer = prefix + "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)
        out.append(ErrorDetail(pointer, err["msg"]))
    return out


def _is_union_tag(part: object) -> bool:
    # pydantic puts the discriminator value (e.g. 'agent') into the location of union members
    return isinstance(part, str) and part in {"agent", "tool", "llm", "human", "map"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def _seed_problems(data: Mapping[str, Any]) -> list[ErrorDetail]:
    if "seed" not in data:
        return [ErrorDetail("/seed", f"{SEED_MESSAGE}; the spec has none")]
    seed = data["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        return [ErrorDetail("/seed", f"{SEED_MESSAGE}; got {_json_type(seed)}: {seed!r}")]
    if seed < 1:
        return [ErrorDetail("/seed", f"{SEED_MESSAGE}; got {seed}")]
    return []


def _steps(data: Mapping[str, Any]) -> list[tuple[int, str, Mapping[str, Any]]]:
    """(index, id, step) of every step that is an object with a string id."""
    steps = data.get("steps")
    if not isinstance(steps, list):
        return []
    return [
        (i, s["id"], s)
        for i, s in enumerate(steps)
        if isinstance(s, Mapping) and isinstance(s.get("id"), str)
    ]


def _dag_problems(data: Mapping[str, Any]) -> list[ErrorDetail]:
    steps = _steps(data)
    problems: list[ErrorDetail] = []
    first: dict[str, int] = {}
    for i, sid, _ in steps:
        if sid in first:
            where = f"/steps/{first[sid]}"
            problems.append(ErrorDetail(f"/steps/{i}/id", f"duplicate step id '{sid}' ({where})"))
        else:
            first[sid] = i

    deps: dict[str, list[str]] = {}
    for i, sid, step in steps:
        raw = step.get("depends_on", [])
        names = [d for d in raw if isinstance(d, str)] if isinstance(raw, list) else []
        for k, dep in enumerate(names):
            if dep not in first:
                problems.append(ErrorDetail(f"/steps/{i}/depends_on/{k}", f"unknown step '{dep}'"))
        deps.setdefault(sid, []).extend(d for d in names if d in first)

    problems += _cycle_problems(deps, first)

    breakpoints = data.get("breakpoints", [])
    if isinstance(breakpoints, list):
        for k, name in enumerate(breakpoints):
            if isinstance(name, str) and name not in first:
                problems.append(ErrorDetail(f"/breakpoints/{k}", f"unknown step '{name}'"))

    run_inputs = data.get("inputs")
    input_names = set(run_inputs) if isinstance(run_inputs, Mapping) else set()
    ancestors: dict[str, set[str]] = {}
    for i, sid, step in steps:
        for pointer, ref in _refs(step, f"/steps/{i}"):
            match = _REF.fullmatch(ref)
            if match is None:
                continue  # the schema reports the malformed reference
            if match["input"] is not None and match["input"] not in input_names:
                problems.append(ErrorDetail(pointer, f"unknown run input '{match['input']}'"))
            parent = match["step"]
            if parent is None:
                continue
            if sid not in ancestors:
                ancestors[sid] = _ancestors(deps, sid)
            if parent not in first:
                problems.append(ErrorDetail(pointer, f"unknown step '{parent}'"))
            elif parent not in ancestors[sid]:
                problems.append(
                    ErrorDetail(
                        pointer,
                        f"step '{sid}' uses the output of '{parent}' but does not depend on it "
                        "(add it to depends_on)",
                    )
                )
    return problems


def _refs(step: Mapping[str, Any], where: str) -> Iterator[tuple[str, str]]:
    """(pointer of the `from` string, reference) of every input reference in a step."""
    inputs = step.get("inputs")
    if isinstance(inputs, Mapping):
        for name, value in inputs.items():
            if isinstance(value, Mapping) and isinstance(value.get("from"), str):
                yield f"{where}/inputs/{_escape(str(name))}/from", value["from"]
    over = step.get("over")
    if isinstance(over, Mapping) and isinstance(over.get("from"), str):
        yield f"{where}/over/from", over["from"]
    inner = step.get("step")
    if isinstance(inner, Mapping):
        yield from _refs(inner, f"{where}/step")


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _cycle_problems(deps: Mapping[str, list[str]], index: Mapping[str, int]) -> list[ErrorDetail]:
    """One problem per dependency cycle, found by depth-first search (white/grey/black)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    problems: list[ErrorDetail] = []
    for root in deps:
        if state.get(root):
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(deps.get(root, [])))]
        state[root] = 1
        path.append(root)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(child) == 1:
                cycle = [*path[path.index(child) :], child]
                problems.append(
                    ErrorDetail(
                        f"/steps/{index[node]}/depends_on",
                        "dependency cycle: " + " -> ".join(cycle),
                    )
                )
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(deps.get(child, []))))
    return problems


def _ancestors(deps: Mapping[str, list[str]], node: str) -> set[str]:
    """The transitive dependencies of one step (iterative; cycles are reported elsewhere)."""
    found: set[str] = set()
    frontier = list(deps.get(node, []))
    while frontier:
        dep = frontier.pop()
        if dep not in found:
            found.add(dep)
            frontier.extend(deps.get(dep, []))
    return found
