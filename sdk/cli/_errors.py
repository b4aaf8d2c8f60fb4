"""The CLI's one mapping from exceptions to messages and exit codes (see errors.py's tree)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetforge.cli._console import print_json, text
from fleetforge.errors import FleetForgeError, InternalError
from fleetforge.redaction import get_logger

__all__ = ["problem_table", "reporting"]

log = get_logger("fleetforge.cli")


def problem_table(error: FleetForgeError) -> Table:
    """A two-column table (pointer, problem) of an error's details."""
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("Pointer", style="cyan", no_wrap=True)
    table.add_column("Problem")
    for detail in error.details:
        table.add_row(text(detail.pointer or "/"), text(detail.message))
    return table


@contextmanager
def reporting(out: Console, err: Console, *, as_json: bool = False) -> Iterator[None]:
    """Turn a FleetForgeError into output plus its exit code; anything else into exit 5."""
    try:
        yield
    except FleetForgeError as exc:
        _report(exc, out, err, as_json)
        raise typer.Exit(exc.exit_code) from exc
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        error_id = uuid.uuid4().hex[:12]
        log.exception("internal error %s", error_id)
        internal = InternalError(f"internal error (id {error_id}): {type(exc).__name__}")
        _report(internal, out, err, as_json)
        raise typer.Exit(internal.exit_code) from exc


def _report(exc: FleetForgeError, out: Console, err: Console, as_json: bool) -> None:
    if as_json:
        print_json(exc.to_dict(), out)
        return
    err.print(Text.assemble(("error:", "bold red"), " ", text(exc.message)))
    if exc.details:
        err.print(problem_table(exc))
