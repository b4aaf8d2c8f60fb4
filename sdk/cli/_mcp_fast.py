"""``fleetforge mcp`` on a short path: an MCP client spawns it, some once per tool call
(langchain-mcp-adapters by default), so its start-up is paid again and again.

The path parses the few options ``fleetforge mcp`` takes with the standard library, builds the
server without the command-line framework, and opens the engine with the first call that needs
it. Anything it does not recognise (``--help``, a misspelt option) goes to the typer app, which
gives the usual help and errors. The options and their meaning are the same as
:func:`fleetforge.cli._mcp.mcp`'s (a test runs both).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Literal

from fleetforge.cli._argv import command_of

__all__ = ["LogLevel", "fast_mcp", "log_level"]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(value: str) -> LogLevel:
    """``--log-level``, checked."""
    from fleetforge.errors import UsageError

    upper = value.upper()
    if upper not in _LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(_LEVELS)}, got {value!r}")
    return upper  # type: ignore[return-value]


class _Unusual(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Unusual(message)


def _parser() -> _Parser:
    parser = _Parser(add_help=False, allow_abbrev=False)
    parser.add_argument("--store")
    parser.add_argument("--artifacts")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("command", choices=["mcp"])
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--scorers", action="append", default=[])
    return parser


def fast_mcp(argv: Sequence[str]) -> int | None:
    """Serve ``fleetforge mcp`` and return its exit code; None when ``argv`` is not a plain
    ``mcp`` command line (the caller then runs the typer app)."""
    if command_of(argv) != "mcp" or any(a in ("--help", "-h") for a in argv):
        return None
    try:
        options = _parser().parse_args(list(argv))
    except _Unusual:
        return None
    from fleetforge.errors import FleetForgeError

    try:
        return _serve(options)
    except FleetForgeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _serve(options: argparse.Namespace) -> int:
    from contextlib import ExitStack
    from typing import TYPE_CHECKING

    import anyio

    from fleetforge.mcp_server.server import ServerOptions, build_server

    if TYPE_CHECKING:
        from fleetforge.fleet.service import FleetService

    level = "DEBUG" if options.debug else log_level(options.log_level)
    if options.scorers:
        from fleetforge.cli._context import load_scorers

        load_scorers(options.scorers)  # a module that does not load: refuse to start
    with ExitStack() as stack:

        def open_engine() -> FleetService:
            from fleetforge.fleet.artifacts import ArtifactStore
            from fleetforge.fleet.service import FleetService
            from fleetforge.fleet.settings import artifacts_root, store_url
            from fleetforge.fleet.store import open_store
            from fleetforge.telemetry import configure

            configure("fleetforge-mcp")
            store = stack.enter_context(open_store(store_url(options.store)))
            return FleetService(store, artifacts=ArtifactStore(artifacts_root(options.artifacts)))

        anyio.run(build_server(open_engine, ServerOptions(log_level=level)).run_stdio_async)
    return 0
