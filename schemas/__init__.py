"""The published JSON Schemas (draft 2020-12) and their loader.

Each ``<name>.json`` in this package has ``$id`` ``https://fleetforge.dev/schemas/v1/<name>.json``;
schemas refer to each other by ``$id`` and resolve through one ``referencing`` registry. Validators
are built once and cached. Schemas whose top level is a union selected by a property (``type`` for
``run_event``, ``kind`` for ``agent_run``) carry an ``x-discriminator`` map, and the loader
validates an instance against the one branch its discriminator names instead of every branch.

    >>> from fleetforge import schemas
    >>> schemas.validate("fleet_task_budget", {"max_tokens": 100})
    >>> schemas.errors("fleet_task_budget", {"max_tokens": 0})
    [ErrorDetail(pointer='/max_tokens', message='0 is less than the minimum of 1')]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Protocol

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import extend
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from fleetforge.contracts._base import SCHEMA_BASE_URI
from fleetforge.errors import ContractError, ErrorDetail, NotFoundError

__all__ = [
    "SCHEMA_BASE_URI",
    "SchemaValidator",
    "errors",
    "is_valid",
    "load",
    "names",
    "registry",
    "schema_id",
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


_StrictValidator = extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
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


class _Dispatching:
    """Validates against the branch the discriminator names; the whole schema otherwise."""

    def __init__(self, whole: Any, prop: str, branches: Mapping[str, Any]) -> None:
        self._whole = whole
        self._prop = prop
        self._branches = branches

    def iter_errors(self, instance: Any) -> Iterator[ValidationError]:
        if isinstance(instance, dict):
            branch = self._branches.get(str(instance.get(self._prop)))
            if branch is not None:
                return branch.iter_errors(instance)  # type: ignore[no-any-return]
        return self._whole.iter_errors(instance)  # type: ignore[no-any-return]


def _compile(schema: Mapping[str, Any]) -> Any:
    return _StrictValidator(schema, registry=registry(), format_checker=_format_checker)


@cache
def validator(name: str) -> SchemaValidator:
    """The cached validator of a schema (dispatching by discriminator where the schema has one)."""
    doc = load(name)
    whole = _compile(doc)
    disc = doc.get("x-discriminator")
    if not disc:
        return whole  # type: ignore[no-any-return]
    branches = {value: _compile({"$ref": doc["$id"] + ref}) for value, ref in disc["mapping"].items()}
    return _Dispatching(whole, disc["propertyName"], branches)


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
