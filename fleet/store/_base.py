"""The small contract a database backend fulfils, and the row type events travel in.

A backend gives transactions (:class:`Tx`) and knows its own few dialect differences; everything
else — appending, projecting, querying, following, replaying — is written once, in
:mod:`fleetforge.fleet.store._store`, and so behaves the same on every backend.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import orjson

__all__ = [
    "Backend",
    "EventRow",
    "Tx",
    "canonical_json",
    "chunks",
    "hashed_json",
    "iso",
    "json_loads",
    "storage_json",
]

T = TypeVar("T")
_SORTED = orjson.OPT_SORT_KEYS


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, no spaces (projections must replay byte-equal).

    Numbers read back as they were written on every backend (see :func:`storage_json`)."""
    return _dumps(value, sort_keys=True)


def hashed_json(value: Any) -> str:
    """The canonical JSON that digests are computed over (spec digests, the receipt chain):
    Python's ``json`` module's text, sorted keys, so a digest never changes between versions
    (orjson, which writes the columns, spells some floats differently: ``1e-05`` / ``0.00001``)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if "e+" not in text:
        return text
    parts: list[str] = []
    _encode(value, parts, True)
    return "".join(parts)


def storage_json(value: Any) -> str:
    """JSON text for a database column: compact, and every float written so that it reads back
    as the same float on every backend. (NaN and Infinity are kept out by the JSON value domain
    at the fleet's boundaries. orjson, which writes the text, writes them as ``null``: a store
    written before the value domain that holds one replays it as null.)

    PostgreSQL keeps ``jsonb`` numbers as ``numeric`` and prints ``1.2345678901234568e+18`` as
    ``1234567890123456800``, which reads back as an *integer* (another value; beyond 2**63 one
    outside the value domain). A float that Python writes with a positive exponent (|x| >= 1e16)
    is therefore written in positional notation with a ``.0``, which both stores keep as is."""
    return _dumps(value, sort_keys=False)


_LONG_DIGITS = re.compile(r"[0-9]{19}")  # 2**63 has 19 digits
_LONG_DIGITS_B = re.compile(rb"[0-9]{19}")


def json_loads(text: str | bytes) -> Any:
    """JSON text read back: orjson (several times faster), and Python's ``json`` for what it
    reads differently, so the value is always the one ``json.loads`` gives: ``NaN`` (orjson
    refuses it) and integers past 64 bits (orjson reads them as floats, losing digits), both
    only in text stored before the JSON value domain was checked."""
    long = (_LONG_DIGITS if isinstance(text, str) else _LONG_DIGITS_B).search(text)  # type: ignore[arg-type]
    if long is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _dumps(value: Any, *, sort_keys: bool) -> str:
    try:
        text = orjson.dumps(value, option=_SORTED if sort_keys else 0).decode()
    except TypeError:  # an integer past 64 bits or a non-string key (data stored before the
        # JSON value domain): json.dumps writes those as before
        text = json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False)
    if "e+" not in text:  # no float has an exponent (or only a string says "e+")
        return text
    parts: list[str] = []
    _encode(value, parts, sort_keys)
    return "".join(parts)


def _encode(value: Any, parts: list[str], sort_keys: bool) -> None:
    """The slow path of :func:`_dumps`: json.dumps's output, but floats never in exponent form
    with a positive exponent. The value has passed json.dumps, so it is JSON data."""
    if isinstance(value, str):
        parts.append(json.dumps(value, ensure_ascii=False))
    elif value is None or isinstance(value, bool | int):
        parts.append(json.dumps(value))
    elif isinstance(value, float):
        text = float.__repr__(value)
        if not math.isfinite(value):
            parts.append(json.dumps(value))  # NaN, Infinity: as json.dumps writes them
        else:
            parts.append(format(Decimal(text), "f") + ".0" if "e+" in text else text)
    elif isinstance(value, Mapping):
        items = [(k if isinstance(k, str) else json.dumps(k), v) for k, v in value.items()]
        parts.append("{")
        for i, (k, v) in enumerate(sorted(items, key=_first) if sort_keys else items):
            parts.append(("," if i else "") + json.dumps(k, ensure_ascii=False) + ":")
            _encode(v, parts, sort_keys)
        parts.append("}")
    else:
        parts.append("[")
        for i, v in enumerate(value):
            if i:
                parts.append(",")
            _encode(v, parts, sort_keys)
        parts.append("]")


_last_iso: tuple[object, str] = (object(), "")  # nothing is this sentinel: None is not


def iso(value: datetime | str) -> str:
    """RFC 3339 in UTC with microseconds and ``Z``: one fixed width, so text order = time order.
    (The last one is kept: a unit writes one ``now`` into many events and rows.)"""
    global _last_iso
    last = _last_iso
    if value is last[0]:
        return last[1]
    given = value
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _last_iso = (given, text)
    return text


@dataclass(slots=True)
class EventRow:
    """An event as stored: what projections receive and what export writes."""

    seq: int
    event_id: str
    run_id: str | None
    type: str
    at: str
    data: dict[str, Any]
    text: str | None = None  # ``data`` as compact JSON, when the writer already made it

    def data_json(self) -> str:
        """``data`` as the backends store it (:func:`storage_json`)."""
        if self.text is None:
            self.text = storage_json(self.data)
        return self.text

    def to_json(self) -> dict[str, Any]:
        """The event in its ``run_event`` JSON form."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "run_id": self.run_id,
            "at": self.at,
            "seq": self.seq,
            "data": self.data,
        }


class Tx(Protocol):
    """One open transaction. SQL is written with ``:name`` parameters on every backend."""

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    def fetchone(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> tuple[Any, ...] | None: ...

    def fetchall(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]: ...

    def columns(self, sql: str) -> list[str]:
        """The column names a query returns."""
        ...

    def load_json(self, value: Any) -> Any:
        """Decode a JSON column as read from this backend."""
        ...

    def for_update(self, sql: str, *, skip_locked: bool = False) -> str:
        """``sql`` (a SELECT) locking the rows it returns until the transaction ends; with
        ``skip_locked``, rows another transaction holds are passed over. SQLite needs neither:
        its writers are serialized."""
        ...

    def lock(self, name: str) -> None:
        """Hold a named lock until the transaction ends (a no-op where writers are serialized)."""
        ...

    def prefer_index_order(self) -> None:
        """For the rest of the transaction, walk ordered indexes rather than collect and sort
        (a queue scan's only good plan, whatever the table statistics say)."""
        ...


class Backend(Protocol):
    """What :class:`~fleetforge.fleet.store.EventStore` needs from a database."""

    name: str
    """``sqlite`` or ``postgres`` (the folder of its SQL files)."""

    url: str
    """The store URL, with any password masked."""

    def write(self, *, exclusive: bool = False) -> AbstractContextManager[Tx]:
        """A write transaction; ``exclusive`` serializes the whole transaction with every other
        writer (rebuilding projections)."""
        ...

    def read(self) -> AbstractContextManager[Tx]:
        """Reads that change nothing. Each statement sees what committed before it; statements
        of one ``read`` may see different commits (READ COMMITTED)."""
        ...

    def insert_events(self, tx: Tx, rows: Sequence[EventRow]) -> None:
        """Insert rows in order, in ``tx``; each row's ``seq`` is set by the time the write
        transaction has committed (PostgreSQL reads them back with the COMMIT). Call it last
        in a transaction, after every row lock it takes (see postgres.py)."""
        ...

    def horizon(self) -> int | None:
        """The highest ``seq`` below which the log is final: every event with a lower or equal
        ``seq`` has committed, or never will, so a cursor may move up to it and skip nothing.
        None when commits land in ``seq`` order (SQLite: writers are serialized), so that every
        committed event is below the horizon."""
        ...

    def decode_row(self, row: tuple[Any, ...]) -> EventRow:
        """Build an EventRow from ``seq, event_id, run_id, type, at, data`` as selected."""
        ...

    def in_list(self, column: str, values: Sequence[str], params: dict[str, Any]) -> str:
        """A ``column IN (...)`` condition for this backend, adding its parameters."""
        ...

    def wait_for_events(self, timeout: float) -> None:
        """Block until new events may have committed, or ``timeout`` seconds pass."""
        ...

    def scratch(self) -> AbstractContextManager[Backend]:
        """A migrated, empty backend of the same kind, removed on exit (for replay --verify)."""
        ...

    def schema_version(self) -> int:
        """The newest migration applied."""
        ...

    def close(self) -> None: ...


def chunks(rows: Iterator[T], size: int) -> Iterator[list[T]]:
    """Group an iterator into lists of at most ``size``."""
    batch: list[T] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _first(item: tuple[str, Any]) -> str:
    return item[0]
