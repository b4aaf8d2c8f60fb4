"""``fleetforge events`` and ``fleetforge replay``."""

from __future__ import annotations

import difflib
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from fleetforge.cli._console import err, json_text, out, print_json, text
from fleetforge.cli._context import globals_of, open_fleet, opened_store
from fleetforge.cli._errors import reporting
from fleetforge.errors import UsageError

if TYPE_CHECKING:
    from fleetforge.operations.results import EventRecord

__all__ = ["events", "replay"]

_FOLLOW_WAIT_S = 5.0  # one long poll of --follow (the server answers as soon as events come)
_PAGE = 1000


def _summary(record: EventRecord, width: int = 60) -> Text:
    data = json.dumps(record.data, separators=(",", ":"), ensure_ascii=False)
    return text(data if len(data) <= width else data[: width - 1] + "…")


def _time(record: EventRecord) -> str:
    return record.at.strftime("%H:%M:%S.%f")[:-3]


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
    --follow waits for new events on the server (a long poll), locally or over --url.
    """
    with reporting(out, err, as_json=as_json):
        _check_types(types or [])  # a typo is a usage mistake wherever the fleet is
        if not 1 <= limit <= 10_000:
            raise UsageError(f"--limit is between 1 and 10000, got {limit}")
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        if follow:
            where = globals_of(ctx).where
            err.print(f"following the events after {after} in {where} (Ctrl-C stops)",
                      markup=False, highlight=False)  # fmt: skip
            cursor = str(after)
            try:
                while True:
                    page = fleet.events_page(run_id, cursor=cursor, limit=_PAGE, types=types,
                                             wait_seconds=_FOLLOW_WAIT_S)  # fmt: skip
                    for record in page.events:
                        _line(record, as_json)
                    cursor = page.last_cursor
            except KeyboardInterrupt:
                return
        page = fleet.events_page(
            run_id, cursor=str(after), limit=min(limit + 1, 10_000), types=types
        )
    found = page.events
    more, found = len(found) > limit, found[:limit]
    if as_json:
        for record in found:
            _line(record, True)
    else:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("seq", "at", "type", "run", "data"):
            table.add_column(column, no_wrap=column != "data")
        for record in found:
            table.add_row(str(record.seq), _time(record), text(_type(record)),
                          text(record.run_id or "-"), _summary(record))  # fmt: skip
        out.print(table)
    if more and found:
        err.print(f"more: --after {found[-1].seq}", markup=False, highlight=False)


def _type(record: EventRecord) -> str:
    """The event's type; a task_event's names its envelope (task_event:emit/message)."""
    envelope = record.data.get("envelope") if record.type == "task_event" else None
    if not isinstance(envelope, dict):
        return record.type
    emitted = envelope.get("event")
    return f"task_event:{envelope.get('kind')}" + (f"/{emitted}" if emitted else "")


def _check_types(types: list[str]) -> None:
    from fleetforge.contracts.events import EVENT_TYPES

    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        near = difflib.get_close_matches(unknown[0], list(EVENT_TYPES), n=3)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise UsageError(
            f"unknown event type {unknown[0]!r} ({hint}docs/contracts.md lists every type)"
        )


def _line(record: EventRecord, as_json: bool) -> None:
    if as_json:
        body = {"event_id": record.event_id, "type": record.type, "run_id": record.run_id,
                "at": record.at.isoformat().replace("+00:00", "Z"), "seq": record.seq,
                "data": record.data}  # fmt: skip
        line = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        print(json_text(line), flush=True)
    else:
        at = record.at.isoformat().replace("+00:00", "Z")
        out.print(Text(f"{record.seq} {at} ") + text(f"{_type(record)} {record.run_id or '-'} ")
                  + _summary(record))  # fmt: skip


def replay(
    ctx: typer.Context,
    check: Annotated[
        bool,
        typer.Option(
            "--verify", help="Rebuild into a scratch database and compare; change nothing."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {events, differences} as JSON.")
    ] = False,
) -> None:
    """Rebuild every projection from the events (or, with --verify, check them).

    With --verify the exit status is 1 when any projection row differs from what replay gives.
    """
    from fleetforge.fleet.replay import chain_failures, verify

    with reporting(out, err, as_json=as_json), opened_store(ctx, existing=True) as store:
        if not check:
            count = store.rebuild()
            if as_json:
                print_json({"rebuilt": True, "events": count, "differences": []})
            else:
                out.print(f"rebuilt the projections from {count} events")
            return
        differences = verify(store)
        broken = chain_failures(store)
        count = store.count()
    if as_json:
        print_json(
            {
                "rebuilt": False,
                "events": count,
                "differences": [str(d) for d in differences],
                "chain": broken,
            }
        )
        if differences or broken:
            raise typer.Exit(1)
        return
    if not differences and not broken:
        out.print(f"[green]ok[/] projections match a replay of {count} events; receipt chains hold")
        return
    for difference in differences:
        out.print(text(difference))
    for failure in broken:
        out.print(text(failure))
    if differences:
        err.print(f"[bold red]error:[/] {len(differences)} projection rows differ from replay")
    if broken:
        err.print(f"[bold red]error:[/] {len(broken)} receipt chain failures")
    raise typer.Exit(1)
