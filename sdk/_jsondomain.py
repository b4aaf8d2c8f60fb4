"""The one JSON value domain: what the fleet accepts, stores and hands back.

Every value that enters the fleet from outside — a run spec and its inputs, an agent envelope,
a receipt and its output, a resume value, the questions of a paused task, an imported event —
is checked here before anything is written (docs/contracts.md, "The JSON value domain"):

- numbers are finite: NaN and ±Infinity are refused; ``-0.0`` becomes ``0.0``;
- integers lie in [-2**63, 2**63 - 1] (what PostgreSQL's ``bigint`` and SQLite hold);
- strings (object keys too) hold no NUL and no surrogate code point, and are at most 1 MiB of
  UTF-8;
- containers nest at most 64 deep (the document itself is level 1);
- a document (spec, envelope, receipt, tool arguments) is at most 4 MiB as compact JSON.

:func:`check_json_value` checks in one pass without building anything for a valid value (it
runs on every envelope), and only when it finds a problem walks the value again to report every
problem with its JSON pointer in one :class:`~fleetforge.errors.ContractError`.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import math
import re
import uuid
from collections.abc import Collection, Iterator, Mapping
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from fleetforge.errors import ContractError, ErrorDetail

__all__ = [
    "EVENT_DEPTH_SLACK",
    "INT_MAX",
    "INT_MIN",
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_STRING_BYTES",
    "READ_MAX_DEPTH",
    "DomainChecked",
    "check_document",
    "check_json_value",
    "check_model",
    "check_tool_arguments",
    "deeper_than",
    "escape_unencodable",
    "json_size",
]

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MAX_DEPTH = 64
MAX_STRING_BYTES = 1 << 20
MAX_DOCUMENT_BYTES = 4 << 20
EVENT_DEPTH_SLACK = 8
"""The engine wraps accepted documents in its events (``data.task.inputs.NAME``, a map's
gathered outputs): an imported event may nest this much deeper than a document."""
READ_MAX_DEPTH = 128
"""Readers (MCP replies) refuse, with an error, records nested deeper than this: a record that
was stored before this check existed must not make a reply that no client can parse."""

_MAX_PROBLEMS = 50
_SPECIAL = re.compile("[\x00\ud800-\udfff]")
_LENIENT = (_dt.date, _dt.time, _dt.timedelta, uuid.UUID, enum.Enum)
M = TypeVar("M", bound=BaseModel)


class _Bad(Exception):
    """The fast pass met a problem; the slow pass says what and where."""


_BAD = _Bad()


def check_json_value(
    value: Any,
    *,
    pointer: str = "",
    max_depth: int = MAX_DEPTH,
    max_bytes: int | None = MAX_DOCUMENT_BYTES,
    what: str = "value",
    lenient: bool = False,
) -> Any:
    """Check ``value`` against the JSON value domain; return it, normalised.

    The result is ``value`` itself unless something had to change (``-0.0`` → ``0.0``, a tuple
    → a list, a non-dict mapping → a dict). Raises :class:`ContractError` listing every problem
    (up to 50) with its JSON pointer, prefixed with ``pointer``. ``max_bytes`` bounds the size of
    the whole value as compact JSON (None: no bound); ``lenient`` lets through the scalars
    pydantic serialises itself (datetimes, UUIDs, enums), for checking a model's python dump.
    """
    fix: list[bool] = []
    try:
        estimate = _walk(value, max_depth, fix, lenient)
    except (_Bad, RecursionError):
        problems = list(_problems(value, pointer, max_depth, lenient))
        if not problems:  # pragma: no cover - the two passes implement one rule
            problems = [ErrorDetail(pointer, "not a JSON value")]
        noun = "problem" if len(problems) == 1 else "problems"
        raise ContractError(
            f"invalid {what}: {len(problems)} {noun} with JSON values", details=problems
        ) from None
    if fix:
        value = _normalised(value)
    # the estimate bounds the size from above within a factor of 6: measure only when it must
    if max_bytes is not None and estimate * 6 > max_bytes:
        size = json_size(value)
        if size > max_bytes:
            raise ContractError(
                f"invalid {what}: {size:,} bytes as JSON, over the {_mib(max_bytes)} limit",
                details=[ErrorDetail(pointer, f"larger than {_mib(max_bytes)} as compact JSON")],
            )
    return value


class DomainChecked:
    """Marks an in-process call's item whose envelopes were checked against the domain (by
    :func:`check_model`) just before the call, by the SDK Worker's delivery
    (:mod:`fleetforge._delivery`): the engine does not check them a second time. An item parsed
    from a request (MCP, HTTP, a mapping) is never one."""

    __slots__ = ()


def check_model(model: M, *, pointer: str = "", what: str = "value") -> M:
    """Check a contract model's values (its free-form fields too) against the domain; return
    the model, rebuilt when a value was normalised."""
    data = model.model_dump(mode="python", by_alias=True, warnings=False)
    fixed = check_json_value(data, pointer=pointer, what=what, lenient=True)
    return model if fixed is data else type(model).model_validate(fixed)


@overload
def check_document(document: M, *, what: str) -> M: ...
@overload
def check_document(document: Mapping[str, Any], *, what: str) -> dict[str, Any]: ...
def check_document(document: Any, *, what: str) -> Any:
    """Check a whole document (a model, or its JSON form) that enters the fleet: an envelope,
    a receipt, a worker spec. Pointers are relative to the document."""
    if isinstance(document, BaseModel):
        return check_model(document, what=what)
    return check_json_value(document, what=what)


_DOCUMENTS = {"spec": "run spec", "envelope": "envelope"}  # pointers relative to themselves
_ARGUMENTS = {"output": "receipt", "usage": "receipt", "artifacts": "receipt",
              "value": "resume values", "values": "resume values"}  # fmt: skip
_OPAQUE = {("fleet_put_artifact", "content")}  # base64 bytes, with a limit of their own


def check_tool_arguments(
    tool: str, arguments: Mapping[str, Any], *, lenient: Collection[str] = ()
) -> None:
    """Check the arguments of an MCP tool call as the service would check them (the same
    ContractError and pointers): a spec or an envelope is its own document, every other
    argument is named by its pointer (``/output/...``). The arguments named in ``lenient`` are
    a model's python dump (datetimes, enums), which the MCP session serializes."""
    for key, value in arguments.items():
        if (tool, key) in _OPAQUE:
            continue
        loose = key in lenient
        if key in _DOCUMENTS:
            check_json_value(value, what=_DOCUMENTS[key], lenient=loose)
        else:
            what = _ARGUMENTS.get(key, "arguments")
            check_json_value(value, pointer=f"/{key}", what=what, lenient=loose)


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return len(text.encode("utf-8"))


def deeper_than(value: Any, limit: int) -> str | None:
    """The pointer of the first container nested deeper than ``limit``, or None (iterative).

    A first pass only counts levels (answers are checked on every read, and pointers cost a
    string per container); the pointer is worked out only for a value that is too deep."""
    if not _nests_deeper(value, limit):
        return None
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, level, where = stack.pop()
        if isinstance(node, dict):
            children: Any = ((str(k), v) for k, v in node.items())
        elif isinstance(node, list | tuple):
            children = ((str(i), v) for i, v in enumerate(node))
        else:
            continue
        if level > limit:
            return where
        stack.extend(
            (v, level + 1, f"{where}/{_segment(k)}")
            for k, v in children
            if isinstance(v, dict | list | tuple)
        )
    return None


def _nests_deeper(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if level > limit:
            return True
        stack.extend((v, level + 1) for v in children if isinstance(v, dict | list | tuple))
    return False


def escape_unencodable(text: str) -> str:
    """``text`` (a pointer, a message quoting input) with NUL and surrogates shown as
    ``\\uXXXX``: safe to encode as UTF-8 and to store."""
    return _SPECIAL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# ── the fast pass ───────────────────────────────────────────────────────────────────────────


def _walk(
    value: Any,
    room: int,
    fix: list[bool],
    lenient: bool,
    _max: int = INT_MAX,
    _min: int = INT_MIN,
    _sign: Any = math.copysign,
) -> int:
    """Raise ``_BAD`` at the first problem; else return an estimate E of the size, such that
    the compact JSON is at most 6·E bytes. ``room``: how many more containers may nest.

    Written for speed (it runs on every envelope): exact type tests and the common scalars
    inline; an ASCII string (``isascii`` is O(1)) needs only a search for NUL."""
    t = type(value)
    if t is dict:
        if not room:
            raise _BAD
        room -= 1
        size = 2
        for k, v in value.items():
            if type(k) is not str:
                if not isinstance(k, str):
                    raise _BAD
                fix.append(True)
            n = len(k)
            if n > 4096 or not k.isascii() or "\x00" in k:
                _string(k)
            t = type(v)
            if t is str:
                m = len(v)
                if m > 4096 or not v.isascii() or "\x00" in v:
                    _string(v)
                size += n + m + 28
            elif t is int:
                if v > _max or v < _min:
                    raise _BAD
                size += n + 28
            elif t is float:
                if v - v:  # NaN or ±Infinity
                    raise _BAD
                if not v and _sign(1.0, v) < 0:
                    fix.append(True)
                size += n + 28
            elif t is bool or v is None:
                size += n + 28
            else:
                size += n + 28 + _walk(v, room, fix, lenient)
        return size
    if t is list:
        if not room:
            raise _BAD
        room -= 1
        size = 2
        for v in value:
            t = type(v)
            if t is str:
                m = len(v)
                if m > 4096 or not v.isascii() or "\x00" in v:
                    _string(v)
                size += m + 25
            elif t is int:
                if v > _max or v < _min:
                    raise _BAD
                size += 25
            elif t is float:
                if v - v:
                    raise _BAD
                if not v and _sign(1.0, v) < 0:
                    fix.append(True)
                size += 25
            elif t is bool or v is None:
                size += 25
            else:
                size += 25 + _walk(v, room, fix, lenient)
        return size
    return _scalar(value, room, fix, lenient)


def _scalar(value: Any, room: int, fix: list[bool], lenient: bool) -> int:
    """Everything but a plain dict or list: scalars, subclasses, tuples, other mappings."""
    if value is None or isinstance(value, bool):
        return 25
    if isinstance(value, str):
        _string(value)
        if type(value) is not str and not isinstance(value, enum.Enum):
            fix.append(True)
        return len(value) + 25
    if isinstance(value, int):
        if value > INT_MAX or value < INT_MIN:
            raise _BAD
        if type(value) is not int and not isinstance(value, enum.Enum):
            fix.append(True)
        return 25
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _BAD
        if (not value and math.copysign(1.0, value) < 0) or type(value) is not float:
            fix.append(True)
        return 25
    if isinstance(value, Mapping):
        fix.append(True)
        return _walk(dict(value), room, fix, lenient)
    if isinstance(value, list | tuple):
        fix.append(True)
        return _walk(list(value), room, fix, lenient)
    if lenient and isinstance(value, _LENIENT):
        return 64
    raise _BAD


def _string(text: str) -> None:
    if _string_problem(text) is not None:
        raise _BAD


def _string_problem(text: str) -> str | None:
    if len(text) > MAX_STRING_BYTES:
        return f"a string of {len(text):,} characters: longer than the 1 MiB limit"
    if text.isascii():
        return _NUL_MESSAGE.format(text.index("\x00")) if "\x00" in text else None
    try:  # UTF-8 refuses surrogates and counts the bytes: faster than searching the text
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"a string may not contain a lone surrogate (\\u{ord(text[exc.start]):04x}, at "
            f"character {exc.start}): it is not Unicode text"
        )
    if b"\x00" in encoded:
        return _NUL_MESSAGE.format(text.index("\x00"))
    if len(encoded) > MAX_STRING_BYTES:
        return f"a string of {len(encoded):,} bytes (UTF-8): longer than the 1 MiB limit"
    return None


_NUL_MESSAGE = "a string may not contain NUL (\\u0000), found at character {}"


# ── the slow pass: every problem, with its pointer ──────────────────────────────────────────


def _problems(value: Any, pointer: str, max_depth: int, lenient: bool) -> Iterator[ErrorDetail]:
    found = 0
    stack: list[tuple[Any, int, str]] = [(value, 0, pointer)]
    while stack and found < _MAX_PROBLEMS:
        node, level, where = stack.pop()
        problem = _scalar_problem(node, lenient)
        if problem is not None:
            found += 1
            yield ErrorDetail(escape_unencodable(where), problem)
            continue
        if isinstance(node, Mapping):
            items: list[tuple[str, Any]] = []
            for k, v in node.items():
                if not isinstance(k, str):
                    found += 1
                    yield ErrorDetail(
                        escape_unencodable(f"{where}/{_segment(str(k))}"),
                        f"an object key must be a string, not {_kind(k)}",
                    )
                    continue
                key_problem = _string_problem(k)
                if key_problem is not None:
                    found += 1
                    shown = k if len(k) <= 64 else k[:64] + "…"
                    yield ErrorDetail(
                        escape_unencodable(f"{where}/{_segment(shown)}"), f"key: {key_problem}"
                    )
                    continue
                items.append((k, v))
        elif isinstance(node, list | tuple):
            items = [(str(i), v) for i, v in enumerate(node)]
        else:
            continue
        if level >= max_depth:
            found += 1
            yield ErrorDetail(
                escape_unencodable(where),
                f"nested deeper than {max_depth} levels (the limit of JSON values here)",
            )
            continue
        stack.extend((v, level + 1, f"{where}/{_segment(k)}") for k, v in reversed(items))


def _scalar_problem(value: Any, lenient: bool) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return _string_problem(value)
    if isinstance(value, int):
        if INT_MIN <= value <= INT_MAX:
            return None
        return (
            f"an integer of {value.bit_length()} bits: outside [-2^63, 2^63-1] (write it as a "
            "string, or as a float if precision may be lost)"
        )
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        name = "NaN" if math.isnan(value) else ("-Infinity" if value < 0 else "Infinity")
        return f"{name} is not a JSON number: only finite numbers are accepted"
    if isinstance(value, Mapping | list | tuple):
        return None
    if lenient and isinstance(value, _LENIENT):
        return None
    return f"not a JSON value: {_kind(value)}"


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _segment(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _normalised(value: Any) -> Any:
    """A copy with -0.0 → 0.0, tuples → lists, mappings → dicts, subclasses → their base."""
    if isinstance(value, Mapping):
        return {str.__str__(k): _normalised(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalised(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, enum.Enum):
        return value
    if isinstance(value, float):
        return float(value) + 0.0  # -0.0 + 0.0 == 0.0
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str.__str__(value)
    return value


def _mib(size: int) -> str:
    return f"{size / (1 << 20):g} MiB"
