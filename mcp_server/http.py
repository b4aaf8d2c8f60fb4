"""``fleetforge serve``: the MCP server over streamable HTTP at ``/mcp``, plus ``/healthz``.

Bearer tokens from the store (see :mod:`.auth`) protect ``/mcp`` through the MCP SDK's own
token-verifier hook: no or unknown token -> 401; a token lacking a tool's scope -> a "forbidden"
tool error. With auth disabled the server only listens on loopback. The SDK's DNS-rebinding
protection stays on.
``stateless`` + ``json_response`` serve each POST on its own (no session affinity), so several
processes behind a load balancer, on one PostgreSQL store, act as one fleet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from fleetforge import __version__
from fleetforge.errors import FleetForgeError
from fleetforge.fleet.service import FleetService
from fleetforge.mcp_server.server import ServerOptions, build_server, check_listen
from fleetforge.operations import OPERATIONS
from fleetforge.operations.runs import ListRunsArgs

__all__ = ["http_app", "serve_http"]


def http_app(fleet: FleetService, options: ServerOptions) -> Starlette:
    """The ASGI app: ``/mcp`` (MCP streamable HTTP) and ``/healthz`` (no auth)."""
    mcp = build_server(fleet, options)

    @mcp.custom_route("/healthz", methods=["GET"])  # type: ignore[untyped-decorator]
    async def healthz(request: Request) -> JSONResponse:
        body: dict[str, Any] = {
            "status": "ok",
            "version": __version__,
            "auth": options.auth,
            "stateless": options.stateless,
        }
        try:
            await fleet.call(OPERATIONS["list_runs"], ListRunsArgs(limit=1))  # the store answers
        except FleetForgeError as exc:
            body.update(status="error", error=exc.to_dict()["error"])
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    return mcp.streamable_http_app()


async def serve_http(
    fleet: FleetService,
    options: ServerOptions,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until interrupted (SIGINT/SIGTERM stop it gracefully)."""
    check_listen(options.host, options.auth)
    app = http_app(fleet, options)
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level=options.log_level.lower(),
        access_log=options.log_level in ("DEBUG", "INFO"),
        lifespan="on",
    )
    server = uvicorn.Server(config)
    if on_ready is not None:
        host = f"[{options.host}]" if ":" in options.host else options.host
        url = f"http://{host}:{options.port}/mcp"
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets=sockets)
            on_ready(url)

        server.startup = startup  # type: ignore[method-assign]
    await server.serve()
