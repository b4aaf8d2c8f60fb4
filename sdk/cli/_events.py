"""``fleetforge events`` and ``fleetforge replay``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from fleetforge.cli._console import err, out
from fleetforge.cli._context import globals_of
from fleetforge.cli._errors import reporting
from fleetforge.contracts.events import RunEvent
from fleetforge.fleet.replay import verify
from fleetforge.fleet.store import open_store

__all__ = ["events", "replay"]


def _summary(event: RunEvent, width: int = 60) -> str:
    data = event.model_dump(mode="json")["data"]
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


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
    """List events in sequence order (a table, or JSON lines with --json)."""
    with reporting(out, err, as_json=as_json), open_store(globals_of(ctx).store_url) as store:
        if follow:
            try:
                for event in store.follow(after=after, run_id=run_id, types=types):
                    _line(event, as_json)
            except KeyboardInterrupt:
                return
            return
        found = store.query(run_id=run_id, types=types, after=after, limit=limit)
    if as_json:
        for event in found:
            _line(event, True)
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("seq", "at", "type", "run", "data"):
        table.add_column(column, no_wrap=column != "data")
    for event in found:
        table.add_row(
            str(event.seq), event.at.strftime("%H:%M:%S.%f")[:-3], event.type,
            event.run_id or "-", _summary(event),
        )  # fmt: skip
    out.print(table)


def _line(event: RunEvent, as_json: bool) -> None:
    if as_json:
        print(event.model_dump_json(), flush=True)
    else:
        out.print(f"{event.seq} {event.at.isoformat()} {event.type} {event.run_id or '-'} "
                  f"{_summary(event)}")  # fmt: skip


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
        out.print(str(difference), markup=False)
    err.print(f"[bold red]error:[/] {len(differences)} projection rows differ from replay")
    raise typer.Exit(1)
