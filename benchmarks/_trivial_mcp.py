"""A bare FastMCP server with one trivial tool: the baseline bench_mcp compares against.

python _trivial_mcp.py stdio | python _trivial_mcp.py http PORT
"""

from __future__ import annotations

import sys

from mcp.server.fastmcp import FastMCP

server = FastMCP("trivial", log_level="WARNING")


@server.tool()
def ping() -> str:
    """Answer pong."""
    return "pong"


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run()
    else:
        server.settings.port = int(sys.argv[2])
        server.run(transport="streamable-http")
