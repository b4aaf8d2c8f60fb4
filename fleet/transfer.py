"""Moving a fleet between stores: the event stream as JSON lines.

``export`` writes a header line, then every event in ``seq`` order (artifact metadata travels in
its ``artifact_stored`` events). ``import_events`` appends such a file to an *empty* store, in
batches, validating each event (the JSON value domain, then ``run_event``); the projections are
built as the events land, and ``replay --verify`` is clean afterwards. Sequence numbers are per
store: the target numbers the events afresh, in the same order. An event that one store holds
but the value domain refuses (written before the domain was checked) stops the import with its
line and JSON pointer, before anything is written for its batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from fleetforge._jsondomain import EVENT_DEPTH_SLACK, MAX_DEPTH, check_json_value
from fleetforge.errors import ConflictError, ContractError, ErrorDetail
from fleetforge.fleet.store import EventStore
from fleetforge.fleet.store._base import chunks

__all__ = ["FORMAT", "export_events", "import_events"]

FORMAT = "fleetforge-events"
VERSION = 1


def export_events(store: EventStore, out: IO[str], *, batch: int = 5000) -> int:
    """Write the store's events as JSON lines; return how many."""
    info = store.info()
    header = {"format": FORMAT, "version": VERSION, "source": info.backend,
              "schema_version": info.schema_version, "events": info.events}  # fmt: skip
    out.write(json.dumps(header) + "\n")
    count = 0
    for row in store.iter_rows(batch=batch):
        out.write(json.dumps(row.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count


def import_events(store: EventStore, source: IO[str], *, batch: int = 2000) -> int:
    """Append an export to an empty store; return how many events were imported."""
    if store.count() > 0:
        raise ConflictError(
            f"the target store {store.url} already holds {store.count()} events; "
            "import only into an empty store"
        )
    lines = _lines(source)
    header = next(lines, None)
    if header is None or header[1].get("format") != FORMAT:
        raise ContractError(f"not a FleetForge export (the first line must name {FORMAT!r})")
    total = 0
    for group in chunks(_events(lines), batch):
        total += store.append_json(group)
    expected = header[1].get("events")
    if isinstance(expected, int) and expected != total:
        raise ContractError(f"the export announced {expected} events but holds {total}")
    return total


def _lines(source: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ContractError(
                f"line {number} is not JSON", details=[ErrorDetail("", exc.msg)]
            ) from exc
        except RecursionError:
            raise ContractError(
                f"line {number} nests too deeply to read",
                details=[ErrorDetail("", "nested deeper than JSON values may be")],
            ) from None
        if not isinstance(value, dict):
            raise ContractError(f"line {number} is not a JSON object")
        yield number, value


def _events(lines: Iterator[tuple[int, dict[str, Any]]]) -> Iterator[Any]:
    for number, event in lines:
        event.pop("seq", None)  # the target numbers events afresh
        yield check_json_value(
            event,
            max_depth=MAX_DEPTH + EVENT_DEPTH_SLACK,
            max_bytes=None,
            what=f"event on line {number}",
        )
