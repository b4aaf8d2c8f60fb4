"""What FastMCP 1.x has no public API for, in one place (tests/test_mcp_server.py pins it).

- The server's version: ``initialize`` reports ``serverInfo.version`` from the low-level
  server, which FastMCP 1.x creates without one (so it reports the ``mcp`` package's version);
  mcp 2.x takes ``MCPServer(version=...)``.
- The low-level server, to run it on memory streams with a client session of one's own class
  (tests and benchmarks; ``create_connected_server_and_client_session`` takes the stock
  ``ClientSession`` only), and to put the JSON value domain's filter (``_wire.guard``) in
  front of its read stream: the SDK's session re-encodes each request, writing NaN as null,
  before any public hook sees it.
"""

from __future__ import annotations

from typing import Any

from mcp.server.fastmcp import FastMCP
from mcp.server.lowlevel import Server

__all__ = ["lowlevel", "set_server_version"]


def set_server_version(mcp: FastMCP[Any], version: str) -> None:
    """Report ``version`` as this server's ``serverInfo.version``."""
    mcp._mcp_server.version = version


def lowlevel(mcp: FastMCP[Any]) -> Server[Any, Any]:
    """The low-level MCP server under ``mcp``."""
    return mcp._mcp_server
