"""Tool arguments checked as they arrive, before the MCP SDK can change or drop them.

Two things happen inside the SDK before a tool runs, whatever the transport:

- its server session re-validates each request from its JSON form, and pydantic writes a NaN
  or an Infinity there as ``null``: a receipt whose output is NaN would be stored as null;
- over stdio a line its JSON parser refuses (a lone surrogate escape such as ``"\\ud800"``, which
  Python's json reads) becomes an exception with no reply at all: the caller waits forever.

:func:`guard` puts a filter in front of the low-level server's read stream: a ``tools/call``
whose arguments are outside the JSON value domain is answered at once with the same
``ContractError`` tool error (code, pointers) the service would give, and an unparsable request
whose id can still be read gets a JSON-RPC error instead of silence.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from mcp.types import (
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCRequest,
    JSONRPCResponse,
)

from fleetforge._jsondomain import check_tool_arguments, escape_unencodable
from fleetforge.errors import ContractError
from fleetforge.mcp_server._errors import error_result
from fleetforge.redaction import get_logger

__all__ = ["guard"]

log = get_logger("fleetforge.mcp")


def guard(server: Any) -> None:
    """Wrap ``server.run`` (a low-level ``mcp.server.Server``) with the argument filter."""
    run: Callable[..., Any] = server.run

    async def guarded_run(
        read_stream: MemoryObjectReceiveStream[SessionMessage | Exception],
        write_stream: MemoryObjectSendStream[SessionMessage],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def pump() -> None:
            # a transport may close its streams while we wait (stateless HTTP does, once it
            # has answered): that ends the session like the end of the stream does
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                async with send:
                    async for item in read_stream:
                        answer = _answer(item)
                        if answer is None:
                            await send.send(item)
                        else:
                            await write_stream.send(answer)

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            try:
                return await run(receive, write_stream, *args, **kwargs)
            finally:
                tg.cancel_scope.cancel()

    server.run = guarded_run


def _answer(item: SessionMessage | Exception) -> SessionMessage | None:
    """A reply that replaces handing ``item`` on, or None to hand it on."""
    if isinstance(item, SessionMessage):
        root = item.message.root
        if isinstance(root, JSONRPCRequest) and root.method == "tools/call":
            return _tool_error(root.id, root.params or {})
        return None
    raw = _raw_text(item)
    if raw is None:
        return None
    try:
        request = json.loads(raw)  # Python's json reads what the SDK's parser refused
    except (ValueError, RecursionError):
        return None
    if not isinstance(request, dict) or not isinstance(request.get("id"), str | int):
        return None
    if request.get("method") == "tools/call" and isinstance(request.get("params"), dict):
        answer = _tool_error(request["id"], request["params"])
        if answer is not None:
            return answer
    message = escape_unencodable(f"the request is not valid JSON-RPC: {item}")[:2000]
    error = JSONRPCError(
        jsonrpc="2.0", id=request["id"], error=ErrorData(code=PARSE_ERROR, message=message)
    )
    return SessionMessage(JSONRPCMessage(error))


def _tool_error(request_id: str | int, params: dict[str, Any]) -> SessionMessage | None:
    name, arguments = params.get("name"), params.get("arguments")
    if not isinstance(name, str) or not isinstance(arguments, dict):
        return None
    try:
        check_tool_arguments(name, arguments)
    except ContractError as exc:
        log.info("%s refused before the tool ran: %s", name, exc.message)
        result = error_result(exc).model_dump(by_alias=True, mode="json", exclude_none=True)
        response = JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result)
        return SessionMessage(JSONRPCMessage(response))
    return None


def _raw_text(exc: Exception) -> str | None:
    """The text of a message the SDK could not parse (its pydantic error keeps the input)."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return None
    try:
        found = errors()
    except Exception:  # not a pydantic ValidationError after all
        return None
    raw = found[0].get("input") if found and isinstance(found[0], dict) else None
    return raw if isinstance(raw, str) else None
