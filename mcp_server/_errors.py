"""One mapping from exceptions to MCP tool errors (DESIGN "MCP tool arguments and errors").

A failed call is a tool result with ``isError`` set, structured content
``{"error": {"code", "message", "details": [{"pointer", "message"}]}}`` and a text that says
what was wrong. FastMCP would prefix exception text with "Error executing tool ...", so the
result is built here. Unexpected exceptions are logged with an id and answered without internals.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError

from fleetforge._jsondomain import escape_unencodable
from fleetforge.errors import ContractError, FleetForgeError, InternalError, NotFoundError
from fleetforge.ids import new_id
from fleetforge.redaction import get_logger

__all__ = ["as_fleet_error", "error_result"]

log = get_logger("fleetforge.mcp")


def as_fleet_error(exc: BaseException, *, tool: str) -> FleetForgeError:
    """The FleetForgeError a failed tool call reports."""
    if isinstance(exc, FleetForgeError):
        return exc
    if isinstance(exc, ValidationError):
        from fleetforge.validation import pydantic_details

        return ContractError(
            f"invalid arguments for {tool}", details=pydantic_details(exc), tool=tool
        )
    error_id = new_id("err")
    log.error("tool %s failed unexpectedly (error id %s)", tool, error_id, exc_info=exc)
    return InternalError(
        f"internal error in {tool} (error id {error_id}; the server log has the details)",
        error_id=error_id,
    )


def unknown_tool(name: str, known: list[str]) -> FleetForgeError:
    return NotFoundError(f"unknown tool {name!r}; the fleet's tools are {', '.join(known)}")


def error_result(error: FleetForgeError) -> CallToolResult:
    # an error may quote what the caller sent; a surrogate in it could not be sent as UTF-8
    body = _encodable(error.to_dict())
    text = escape_unencodable(f"{error.code}: {error}")
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structuredContent=body,
        isError=True,
    )


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        return escape_unencodable(value)
    if isinstance(value, dict):
        return {k: _encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    return value


def ok_result(structured: dict[str, object]) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(structured, ensure_ascii=False))],
        structuredContent=structured,
        isError=False,
    )
