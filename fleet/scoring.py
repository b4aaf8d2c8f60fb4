"""Scorers: how a task's result is verified before its step counts as completed.

Built in: ``exact``, ``contains``, ``regex``, ``json_schema``, ``numeric_range``; and ``custom``
scorers registered by name with :func:`register_scorer`. Every scorer first selects a value with
its ``pointer`` (a JSON pointer into the output; '' = the whole output).

Custom scorers live in the process that judges receipts (the one running ``FleetService``:
``fleetforge serve``, ``mcp``, ``work``, ``worker``, or your own). They are registered

- by the ``fleetforge.scorers`` entry-point group, loaded the first time a custom scorer is
  needed (``name = "package.module:function"`` registers ``function`` as ``name``);
- by importing a module that calls :func:`register_scorer` (``--scorers MODULE`` on those
  commands, :func:`load_scorers` in code).

``submit_run`` refuses a spec naming a custom scorer this process does not know
(:func:`require_scorers`); a receipt that reaches one anyway (a spec submitted before, or by a
process that knew it) fails its attempt with kind ``internal`` and the reason, instead of
leaving the task leased.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from fleetforge.contracts import FleetScore
from fleetforge.contracts.protocol import (
    ContainsScorer,
    CustomScorer,
    ExactScorer,
    JsonSchemaScorer,
    NumericRangeScorer,
    RegexScorer,
)
from fleetforge.errors import ContractError, ErrorDetail, InternalError, UsageError

if TYPE_CHECKING:
    from fleetforge.contracts import RunSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "CustomScorerFn",
    "ScorerError",
    "load_scorers",
    "register_scorer",
    "require_scorers",
    "resolve_pointer",
    "score",
    "scorer_names",
    "unregister_scorer",
]

ENTRY_POINT_GROUP = "fleetforge.scorers"

CustomScorerFn = Callable[[Any, dict[str, Any]], FleetScore | bool]
"""A custom scorer: (selected value, params) → a FleetScore, or a bool for pass/fail."""

_CUSTOM: dict[str, CustomScorerFn] = {}
_MISSING = object()
_entry_points_lock = threading.Lock()
_entry_points_loaded = False
_entry_point_errors: list[str] = []
log = logging.getLogger("fleetforge.scoring")


class ScorerError(InternalError):
    """A custom scorer is not registered in this process, or failed: the attempt fails with
    kind ``internal`` (the service catches it; it never reaches a worker)."""


def register_scorer(name: str, fn: CustomScorerFn) -> None:
    """Make ``{"kind": "custom", "name": name}`` call ``fn``."""
    if not callable(fn):
        raise UsageError(f"custom scorer '{name}' is not callable: {fn!r}")
    if name in _CUSTOM and _CUSTOM[name] is not fn:
        raise UsageError(f"a custom scorer named '{name}' is already registered")
    _CUSTOM[name] = fn


def unregister_scorer(name: str) -> None:
    _CUSTOM.pop(name, None)


def scorer_names() -> list[str]:
    """The custom scorers this process knows (entry points included), sorted."""
    _load_entry_points()
    return sorted(_CUSTOM)


def load_scorers(modules: Sequence[str] = ()) -> list[str]:
    """Load the ``fleetforge.scorers`` entry points and import ``modules`` (each registers its
    scorers on import); return the names known. A module that cannot be imported, or an
    entry point that cannot be loaded, is a UsageError: a judging process should not start
    without the scorers it was asked for."""
    _load_entry_points()
    if _entry_point_errors:
        raise UsageError("cannot load custom scorers: " + "; ".join(_entry_point_errors))
    if os.getcwd() not in sys.path:  # like `python -m`: modules in the current directory import
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise UsageError(f"--scorers {name}: cannot import it: {exc}") from exc
    return sorted(_CUSTOM)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    with _entry_points_lock:
        if not _entry_points_loaded:
            _register_entry_points()
            _entry_points_loaded = True


def _register_entry_points() -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            fn = entry.load()
            if entry.name not in _CUSTOM:  # one registered in code wins
                register_scorer(entry.name, fn)
        except Exception as exc:  # a broken plugin must not stop the fleet's judging
            problem = f"entry point {entry.name} = {entry.value}: {type(exc).__name__}: {exc}"
            log.error("cannot load custom scorer %s", problem)
            _entry_point_errors.append(problem)


def require_scorers(spec: RunSpec) -> None:
    """Raise ContractError for each custom scorer the spec names that this process does not
    know (it would judge the step's receipts)."""
    named = list(_custom_scorers(spec))
    if not named:
        return
    known = scorer_names()
    missing = [
        ErrorDetail(
            pointer,
            f"no custom scorer named '{name}' is registered in this fleet process (known: "
            f"{', '.join(known) or 'none'}); load it with --scorers MODULE or the "
            f"'{ENTRY_POINT_GROUP}' entry-point group",
        )
        for pointer, name in named
        if name not in known
    ]
    if missing:
        noun = "scorer" if len(missing) == 1 else "scorers"
        raise ContractError(f"invalid run spec: unknown custom {noun}", details=missing)


def _custom_scorers(spec: RunSpec) -> Iterator[tuple[str, str]]:
    for i, step in enumerate(spec.steps):
        for where, node in (
            (f"/steps/{i}", step),
            (f"/steps/{i}/step", getattr(step, "step", None)),
        ):
            scorer = getattr(node, "scorer", None)
            if isinstance(scorer, CustomScorer):
                yield f"{where}/scorer/name", scorer.name


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
        _load_entry_points()
        fn = _CUSTOM.get(spec.name)
    if fn is None:
        raise ScorerError(
            f"no custom scorer named '{spec.name}' is registered in the process that judged "
            f"this receipt (load it with --scorers MODULE or the '{ENTRY_POINT_GROUP}' "
            "entry-point group)",
            scorer=f"custom:{spec.name}",
        )
    try:
        result = fn(value, dict(spec.params))
    except Exception as exc:
        raise ScorerError(
            f"custom scorer '{spec.name}' raised {type(exc).__name__}: {exc}",
            scorer=f"custom:{spec.name}",
        ) from exc
    if isinstance(result, FleetScore):
        return result
    return _verdict(f"custom:{spec.name}", bool(result), "passed" if result else "failed")
