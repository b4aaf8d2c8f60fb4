"""``fleetforge db info|export|import``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.table import Table

from fleetforge.cli._console import err, out, print_json, text
from fleetforge.cli._context import globals_of
from fleetforge.cli._errors import reporting
from fleetforge.errors import UsageError

__all__ = ["app"]

app = typer.Typer(help="Inspect the store, and move a fleet between stores.", no_args_is_help=True)


@app.command("info")
def info(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Store URL, schema version, event count and projection row counts."""
    from fleetforge.fleet.store import open_store

    with reporting(out, err, as_json=as_json), open_store(globals_of(ctx).store_url) as store:
        details = store.info()
    if as_json:
        print_json(dataclasses.asdict(details))
        return
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("store", text(details.url))
    table.add_row("backend", details.backend)
    table.add_row("schema version", str(details.schema_version))
    table.add_row("events", f"{details.events:,} (latest seq {details.latest_seq})")
    for name, count in details.rows.items():
        table.add_row(f"{name} rows", f"{count:,}")
    out.print(table)


def _open_text(path: str, mode: str) -> IO[str]:
    if path == "-":
        return sys.stdout if "w" in mode else sys.stdin
    try:
        return Path(path).open(mode, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot open {path}: {exc.strerror}", path=path) from exc


@app.command("export")
def export(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="JSON-lines file to write ('-' = stdout).")],
) -> None:
    """Write every event (artifact metadata included) as JSON lines."""
    from fleetforge.fleet.store import open_store
    from fleetforge.fleet.transfer import export_events

    with reporting(out, err), open_store(globals_of(ctx).store_url) as store:
        handle = _open_text(file, "w")
        try:
            count = export_events(store, handle)
        finally:
            if handle is not sys.stdout:
                handle.close()
    err.print(text(f"exported {count} events from {store.url}"))


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="A file written by 'db export' ('-' = stdin).")],
) -> None:
    """Append an export to an empty store; projections are built as the events land."""
    from fleetforge.fleet.store import open_store
    from fleetforge.fleet.transfer import import_events

    with reporting(out, err), open_store(globals_of(ctx).store_url) as store:
        handle = _open_text(file, "r")
        try:
            count = import_events(store, handle)
        finally:
            if handle is not sys.stdin:
                handle.close()
    out.print(text(f"imported {count} events into {store.url}"))
