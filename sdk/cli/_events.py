"""``fleetforge events`` and ``fleetforge replay``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from fleetforge.cli._console import err, json_text, out, text
from fleetforge.cli._context import globals_of
from fleetforge.cli._errors import reporting
from fleetforge.fleet.replay import verify
from fleetforge.fleet.store import open_store
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

    Events are printed as stored (not rebuilt as models), so every stored event can be shown."""
    with reporting(out, err, as_json=as_json), open_store(globals_of(ctx).store_url) as store:
        if follow:
            try:
                for row in store.follow_rows(after=after, run_id=run_id, types=types):
                    _line(row, as_json)
            except KeyboardInterrupt:
                return
            return
        found = store.query_rows(run_id=run_id, types=types, after=after, limit=limit)
        if as_json:
            for row in found:
                _line(row, True)
            return
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("seq", "at", "type", "run", "data"):
            table.add_column(column, no_wrap=column != "data")
        for row in found:
            table.add_row(str(row.seq), _time(row), text(row.type), text(row.run_id or "-"),
                          _summary(row))  # fmt: skip
        out.print(table)


def _line(row: EventRow, as_json: bool) -> None:
    if as_json:
        line = json.dumps(row.to_json(), ensure_ascii=False, separators=(",", ":"))
        print(json_text(line), flush=True)
    else:
        out.print(Text(f"{row.seq} {row.at} ") + text(f"{row.type} {row.run_id or '-'} ")
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
    with reporting(out, err), open_store(globals_of(ctx).store_url) as store:
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
