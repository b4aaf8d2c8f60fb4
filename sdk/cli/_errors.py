"""The CLI's one mapping from exceptions to messages and exit codes (see errors.py's tree).

A mistake costs one line on stderr, ``error: <what> (<what to do next>)``, and the exit code of
its class; never a traceback. ``--debug`` (or ``FLEETFORGE_DEBUG=1``) adds the traceback.
Errors raised inside a task group arrive wrapped in an ExceptionGroup: the FleetForgeError inside
is the one reported.
"""

from __future__ import annotations

import os
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetforge.cli._console import print_json, text
from fleetforge.errors import FleetForgeError, InternalError
from fleetforge.redaction import get_logger, redact

__all__ = ["debugging", "fleet_error_in", "problem_table", "reporting", "set_debug"]

log = get_logger("fleetforge.cli")

_debug = False


def set_debug(on: bool) -> None:
    """``--debug`` was given (or not) on this invocation."""
    global _debug
    _debug = on


def debugging() -> bool:
    """Show tracebacks: ``--debug`` or ``FLEETFORGE_DEBUG`` set to anything but 0/empty."""
    return _debug or os.environ.get("FLEETFORGE_DEBUG", "").strip() not in ("", "0")


def problem_table(error: FleetForgeError) -> Table:
    """A two-column table (pointer, problem) of an error's details."""
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("Pointer", style="cyan", no_wrap=True)
    table.add_column("Problem")
    for detail in error.details:
        table.add_row(text(detail.pointer or "/"), text(detail.message))
    return table


def fleet_error_in(exc: BaseException) -> FleetForgeError | None:
    """The FleetForgeError ``exc`` is, or the first one inside an exception group."""
    if isinstance(exc, FleetForgeError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = fleet_error_in(inner)
            if found is not None:
                return found
    return None


@contextmanager
def reporting(out: Console, err: Console, *, as_json: bool = False) -> Iterator[None]:
    """Turn a FleetForgeError into output plus its exit code; anything else into exit 5."""
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except BaseException as exc:
        found = fleet_error_in(exc)
        if found is None and not isinstance(exc, Exception):
            raise  # SystemExit, GeneratorExit, a group of those: not ours to report
        if found is None:
            error_id = uuid.uuid4().hex[:12]
            log.debug("internal error %s", error_id, exc_info=exc)
            found = InternalError(f"internal error (id {error_id}): {_describe(exc)}")
        _report(found, out, err, as_json, exc)
        raise typer.Exit(found.exit_code) from exc


def _describe(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return redact(text[:300])


def _report(
    exc: FleetForgeError, out: Console, err: Console, as_json: bool, raised: BaseException
) -> None:
    if debugging():
        err.print(
            "".join(traceback.format_exception(raised)).rstrip(), markup=False, highlight=False
        )
    if as_json:
        print_json(exc.to_dict(), out)
        return
    hint = "" if debugging() or exc.exit_code != 5 else " (--debug shows the traceback)"
    # the message is text (it may quote user input): never parsed as markup
    err.print(Text.assemble(("error:", "bold red"), " ", text(exc.message), hint), highlight=False)
    if exc.details:
        err.print(problem_table(exc))
