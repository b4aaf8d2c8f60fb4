"""``fleetforge mcp`` (stdio), ``fleetforge serve`` (streamable HTTP) and ``fleetforge token``."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Annotated

import anyio
import typer

from fleetforge.cli._console import err, out, print_json, text
from fleetforge.cli._context import Scorers, globals_of, load_scorers
from fleetforge.cli._errors import reporting
from fleetforge.cli._mcp_fast import log_level
from fleetforge.errors import UsageError

if TYPE_CHECKING:
    from fleetforge.fleet.service import FleetService
    from fleetforge.fleet.store import EventStore
    from fleetforge.fleet.tokens import TokenStore

__all__ = ["mcp", "serve", "token_app"]

_level = log_level


def mcp(
    ctx: typer.Context,
    log_level: Annotated[
        str, typer.Option(help="stderr log level (INFO logs every request).")
    ] = "WARNING",
    scorers: Scorers = None,
) -> None:
    """Serve the fleet's MCP tools over stdio (for Claude Desktop, Claude Code, Cursor...).

    The server answers at once; the store opens with the first call that needs it (a store
    that cannot be opened is that call's error)."""
    from fleetforge.mcp_server.server import ServerOptions, build_server

    g = globals_of(ctx)
    with reporting(out, err), ExitStack() as stack:
        options = ServerOptions(log_level=_level(log_level))
        if scorers:
            load_scorers(scorers)  # a module that does not load: refuse to start

        def open_engine() -> FleetService:
            from fleetforge.fleet.artifacts import ArtifactStore
            from fleetforge.fleet.service import FleetService
            from fleetforge.fleet.store import open_store
            from fleetforge.telemetry import configure

            configure("fleetforge-mcp")
            store = stack.enter_context(open_store(g.store_url))
            return FleetService(store, artifacts=ArtifactStore(g.artifacts_root))

        anyio.run(build_server(open_engine, options).run_stdio_async)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve without tokens (loopback only).")
    ] = False,
    stateless: Annotated[
        bool,
        typer.Option(
            "--stateless", help="No MCP sessions and JSON replies: for several processes."
        ),
    ] = False,
    public_url: Annotated[
        str | None, typer.Option(help="Base URL clients use, when behind a proxy.")
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(help="Extra Host header value to accept, e.g. fleet.example:443."),
    ] = None,
    allowed_origin: Annotated[
        list[str] | None, typer.Option(help="Extra Origin header value to accept.")
    ] = None,
    max_artifact_mb: Annotated[
        float, typer.Option(help="Largest artifact fleet_put_artifact accepts, MiB.")
    ] = 8.0,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "WARNING",
    scorers: Scorers = None,
) -> None:
    """Serve the fleet's MCP tools over streamable HTTP at /mcp (bearer tokens), with /healthz
    and the web dashboard at /ui."""
    from fleetforge.fleet.artifacts import ArtifactStore
    from fleetforge.fleet.service import FleetService
    from fleetforge.fleet.store import open_store
    from fleetforge.mcp_server.http import serve_http
    from fleetforge.mcp_server.server import ServerOptions, check_listen
    from fleetforge.mcp_server.ui import UiOptions, dashboard_url, new_login
    from fleetforge.telemetry import configure

    configure("fleetforge-serve")
    g = globals_of(ctx)
    with reporting(out, err):
        load_scorers(scorers)
        check_listen(host, not no_auth)
        options = ServerOptions(
            host=host,
            port=port,
            auth=not no_auth,
            public_url=public_url,
            stateless=stateless,
            json_response=stateless,
            allowed_hosts=tuple(allowed_host or ()),
            allowed_origins=tuple(allowed_origin or ()),
            max_artifact_bytes=int(max_artifact_mb * 1024 * 1024),
            log_level=_level(log_level),
        )
        with open_store(g.store_url) as store:
            if options.auth and not _tokens(store).list():
                raise UsageError(
                    f"no tokens in the store {store.url}: create one with 'fleetforge token "
                    "create NAME --scope work', or pass --no-auth to serve on loopback without "
                    "auth"
                )
            fleet = FleetService(store, artifacts=ArtifactStore(g.artifacts_root))
            # without tokens, the dashboard takes a one-time login link instead
            ui = UiOptions(auth=options.auth, launch_token=None if options.auth else new_login())

            def ready(url: str) -> None:
                auth = "bearer tokens" if options.auth else "no auth (loopback)"
                err.print(text(f"fleetforge MCP server at {url} ({auth}); store {store.url}"))
                err.print(text(f"dashboard: {dashboard_url(url, ui.launch_token)}"))

            anyio.run(lambda: serve_http(fleet, options, on_ready=ready, ui=ui))


def _tokens(store: EventStore) -> TokenStore:
    """The store's tokens, after importing a tokens file an earlier version left (once)."""
    from fleetforge.fleet.tokens import TokenStore, legacy_tokens_path

    tokens = TokenStore(store)
    legacy = legacy_tokens_path()
    added = tokens.import_file(legacy, by=_who())
    if added:
        err.print(f"imported {added} tokens from {legacy} (renamed {legacy.name}.imported)")
    return tokens


@contextmanager
def _token_store(ctx: typer.Context) -> Iterator[TokenStore]:
    from fleetforge.fleet.store import open_store

    with open_store(globals_of(ctx).store_url) as store:
        yield _tokens(store)


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


token_app = typer.Typer(help="Bearer tokens for fleetforge serve (kept in the store, hashed).")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the token (shown in logs and events).")],
    scope: Annotated[
        list[str], typer.Option("--scope", help="read, submit, work or admin (repeatable).")
    ],
    worker_id: Annotated[
        str | None, typer.Option(help="Worker this token acts as (worker tools).")
    ] = None,
    trust_level: Annotated[
        str,
        typer.Option(
            "--trust-level",
            help="Trust level of a worker using it: untrusted, sandboxed, internal, privileged.",
        ),
    ] = "sandboxed",
    public_key: Annotated[
        str | None,
        typer.Option(
            "--public-key",
            help="The worker's Ed25519 public key (base64 of the raw 32 bytes): it must "
            "register it and sign its receipts with it.",
        ),
    ] = None,
    project: Annotated[
        list[str] | None,
        typer.Option(
            "--project",
            help="Limit the token's coordination tools to this project (repeatable; "
            "default: every project).",
        ),
    ] = None,
) -> None:
    """Create a token; it is printed once, only its hash is stored."""
    with reporting(out, err), _token_store(ctx) as tokens:
        secret, record = tokens.create(
            name,
            scope,
            worker_id=worker_id,
            by=_who(),
            trust_level=trust_level,
            public_key=public_key,
            projects=project or None,
        )
        added = f"token {record.name!r} ({', '.join(record.scopes)}) added to {tokens.store.url}"
        err.print(text(added))
        out.print(secret, highlight=False, markup=False)


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked tokens.")] = False,
) -> None:
    """List tokens (names, scopes, workers; never the tokens)."""
    from rich.table import Table

    with reporting(out, err, as_json=as_json), _token_store(ctx) as tokens:
        records = tokens.list(include_revoked=revoked)
        if as_json:
            print_json([r.to_dict() for r in records])
            return
        table = Table("Name", "Scopes", "Worker", "Trust", "Created", "Revoked", box=None)
        for r in records:
            table.add_row(
                text(r.name),
                ", ".join(r.scopes),
                text(r.worker_id or "-"),
                r.trust_level.value + (" +key" if r.public_key else ""),
                r.created_at.isoformat(timespec="seconds"),
                "-" if r.revoked_at is None else r.revoked_at.isoformat(timespec="seconds"),
            )
        out.print(table)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the token.")],
) -> None:
    """Revoke a token; running servers refuse it within a second."""
    with reporting(out, err), _token_store(ctx) as tokens:
        tokens.revoke(name, by=_who())
        err.print(text(f"token {name!r} revoked in {tokens.store.url}"))


@token_app.command("revoke-capability")
def token_revoke_capability(
    ctx: typer.Context,
    capability_id: Annotated[
        str, typer.Argument(help="Id of the task's capability token (cap_ + 32 hex digits).")
    ],
    reason: Annotated[str, typer.Option(help="Why, recorded for people.")] = "",
) -> None:
    """Revoke a task's capability token (and every attenuation of it): the worker learns it
    with its next heartbeat answer, and tools it calls after that are refused. With --url, on
    a running fleet (a token with the admin scope)."""
    from fleetforge.cli._context import open_fleet

    with reporting(out, err), open_fleet(ctx, existing=True, by=_who()) as fleet:
        done = fleet.revoke_capability(capability_id, reason=reason)
        task = done.task_id or "an unknown task"
        state = "revoked" if done.revoked else "was already revoked"
        err.print(text(f"capability {capability_id} ({task}) {state} in {globals_of(ctx).where}"))
