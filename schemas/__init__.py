"""The published JSON Schemas (draft 2020-12) and their loader.

Each ``<name>.json`` in this package has ``$id`` ``https://fleetforge.dev/schemas/v1/<name>.json``;
schemas refer to each other by ``$id`` and resolve through one ``referencing`` registry. Validators
are built once and cached. Unions selected by a property (``type`` for ``run_event`` and steps,
``kind`` for ``agent_run`` and scorers) carry an ``x-discriminator`` map, and the validator checks
an instance against the one branch its discriminator names instead of trying every branch.

    >>> from fleetforge import schemas
    >>> schemas.validate("fleet_task_budget", {"max_tokens": 100})
    >>> schemas.errors("fleet_task_budget", {"max_tokens": 0})
    [ErrorDetail(pointer='/max_tokens', message='0 is less than the minimum of 1')]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Protocol

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import extend
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from fleetforge.contracts._base import PATTERN_HINTS, SCHEMA_BASE_URI
from fleetforge.errors import ContractError, ErrorDetail, NotFoundError

__all__ = [
    "SCHEMA_BASE_URI",
    "SchemaValidator",
    "StreamValidator",
    "errors",
    "is_valid",
    "load",
    "names",
    "registry",
    "schema_id",
    "stream_validator",
    "validate",
    "validator",
]


def _is_integer(checker: Any, instance: object) -> bool:
    # JSON integers are written without a fraction: 1.0 is not an integer here (nor is True).
    return isinstance(instance, int) and not isinstance(instance, bool)


_format_checker = FormatChecker(formats=())


@_format_checker.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if "T" not in value and "t" not in value:
        raise ValueError("a date-time needs a 'T' between date and time")
    if datetime.fromisoformat(value).tzinfo is None:
        raise ValueError("a date-time needs a UTC offset ('Z' or '+hh:mm')")
    return True


def _union(validator: Any, spec: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """Runtime keyword for a discriminated union: validate the one branch the property names."""
    if not isinstance(instance, dict):
        yield from validator.descend(instance, {"type": "object"})
        return
    prop, branches = spec["propertyName"], spec["branches"]
    if prop not in instance:
        yield from validator.descend(instance, {"required": [prop]})
        return
    tag = instance[prop]
    branch = branches.get(tag) if isinstance(tag, str) else None
    if branch is None:
        yield from validator.descend(tag, {"enum": sorted(branches)}, path=prop)
        return
    yield from validator.descend(instance, branch)


def _nullable(
    validator: Any, subschema: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    """Runtime keyword for ``anyOf: [S, {type: null}]``: null, or valid under S."""
    if instance is not None:
        yield from validator.descend(instance, subschema)


_StrictValidator = extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    validators={"fleetforge-union": _union, "fleetforge-nullable": _nullable},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


class SchemaValidator(Protocol):
    """What :func:`validator` returns."""

    def iter_errors(self, instance: Any) -> Iterator[ValidationError]: ...


@cache
def _files() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for entry in resources.files(__name__).iterdir():
        if entry.name.endswith(".json"):
            found[entry.name.removesuffix(".json")] = json.loads(entry.read_text("utf-8"))
    return found


def names() -> list[str]:
    """Names of every published schema, sorted."""
    return sorted(_files())


def schema_id(name: str) -> str:
    """The ``$id`` of a schema name."""
    return f"{SCHEMA_BASE_URI}{name}.json"


def load(name: str) -> dict[str, Any]:
    """The schema document named ``name`` (``run_spec``, ``agent_run``, ...)."""
    try:
        return _files()[name]
    except KeyError:
        known = ", ".join(names())
        raise NotFoundError(f"no schema named '{name}' (known: {known})", schema=name) from None


@cache
def registry() -> Registry[Any]:
    """A ``referencing`` registry holding every published schema under its ``$id``."""
    return Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012))
        for doc in _files().values()
    )


_ANNOTATIONS = frozenset({"title", "description", "examples", "default", "$comment", "$schema"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas"})
_NULL = {"type": "null"}


class _Compiler:
    """Builds the copy of a schema that validators run: the same verdicts and error paths as the
    published document, at a fraction of the cost.

    - every ``$ref`` is inlined (a reference back into a schema being inlined stays a ``$ref``);
    - annotations (title, description, examples, ...) are dropped, except a ``not``'s
      description, which is the message when it fails;
    - a discriminated union (``x-discriminator``) becomes ``fleetforge-union``, which validates
      the one branch its property names instead of testing every ``if``;
    - ``anyOf: [S, {type: null}]`` becomes ``fleetforge-nullable: S``.
    """

    def __init__(self) -> None:
        self._registry = registry()

    def compile(self, node: Any, base: str, active: frozenset[str] = frozenset()) -> Any:
        if isinstance(node, list):
            return [self.compile(item, base, active) for item in node]
        if not isinstance(node, dict):
            return node
        if "x-discriminator" in node:
            return self._union(node, base, active)
        any_of = node.get("anyOf")
        if isinstance(any_of, list) and len(any_of) == 2 and _NULL in any_of:
            other = any_of[0] if any_of[1] == _NULL else any_of[1]
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return {
                **self.compile(rest, base, active),
                "fleetforge-nullable": self.compile(other, base, active),
            }
        out: dict[str, Any] = {}
        inlined: list[Any] = []
        for key, value in node.items():
            if key in _ANNOTATIONS or key.startswith("x-") or key in {"$id", "$defs"}:
                continue
            if key == "$ref":
                target = self._absolute(value, base)
                if target in active:
                    out["$ref"] = target
                else:
                    inlined.append(self._follow(target, active))
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: self.compile(sub, base, active) for name, sub in value.items()}
            elif key == "not" and isinstance(value, dict):
                out[key] = {
                    **self.compile(value, base, active),
                    "description": value.get("description", ""),
                }
            else:
                out[key] = self.compile(value, base, active)
        if inlined and not out and len(inlined) == 1:
            return inlined[0]
        if inlined:
            out["allOf"] = [*out.get("allOf", []), *inlined]
        return out

    @staticmethod
    def _absolute(ref: str, base: str) -> str:
        return base + ref if ref.startswith("#") else ref

    def _follow(self, target: str, active: frozenset[str]) -> Any:
        resolved = self._registry.resolver().lookup(target)
        document = target.partition("#")[0]
        return self.compile(resolved.contents, document, active | {target})

    def _union(self, node: dict[str, Any], base: str, active: frozenset[str]) -> Any:
        disc = node["x-discriminator"]
        branches = {
            value: self._follow(self._absolute(ref, base), active)
            for value, ref in disc["mapping"].items()
        }
        return {"fleetforge-union": {"propertyName": disc["propertyName"], "branches": branches}}


@cache
def _runtime(name: str) -> Any:
    doc = load(name)
    return _Compiler().compile(doc, doc["$id"])


@cache
def validator(name: str) -> SchemaValidator:
    """The cached validator of a published schema (see :class:`_Compiler` for how it runs)."""
    return _compiled(_runtime(name))


def _compiled(schema: Any) -> SchemaValidator:
    return _StrictValidator(schema, registry=registry(), format_checker=_format_checker)  # type: ignore[no-any-return]


@cache
def stream_validator(name: str) -> StreamValidator:
    """One shared :class:`StreamValidator` per schema: values proved valid once (an adapter's
    name, a seed) are not checked again by the next adapter either."""
    return StreamValidator(name)


@cache
def _property_validator(name: str, branch: str, key: str) -> SchemaValidator:
    """The compiled validator of one property of one branch (shared by stream validators)."""
    runtime = _runtime(name)
    union = runtime.get("fleetforge-union") if isinstance(runtime, dict) else None
    node = union["branches"][branch] if union else runtime
    return _compiled(node["properties"][key])


_SIMPLE_OBJECT = frozenset({"type", "properties", "required", "title", "description"})
_MISSING = object()


class StreamValidator:
    """Validates a stream of instances of one schema (e.g. one adapter's envelopes), checking
    again only the properties whose value changed since an instance of the same branch passed.

    For a branch made only of ``type: object``, ``properties`` and ``required`` (extra
    properties allowed) this reports exactly what :func:`validate` would: each property is
    checked against its own subschema, so a value that already passed need not be checked
    twice. Any other schema shape is validated in full.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        runtime = _runtime(name)
        union = runtime.get("fleetforge-union") if isinstance(runtime, dict) else None
        self._tag: str | None = union["propertyName"] if union else None
        self._branches: dict[str, Any] = union["branches"] if union else {"": runtime}
        self._seen: dict[str, dict[str, Any]] = {}

    def validate(self, instance: Any) -> None:
        """Raise :class:`~fleetforge.errors.ContractError` like :func:`validate` does."""
        tag: Any = None
        if isinstance(instance, dict):
            tag = "" if self._tag is None else instance.get(self._tag)
        branch_name = tag if isinstance(tag, str) else ""
        branch = self._branches.get(branch_name) if isinstance(tag, str) else None
        if (
            branch is None
            or not isinstance(instance, dict)
            or branch.get("type") != "object"
            or not set(branch) <= _SIMPLE_OBJECT
        ):
            validate(self.name, instance)
            return
        seen = self._seen.setdefault(branch_name, {})
        problems = [
            ErrorDetail(f"/{_pointer([key])[1:]}", "required field is missing")
            for key in branch.get("required", ())
            if key not in instance
        ]
        fresh: dict[str, Any] = {}
        for key, value in instance.items():
            subschema = branch["properties"].get(key)
            if subschema is None:
                continue
            before = seen.get(key, _MISSING)
            if before is value or (type(before) is type(value) and before == value):
                continue
            checker = _property_validator(self.name, branch_name, key)
            found = [d for e in checker.iter_errors(value) for d in _details(e)]
            if found:
                problems.extend(ErrorDetail(f"/{_pointer([key])[1:]}{d.pointer}", d.message)
                                for d in found)  # fmt: skip
            else:
                fresh[key] = value
        if problems:
            noun = "problem" if len(problems) == 1 else "problems"
            details = sorted(set(problems), key=lambda d: (d.pointer, d.message))
            raise ContractError(
                f"invalid {self.name}: {len(details)} {noun}", details=details, schema=self.name
            )
        seen.update(fresh)


def _pointer(parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


_REQUIRED = re.compile(r"^'(?P<name>.+)' is a required property$")


def _details(error: ValidationError) -> list[ErrorDetail]:
    error = best_match([error])
    where = _pointer(error.absolute_path)
    if error.validator == "required":
        match = _REQUIRED.match(error.message)
        if match:
            return [ErrorDetail(f"{where}/{match['name']}", "required field is missing")]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = [k for k in error.instance if k not in known]
        if extra:
            return [ErrorDetail(f"{where}/{_pointer([k])[1:]}", "unknown field") for k in extra]
    if error.validator == "pattern" and error.validator_value in PATTERN_HINTS:
        return [
            ErrorDetail(where, f"{error.instance!r} is not {PATTERN_HINTS[error.validator_value]}")
        ]
    if error.validator == "not" and isinstance(error.validator_value, dict):
        reason = error.validator_value.get("description")
        if reason:
            return [ErrorDetail(where, str(reason))]
    return [ErrorDetail(where, error.message)]


def errors(name: str, instance: Any) -> list[ErrorDetail]:
    """Every problem of ``instance`` against schema ``name``, as (JSON pointer, message)."""
    found: list[ErrorDetail] = []
    for error in validator(name).iter_errors(instance):
        found.extend(_details(error))
    return sorted(set(found), key=lambda d: (d.pointer, d.message))


def is_valid(name: str, instance: Any) -> bool:
    """True when ``instance`` validates against schema ``name``."""
    return next(iter(validator(name).iter_errors(instance)), None) is None


def validate(name: str, instance: Any) -> None:
    """Raise :class:`~fleetforge.errors.ContractError` listing every problem, if any."""
    problems = errors(name, instance)
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        raise ContractError(
            f"invalid {name}: {len(problems)} {noun}", details=problems, schema=name
        )
