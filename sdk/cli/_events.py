"""``fleetforge events`` and ``fleetforge replay``."""

from __future__ import annotations

import difflib
import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from fleetforge.cli._console import err, json_text, out, text
from fleetforge.cli._context import opened_store
from fleetforge.cli._errors import reporting
from fleetforge.contracts.events import EVENT_TYPES
from fleetforge.errors import UsageError
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store._base import EventRow

__all__ = ["events", "replay"]


def _summary(row: EventRow, width: int = 60) -> Text:
    data = json.dumps(row.data, separators=(",", ":"), ensure_ascii=False)
    return text(data if len(data) <= width else data[: width - 1] + "…")


def _time(row: EventRow) -> str:
    return row.at[11:23]  # HH:MM:SS.mmm of the stored RFC 3339 UTC text


def events(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(help="Only this run's events.")] = None,
    types: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Only this event type (repeatable).")
    ] = None,
    after: Annotated[int, typer.Option(help="Only events after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many (without --follow).")] = 100,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one event each.")] = False,
) -> None:
    """List events in sequence order (a table, or JSON lines with --json).

    Events are printed as stored (not rebuilt as models), so every stored event can be shown.
    A task_event row names the envelope it holds (task_event:start, task_event:emit/message,
    ...). When more events follow the page, stderr says how to get them (more: --after SEQ).
    """
    with reporting(out, err, as_json=as_json):
        _check_types(types or [])  # a typo is a usage mistake wherever the store is
    with reporting(out, err, as_json=as_json), opened_store(ctx, existing=True) as store:
        if run_id is not None:
            SyncFleetService(store).get_run(run_id)  # an unknown run: exit 3, as show
        if follow:
            err.print(f"following the events after {after} in {store.url} (Ctrl-C stops)",
                      markup=False, highlight=False)  # fmt: skip
            try:
                for row in store.follow_rows(after=after, run_id=run_id, types=types):
                    _line(row, as_json)
            except KeyboardInterrupt:
                return
            return
        found = store.query_rows(run_id=run_id, types=types, after=after, limit=limit + 1)
    more, found = len(found) > limit, found[:limit]
    if as_json:
        for row in found:
            _line(row, True)
    else:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("seq", "at", "type", "run", "data"):
            table.add_column(column, no_wrap=column != "data")
        for row in found:
            table.add_row(str(row.seq), _time(row), text(_type(row)), text(row.run_id or "-"),
                          _summary(row))  # fmt: skip
        out.print(table)
    if more and found:
        err.print(f"more: --after {found[-1].seq}", markup=False, highlight=False)


def _type(row: EventRow) -> str:
    """The event's type; a task_event's names its envelope (task_event:emit/message)."""
    envelope = row.data.get("envelope") if row.type == "task_event" else None
    if not isinstance(envelope, dict):
        return row.type
    emitted = envelope.get("event")
    return f"task_event:{envelope.get('kind')}" + (f"/{emitted}" if emitted else "")


def _check_types(types: list[str]) -> None:
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        near = difflib.get_close_matches(unknown[0], list(EVENT_TYPES), n=3)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise UsageError(
            f"unknown event type {unknown[0]!r} ({hint}docs/contracts.md lists every type)"
        )


def _line(row: EventRow, as_json: bool) -> None:
    if as_json:
        line = json.dumps(row.to_json(), ensure_ascii=False, separators=(",", ":"))
        print(json_text(line), flush=True)
    else:
        out.print(Text(f"{row.seq} {row.at} ") + text(f"{_type(row)} {row.run_id or '-'} ")
                  + _summary(row))  # fmt: skip


def replay(
    ctx: typer.Context,
    check: Annotated[
        bool,
        typer.Option(
            "--verify", help="Rebuild into a scratch database and compare; change nothing."
        ),
    ] = False,
) -> None:
    """Rebuild every projection from the events (or, with --verify, check them).

    With --verify the exit status is 1 when any projection row differs from what replay gives.
    """
    with reporting(out, err), opened_store(ctx, existing=True) as store:
        if not check:
            count = store.rebuild()
            out.print(f"rebuilt the projections from {count} events")
            return
        differences = verify(store)
        count = store.count()
    if not differences:
        out.print(f"[green]ok[/] projections match a replay of {count} events")
        return
    for difference in differences:
        out.print(text(difference))
    err.print(f"[bold red]error:[/] {len(differences)} projection rows differ from replay")
    raise typer.Exit(1)
