"""Scorers: how a task's result is verified before its step counts as completed.

Built in: ``exact``, ``contains``, ``regex``, ``json_schema``, ``numeric_range``; and ``custom``
scorers registered by name with :func:`register_scorer`. Every scorer first selects a value with
its ``pointer`` (a JSON pointer into the output; '' = the whole output).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from fleetforge.contracts import FleetScore
from fleetforge.contracts.protocol import (
    ContainsScorer,
    CustomScorer,
    ExactScorer,
    JsonSchemaScorer,
    NumericRangeScorer,
    RegexScorer,
)
from fleetforge.errors import NotFoundError, UsageError

__all__ = ["CustomScorerFn", "register_scorer", "resolve_pointer", "score", "unregister_scorer"]

CustomScorerFn = Callable[[Any, dict[str, Any]], FleetScore | bool]
"""A custom scorer: (selected value, params) → a FleetScore, or a bool for pass/fail."""

_CUSTOM: dict[str, CustomScorerFn] = {}
_MISSING = object()


def register_scorer(name: str, fn: CustomScorerFn) -> None:
    """Make ``{"kind": "custom", "name": name}`` call ``fn``."""
    if name in _CUSTOM and _CUSTOM[name] is not fn:
        raise UsageError(f"a custom scorer named '{name}' is already registered")
    _CUSTOM[name] = fn


def unregister_scorer(name: str) -> None:
    _CUSTOM.pop(name, None)


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at an RFC 6901 JSON pointer; raise ``LookupError`` when there is none."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise LookupError(f"{pointer!r} is not a JSON pointer")
    value = document
    for raw in pointer[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise LookupError(f"nothing at {pointer}")
    return value


def _verdict(kind: str, passed: bool, reason: str) -> FleetScore:
    return FleetScore(passed=passed, score=1.0 if passed else 0.0, scorer=kind, reason=reason)


def score(spec: Any, output: Any) -> FleetScore:
    """Score ``output`` with a scorer spec (a model of ``FleetScorerSpec``, or None = accept)."""
    if spec is None:
        return _verdict("none", True, "no scorer: accepted")
    try:
        value = resolve_pointer(output, spec.pointer)
    except LookupError as exc:
        return _verdict(_name(spec), False, str(exc))
    if isinstance(spec, ExactScorer):
        ok = value == spec.value
        return _verdict("exact", ok, "equal" if ok else f"expected {spec.value!r}, got {value!r}")
    if isinstance(spec, ContainsScorer):
        return _contains(spec, value)
    if isinstance(spec, RegexScorer):
        ok = isinstance(value, str) and re.search(spec.pattern, value) is not None
        return _verdict("regex", ok, "matched" if ok else f"no match for {spec.pattern!r}")
    if isinstance(spec, JsonSchemaScorer):
        return _json_schema(spec, value)
    if isinstance(spec, NumericRangeScorer):
        return _numeric(spec, value)
    if isinstance(spec, CustomScorer):
        return _custom(spec, value)
    raise UsageError(f"unknown scorer {spec!r}")


def _name(spec: Any) -> str:
    return f"custom:{spec.name}" if isinstance(spec, CustomScorer) else str(spec.kind)


def _contains(spec: ContainsScorer, value: Any) -> FleetScore:
    needle = spec.value
    if isinstance(value, str) and isinstance(needle, str):
        hay, sought = (value, needle) if spec.case_sensitive else (value.lower(), needle.lower())
        ok = sought in hay
    elif isinstance(value, list):
        ok = needle in value
    else:
        return _verdict("contains", False, f"cannot look for {needle!r} in {type(value).__name__}")
    return _verdict("contains", ok, "found" if ok else f"{needle!r} not found")


def _json_schema(spec: JsonSchemaScorer, value: Any) -> FleetScore:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError, best_match

    try:
        validator = Draft202012Validator(spec.schema_)
        error = best_match(validator.iter_errors(value))
    except SchemaError as exc:
        return _verdict("json_schema", False, f"the scorer's schema is invalid: {exc.message}")
    if error is None:
        return _verdict("json_schema", True, "valid")
    where = "/" + "/".join(map(str, error.absolute_path))
    return _verdict("json_schema", False, f"{where}: {error.message}")


def _numeric(spec: NumericRangeScorer, value: Any) -> FleetScore:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return _verdict("numeric_range", False, f"{value!r} is not a number")
    low_ok = spec.min is None or value >= spec.min
    high_ok = spec.max is None or value <= spec.max
    ok = low_ok and high_ok
    return _verdict(
        "numeric_range", ok, "in range" if ok else f"{value} outside [{spec.min}, {spec.max}]"
    )


def _custom(spec: CustomScorer, value: Any) -> FleetScore:
    fn = _CUSTOM.get(spec.name)
    if fn is None:
        raise NotFoundError(f"no custom scorer registered as '{spec.name}'", scorer=spec.name)
    result = fn(value, dict(spec.params))
    if isinstance(result, FleetScore):
        return result
    return _verdict(f"custom:{spec.name}", bool(result), "passed" if result else "failed")
