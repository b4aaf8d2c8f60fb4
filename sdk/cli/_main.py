"""Running the ``fleetforge`` command: one line per mistake, never a traceback.

Click reports a usage mistake (an unknown option, a bad choice, a missing argument) in a box of
several lines; here it is one line, ``error: <what> (see 'fleetforge CMD --help')``, exit 2.
Ctrl-C ends a command with exit 130 and the word "interrupted". ``--debug`` or
``FLEETFORGE_DEBUG=1`` shows tracebacks and FleetForge's debug log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from rich.text import Text

from fleetforge.cli._argv import hoist
from fleetforge.cli._console import err
from fleetforge.cli._errors import debugging, set_debug

__all__ = ["run"]

EXIT_INTERRUPTED = 130


def run(app: Any, args: Sequence[str] | None = None) -> int:
    """Run the typer ``app`` on ``args`` (default: the command line); return the exit code."""
    argv = hoist(sys.argv[1:] if args is None else args)
    set_debug("--debug" in argv)
    with _logging():
        return _run(app, argv)


def _run(app: Any, argv: list[str]) -> int:
    try:
        code = app(args=argv, prog_name="fleetforge", standalone_mode=False)
    except typer.TyperException as exc:  # click's UsageError, BadParameter... (typer vendors click)
        _line(f"{' '.join(exc.format_message().split())}{_see_help(exc)}")
        return int(getattr(exc, "exit_code", 2))
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted", highlight=False, markup=False)
        return EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED:  # typer turns a KeyboardInterrupt into Exit(130)
        err.print("interrupted", highlight=False, markup=False)
    return code if isinstance(code, int) else 0


def _line(message: str) -> None:
    err.print(Text.assemble(("error:", "bold red"), f" {message}"), highlight=False)


def _see_help(exc: typer.TyperException) -> str:
    ctx = getattr(exc, "ctx", None)  # usage errors know the command they are about
    if ctx is None:
        return ""
    return f" (see '{ctx.command_path} --help')"


@contextmanager
def _logging() -> Iterator[None]:
    """FleetForge's warnings (a retry, a reconnect) as ``warning: ...`` lines on stderr; with
    --debug its debug records too, and the root logger at INFO for the libraries. Undone at
    the end (``run`` is also called in process, by tests)."""
    logger = logging.getLogger("fleetforge")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG if debugging() else logging.WARNING)
    if debugging():
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and debugging():
            text += "\n" + self.formatException(record.exc_info)
        return text
