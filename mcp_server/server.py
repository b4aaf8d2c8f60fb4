"""The fleet's MCP server: a tool per operation, resources and a prompt, on FastMCP.

No fleet logic lives here: every tool comes from the operation table
(:mod:`fleetforge.operations`) through :mod:`._tools`, which checks the caller's scope and
identity (:mod:`._gate`) and runs the operation's engine call. Build a server with
:func:`build_server`; run it with ``fleetforge mcp`` (stdio) or ``fleetforge serve`` (streamable
HTTP, see :mod:`.http`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mcp.server.fastmcp import FastMCP
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, Tool

from fleetforge import __version__
from fleetforge.errors import UsageError
from fleetforge.mcp_server._coord_prompt import register_coordination_prompt
from fleetforge.mcp_server._gate import Gate
from fleetforge.mcp_server._resources import register_prompts, register_resources
from fleetforge.mcp_server._shim import lowlevel, set_server_version
from fleetforge.mcp_server._tools import ToolTable
from fleetforge.mcp_server._wire import guard

if TYPE_CHECKING:
    from fleetforge.fleet.service import FleetService

__all__ = ["ServerOptions", "build_server", "check_listen"]

DEFAULT_MAX_ARTIFACT_BYTES = 8 * 1024 * 1024

INSTRUCTIONS = """\
FleetForge fleet control plane. Submit runs (DAGs of steps) with fleet_submit_run and follow them
with fleet_get_run / fleet_run_events. To work as a worker: fleet_register_worker once, then loop
fleet_lease_task -> do the task -> fleet_heartbeat while working (before the lease expires) ->
fleet_post_receipt with the output (or fleet_fail_task). Every work call after the lease passes the
task_id and fencing_token from the lease, and (unless your token names your worker) the same
worker_id you leased as: only the worker holding a lease may act on it. Errors come back as tool
errors whose structured content is {"error": {"code", "message", "details"}}; LeaseLostError or
RunCancelledError mean: stop working on that task."""


@dataclass(frozen=True)
class ServerOptions:
    """How a server is configured (transport-specific parts are used by ``fleetforge serve``)."""

    name: str = "fleetforge"
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"
    # HTTP only
    host: str = "127.0.0.1"
    port: int = 8765
    auth: bool = False  # bearer tokens from the store; False = no auth (loopback only)
    public_url: str | None = None
    stateless: bool = False
    json_response: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()


class _FleetMCP(FastMCP[Any]):
    """FastMCP serving the fleet's tools from its :class:`~._tools.ToolTable`: ``list_tools``
    and ``call_tool`` are FastMCP's public handler methods, overridden (no tool is registered
    through FastMCP's tool manager, whose per-function models a start would pay for)."""

    table: ToolTable

    async def list_tools(self) -> list[Tool]:
        return list(self.table.tools)

    async def call_tool(  # type: ignore[override]
        self, name: str, arguments: dict[str, Any]
    ) -> CallToolResult:
        return await self.table.call(self.get_context(), name, arguments)


def build_server(
    fleet: FleetService | Callable[[], FleetService], options: ServerOptions | None = None
) -> FastMCP[Any]:
    """A FastMCP server exposing ``fleet``: a tool per operation, resources and a prompt.

    ``fleet`` may be a function that opens the engine: it runs on the first call that needs
    it, so the server answers ``initialize`` and ``tools/list`` without loading the engine."""
    opts = options or ServerOptions()
    auth_kwargs: dict[str, Any] = {}
    if opts.auth:
        from mcp.server.auth.settings import AuthSettings

        from fleetforge.fleet.service import FleetService
        from fleetforge.mcp_server.auth import FleetTokenVerifier

        if not isinstance(fleet, FleetService):
            raise UsageError("a server with bearer tokens needs an open FleetService")

        base = (opts.public_url or f"http://{_url_host(opts.host)}:{opts.port}").rstrip("/")
        auth_kwargs = {
            "token_verifier": FleetTokenVerifier(fleet.sync.store),
            "auth": AuthSettings(
                issuer_url=base,  # type: ignore[arg-type]
                resource_server_url=f"{base}/mcp",  # type: ignore[arg-type]
                validate_token_resource=False,  # our tokens are not bound to a resource
            ),
        }
    mcp = _FleetMCP(
        opts.name,
        instructions=INSTRUCTIONS,
        log_level=opts.log_level,
        host=opts.host,
        port=opts.port,
        stateless_http=opts.stateless,
        json_response=opts.json_response,
        # base64 inflates artifacts by 4/3; leave room for the JSON-RPC envelope
        max_request_body_size=opts.max_artifact_bytes * 4 // 3 + 1024 * 1024,
        transport_security=_transport_security(opts),
        **auth_kwargs,
    )
    set_server_version(mcp, __version__)
    guard(lowlevel(mcp))  # arguments outside the JSON value domain: refused, never altered
    gate = Gate(auth_required=opts.auth)
    mcp.table = ToolTable(fleet, gate, opts.max_artifact_bytes)
    register_resources(mcp, mcp.table)
    register_prompts(mcp)
    register_coordination_prompt(mcp)
    return mcp


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _transport_security(opts: ServerOptions) -> TransportSecuritySettings | None:
    """DNS-rebinding protection stays on: loopback names always, plus what the operator adds."""
    loopback_hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    loopback_origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    hosts = [*loopback_hosts, *opts.allowed_hosts]
    if opts.host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        hosts.append(f"{_url_host(opts.host)}:*")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[*loopback_origins, *opts.allowed_origins],
    )


def check_listen(host: str, auth: bool) -> None:
    """Refuse to serve a non-loopback address without authentication."""
    if not auth and host not in ("127.0.0.1", "localhost", "::1"):
        raise UsageError(
            f"refusing to listen on {host} with auth disabled: anyone who can reach it could "
            "drive the fleet. Create a token (fleetforge token create) or bind to 127.0.0.1."
        )
