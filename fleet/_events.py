"""Events the engine makes: built straight into their stored form, without pydantic.

The engine's values are already checked (arguments at the boundary, models it built itself), so
re-validating each event through its pydantic model only to dump it again cost more than the SQL
of a task cycle. :func:`engine_row` instead fills the event data's fields in the model's order
with its defaults, turns models, enums and datetimes into JSON exactly as ``model_dump(mode=
"json")`` would, dumps the data once (the text the store writes and secrets are scanned in) and
returns the :class:`~fleetforge.fleet.store.EventRow` the projections read.

The ``run_event`` schema stays the contract: tests validate every event type the engine writes
against it (tests/test_engine_events.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from fleetforge.contracts.events import EVENT_TYPES
from fleetforge.fleet.store._base import EventRow, iso, storage_json
from fleetforge.ids import new_id
from fleetforge.redaction import contains_secret, scrub

__all__ = ["Raw", "data_model", "engine_row", "json_value", "timestamp"]

_REQUIRED = object()


class Raw:
    """A field's value already in its JSON form (a model's JSON-mode dump, a signed envelope
    the engine just made): put into the event as it is, not walked again by :func:`json_value`.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def data_model(event_type: str) -> type[BaseModel]:
    """The pydantic model of an event type's ``data`` (to validate data from outside)."""
    model = EVENT_TYPES[event_type].model_fields["data"].annotation
    assert isinstance(model, type), event_type
    assert issubclass(model, BaseModel), event_type
    return model


@cache
def _fields(event_type: str) -> tuple[tuple[str, Any, Callable[[], Any] | None], ...]:
    """(name, default or _REQUIRED, default factory) of the data model's fields, in order."""
    fields: list[tuple[str, Any, Callable[[], Any] | None]] = []
    for name, info in data_model(event_type).model_fields.items():
        factory = info.default_factory
        if factory is not None:
            fields.append((name, _REQUIRED, factory))  # type: ignore[arg-type]
        elif info.default is PydanticUndefined:
            fields.append((name, _REQUIRED, None))
        else:
            fields.append((name, info.default, None))
    return tuple(fields)


def timestamp(value: datetime) -> str:
    """A datetime as pydantic writes an aware one in JSON mode (``Z`` for UTC, no fraction
    when the microseconds are 0)."""
    if value.utcoffset() == UTC.utcoffset(None):
        if value.microsecond:
            return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def json_value(value: Any) -> Any:
    """``value`` in JSON form, as pydantic's JSON-mode dump of a field of that type gives it."""
    if value is None or isinstance(value, str | bool | int | float):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    raise TypeError(f"cannot put a {type(value).__name__} into an event")


def engine_row(
    event_type: str, run_id: str | None, at: datetime, data: Mapping[str, Any]
) -> EventRow:
    """An engine-made event as stored: its data in field order with defaults, dumped once,
    secrets masked (see :mod:`fleetforge.redaction`)."""
    out: dict[str, Any] = {}
    for name, default, factory in _fields(event_type):
        if name in data:
            value = data[name]
            out[name] = value.value if type(value) is Raw else json_value(value)
        elif factory is not None:
            out[name] = json_value(factory())
        elif default is _REQUIRED:
            raise TypeError(f"{event_type} needs '{name}'")
        else:
            out[name] = json_value(default)
    if len(out) != len(data) and not set(data) <= set(out):
        unknown = sorted(set(data) - set(out))
        raise TypeError(f"{event_type} has no field {', '.join(unknown)}")
    text = storage_json(out)
    if contains_secret(text):
        out = scrub(out)
        text = storage_json(out)
    return EventRow(0, new_id("evt"), run_id, event_type, iso(at), out, text)
