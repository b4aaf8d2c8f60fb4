"""``fleetforge serve``: the MCP server over streamable HTTP at ``/mcp``, plus ``/healthz`` and
the web dashboard at ``/ui`` (:mod:`fleetforge.mcp_server.ui`).

Bearer tokens from the store (see :mod:`.auth`) protect ``/mcp`` through the MCP SDK's own
token-verifier hook: no or unknown token -> 401; a token lacking a tool's scope -> a "forbidden"
tool error. With auth disabled the server only listens on loopback. The SDK's DNS-rebinding
protection stays on.
``stateless`` + ``json_response`` serve each POST on its own (no session affinity), so several
processes behind a load balancer, on one PostgreSQL store, act as one fleet.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from fleetforge import __version__
from fleetforge.errors import FleetForgeError, UsageError
from fleetforge.fleet.service import FleetService
from fleetforge.mcp_server.server import ServerOptions, build_server, check_listen
from fleetforge.mcp_server.ui import UiOptions, ui_routes
from fleetforge.operations import OPERATIONS
from fleetforge.operations.runs import ListRunsArgs

__all__ = ["http_app", "serve_http"]


def http_app(fleet: FleetService, options: ServerOptions, ui: UiOptions | None = None) -> Starlette:
    """The ASGI app: ``/mcp`` (MCP streamable HTTP), ``/healthz`` (no auth) and ``/ui`` (the
    dashboard: signs in with the store's tokens, or with ``ui.launch_token`` once)."""
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

    app = mcp.streamable_http_app()
    ui = ui or UiOptions(auth=options.auth)
    ui.allowed_hosts = _ui_hosts(options)
    app.router.routes.extend(ui_routes(fleet, ui))
    return app


def _ui_hosts(options: ServerOptions) -> tuple[str, ...]:
    """The Host headers the dashboard answers: those /mcp accepts (loopback names, the host it
    listens on, ``--allowed-host``)."""
    hosts = list(options.allowed_hosts)
    if options.host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        hosts.append(f"[{options.host}]:*" if ":" in options.host else f"{options.host}:*")
    return tuple(hosts)


class _ClientGone(logging.Filter):
    """The MCP SDK (1.x) logs "Error in standalone SSE writer" with a ClosedResourceError
    traceback each time a client closes its event stream: that is a client leaving, not an
    error. Those records go to DEBUG; every other record passes as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, anyio.ClosedResourceError | anyio.BrokenResourceError):
            if record.levelno > logging.DEBUG:
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
                record.exc_info = record.exc_text = None
                record.msg = f"{record.getMessage()}: the client went away"
                record.args = ()
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_CLIENT_GONE = _ClientGone()


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is a clear UsageError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "it is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise UsageError(
            f"cannot listen on {host}:{port}: {why} (another server there? pick another --port)"
        ) from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def serve_http(
    fleet: FleetService,
    options: ServerOptions,
    *,
    on_ready: Callable[[str], None] | None = None,
    ui: UiOptions | None = None,
) -> None:
    """Serve until interrupted: SIGINT/SIGTERM stop it gracefully, also while it starts (a
    second SIGINT stops it at once). The dashboard's live streams end when it stops."""
    check_listen(options.host, options.auth)
    for name in ("mcp.server.streamable_http", "mcp.server.streamable_http_manager"):
        logger = logging.getLogger(name)
        if _CLIENT_GONE not in logger.filters:
            logger.addFilter(_CLIENT_GONE)
    ui = ui or UiOptions(auth=options.auth)
    stopping: list[_Server] = []
    ui.stopping = lambda: bool(stopping) and stopping[0].should_exit
    server = _Server(
        uvicorn.Config(
            http_app(fleet, options, ui),
            host=options.host,
            port=options.port,
            log_level=options.log_level.lower(),
            access_log=options.log_level in ("DEBUG", "INFO"),
            lifespan="on",
        )
    )
    stopping.append(server)
    bound: list[int] = []  # the port listened on (--port 0 picks a free one)
    if on_ready is not None:
        host = f"[{options.host}]" if ":" in options.host else options.host
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets=sockets)
            if not server.should_exit:  # a signal during start-up: it stops instead
                on_ready(f"http://{host}:{bound[0] if bound else options.port}/mcp")

        server.startup = startup  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        await tg.start(_stop_on_signal, server)
        # the alert outbox is delivered wherever a store is open (docs/alerts.md)
        from fleetforge.fleet.alerts.dispatcher import AlertDispatcher

        tg.start_soon(AlertDispatcher(fleet.sync.store, clock=fleet.sync.clock).run)
        with _listen(options.host, options.port) as sock:
            bound.append(sock.getsockname()[1])
            if not server.should_exit:
                await server.serve(sockets=[sock])
        tg.cancel_scope.cancel()


class _Server(uvicorn.Server):
    """uvicorn's server, its signals handled by :func:`_stop_on_signal` instead: uvicorn
    installs its handlers only once start-up begins, and a Ctrl-C before that cancelled the
    start-up half-way (with a traceback in the log)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _stop_on_signal(server: _Server, *, task_status: TaskStatus[None]) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            if server.should_exit and signum == signal.SIGINT:
                server.force_exit = True
            server.should_exit = True
