"""The ``fleetforge`` command line: ``fleetforge --help`` lists the commands.

``main`` is the console script. ``fleetforge mcp`` (an MCP client spawns it, sometimes once per
tool call) starts on a short path that loads neither the command-line framework nor the engine
(:mod:`._mcp_fast`); every other command goes through the typer app (:mod:`._app`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetforge.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``fleetforge`` script."""
    from fleetforge.cli._argv import hoist
    from fleetforge.cli._mcp_fast import fast_mcp

    argv = hoist(sys.argv[1:])
    code = fast_mcp(argv)
    if code is None:
        from fleetforge.cli._app import app
        from fleetforge.cli._main import run

        code = run(app, argv)
    sys.exit(code)


def __getattr__(name: str) -> Any:
    if name == "app":
        from fleetforge.cli._app import app

        return app
    raise AttributeError(f"module 'fleetforge.cli' has no attribute {name!r}")
