"""A tiny MCP server for armory tests: `echo`, `secret_length` (reads $TOOL_SECRET), `fail`.

python tests/mcp_test_server.py [--crash | --print-env]   (print to stderr and exit 3 at start;
--print-env prints the whole environment it was given)
"""

from __future__ import annotations

import os
import sys

from mcp.server.fastmcp import FastMCP

server = FastMCP("armory-test", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@server.tool()
def secret_length() -> int:
    """Length of the secret the server was started with."""
    return len(os.environ.get("TOOL_SECRET", ""))


@server.tool()
def fail(reason: str = "boom") -> str:
    """Always fails."""
    raise ValueError(reason)


if __name__ == "__main__":
    if "--print-env" in sys.argv:
        for key, value in sorted(os.environ.items()):
            print(f"{key}={value}", file=sys.stderr)
        sys.exit(3)
    if "--crash" in sys.argv:
        print(
            f"cannot start: missing config (secret={os.environ.get('TOOL_SECRET')})",
            file=sys.stderr,
        )
        sys.exit(3)
    server.run()
