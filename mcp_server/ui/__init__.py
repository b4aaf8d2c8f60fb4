"""The web dashboard at ``/ui`` of ``fleetforge serve`` (and ``fleetforge ui``).

Pages (``read`` scope): the runs list (filters by status, label and name; cursor paging), a
run (its DAG and Gantt chart as server-side SVG, steps, inputs/outputs, receipts with verdicts
and the hash chain checked, artifacts to download, events followed live over server-sent
events) and the workers. Actions (``submit`` scope, POST with a CSRF token): approve a human
step, resume, cancel. Sign-in is a session cookie (:mod:`._auth`). Every stored text is escaped
(:mod:`._views`); the assets are two files of this package (``static/``), so it works offline.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from fleetforge.contracts.events import TokenScope
from fleetforge.errors import FleetForgeError, NotFoundError
from fleetforge.fleet.service import FleetService
from fleetforge.mcp_server.ui import _auth, _reads, _views
from fleetforge.mcp_server.ui._svg import dag_svg
from fleetforge.operations import OPERATIONS
from fleetforge.operations.runs import ApproveStepArgs, CancelRunArgs, ResumeRunArgs

__all__ = ["UiOptions", "dashboard_url", "new_login", "ui_routes"]

_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # (no-referrer would make browsers send Origin: null)
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
_STREAM_SLICE = 1.0  # seconds a stream waits for events before checking it should stop


@dataclass
class UiOptions:
    """How the dashboard signs people in, and how a live stream knows the server is stopping."""

    auth: bool = True  # sign in with the store's bearer tokens
    launch_token: str | None = None  # a one-time login token (fleetforge ui, serve --no-auth)
    stopping: Callable[[], bool] = field(default=lambda: False)
    # Host headers answered (``name:*`` = any port), as /mcp's DNS-rebinding protection; empty
    # = the loopback names only. http_app fills it from the server's options.
    allowed_hosts: tuple[str, ...] = ()


def _host_ok(host: str, allowed: tuple[str, ...]) -> bool:
    patterns = ("127.0.0.1:*", "localhost:*", "[::1]:*", *allowed)
    has_port = not host.endswith("]") and ":" in host
    name = host.rsplit(":", 1)[0] if has_port else host
    # a Host without a port is the scheme's default port: it matches name:80 and name:443 too
    ports = ("*",) if has_port else ("*", "80", "443")
    return host in patterns or any(f"{name}:{port}" in patterns for port in ports)


def _same_origin(request: Request) -> bool:
    """A POST's Origin (browsers send it) names this server; no Origin: not a browser's."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin.split("://", 1)[-1].rstrip("/") == request.headers.get("host", "")


def new_login() -> str:
    """A one-time login token for a printed dashboard link."""
    return secrets.token_urlsafe(24)


def dashboard_url(mcp_url: str, launch_token: str | None) -> str:
    """The dashboard's URL next to a server's ``/mcp`` URL, with the one-time login if any."""
    base = mcp_url.removesuffix("/mcp") + "/ui/"
    return f"{base}login?once={launch_token}" if launch_token else base


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


def ui_routes(fleet: FleetService, options: UiOptions) -> list[BaseRoute]:
    """The dashboard's routes, to add to the server's Starlette app."""
    verifier = None
    if options.auth:
        from fleetforge.mcp_server.auth import FleetTokenVerifier

        verifier = FleetTokenVerifier(fleet.sync.store)
    sessions = _auth.Sessions(verifier, options.launch_token)
    service = fleet.sync

    def page(
        scope: TokenScope, handler: Callable[[Request, _auth.Viewer], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not _host_ok(request.headers.get("host", ""), options.allowed_hosts):
                return _html("<p>Unknown Host header (see --allowed-host).</p>", 421)
            if request.method == "POST" and not _same_origin(request):
                return _html("<p>Refused: the form comes from another site.</p>", 403)
            viewer = await sessions.viewer(request)
            if viewer is None:
                if request.method == "GET" and "text/event-stream" not in request.headers.get(
                    "accept", ""
                ):
                    target = quote(
                        request.url.path + ("?" + request.url.query if request.url.query else "")
                    )
                    return RedirectResponse(f"/ui/login?next={target}", status_code=303)
                return _html("<p>Log in first.</p>", 401)
            if not viewer.allows(scope):
                return _html(f"<p>This needs the {scope} scope.</p>", 403)
            if request.method == "POST":
                form = await request.form()
                sent = form.get("csrf")
                if not _auth.csrf_ok(viewer, sent if isinstance(sent, str) else None):
                    return _html("<p>Refused: the form's CSRF token is missing or wrong.</p>", 403)
                request.state.form = form
            try:
                return await handler(request, viewer)
            except NotFoundError as exc:
                return _html(f"<p>{escape(exc.message)}</p>", 404)
            except FleetForgeError as exc:
                return _html(f"<p>Refused: {escape(exc.message)}</p>", 409)

        return endpoint

    # ── sign-in ─────────────────────────────────────────────────────────────────────────────

    async def login_form(request: Request) -> Response:
        if not _host_ok(request.headers.get("host", ""), options.allowed_hosts):
            return _html("<p>Unknown Host header (see --allowed-host).</p>", 421)
        once = request.query_params.get("once")
        if once is not None:
            session = sessions.redeem(once)
            if session is None:
                return _html(
                    _views.login_page("That login link was used already or is wrong."), 401
                )
            response: Response = RedirectResponse("/ui/", status_code=303)
            _auth.set_cookie(response, request, session)
            return response
        return _html(_views.login_page(next_page=request.query_params.get("next")))

    async def login(request: Request) -> Response:
        if not _host_ok(request.headers.get("host", ""), options.allowed_hosts):
            return _html("<p>Unknown Host header (see --allowed-host).</p>", 421)
        if not _same_origin(request):
            return _html("<p>Refused: the form comes from another site.</p>", 403)
        form = await request.form()
        token = form.get("token")
        secret = token.strip() if isinstance(token, str) else ""
        viewer = await sessions.check(secret) if secret and not secret.startswith("ffs_") else None
        if viewer is None:
            page_ = _views.login_page("Unknown or revoked token.", request.query_params.get("next"))
            return _html(page_, 401)
        if not viewer.allows("read"):
            return _html(_views.login_page("This token lacks the read scope."), 403)
        target = request.query_params.get("next", "/ui/")
        if not target.startswith("/ui/") or target.startswith("//"):
            target = "/ui/"
        response: Response = RedirectResponse(target, status_code=303)
        _auth.set_cookie(response, request, secret)
        return response

    async def logout(request: Request, viewer: _auth.Viewer) -> Response:
        sessions.forget(request.cookies.get(_auth.COOKIE))
        response: Response = RedirectResponse("/ui/login", status_code=303)
        _auth.clear_cookie(response)
        return response

    # ── pages ───────────────────────────────────────────────────────────────────────────────

    async def runs(request: Request, viewer: _auth.Viewer) -> Response:
        q = request.query_params
        status = q.get("status") or None
        if status is not None and status not in _views.STATUSES:
            return _html(f"<p>Unknown status {escape(status)}.</p>", 400)
        label = q.get("label") or None
        labels = None
        if label:
            key, sep, value = label.partition("=")
            if not sep or not key:
                return _html("<p>A label filter is key=value.</p>", 400)
            labels = {key.strip(): value.strip()}
        found, cursor = await anyio.to_thread.run_sync(
            lambda: _reads.runs_page(
                service,
                status=status,
                name=q.get("name") or None,
                labels=labels,
                cursor=q.get("cursor") or None,
            )
        )
        body = _views.runs_page(
            viewer, found, cursor, status=status, name=q.get("name"), label=label
        )
        return _html(body)

    async def run(request: Request, viewer: _auth.Viewer) -> Response:
        run_id = request.path_params["run_id"]
        view = await anyio.to_thread.run_sync(lambda: _reads.run_view(service, run_id))
        return _html(_views.run_page(viewer, view, datetime.now(UTC)))

    async def graph(request: Request, viewer: _auth.Viewer) -> Response:
        run_id = request.path_params["run_id"]
        found = await anyio.to_thread.run_sync(lambda: service.get_run(run_id))
        return Response(dag_svg(found), media_type="image/svg+xml", headers=_HEADERS)

    async def stream(request: Request, viewer: _auth.Viewer) -> Response:
        run_id = request.path_params["run_id"]
        last = request.headers.get("last-event-id") or request.query_params.get("after", "0")
        after = int(last) if last.isdigit() else 0
        await anyio.to_thread.run_sync(lambda: service.get_run(run_id))  # 404 if unknown

        async def events() -> AsyncIterator[str]:
            nonlocal after
            yield "retry: 1000\n\n"
            quiet_since = time.monotonic()
            while not options.stopping():
                wait = partial(
                    service.event_rows, run_id, after=after, limit=200, wait_seconds=_STREAM_SLICE
                )
                rows = await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)
                for row in rows:
                    yield f"id: {row.seq}\nevent: fleet\ndata: {_views.event_json(row)}\n\n"
                    after = row.seq
                if rows:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > 15:
                    yield ": still here\n\n"
                    quiet_since = time.monotonic()

        headers = _HEADERS | {"X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    async def artifact(request: Request, viewer: _auth.Viewer) -> Response:
        digest = request.path_params["digest"]
        meta, data = await anyio.to_thread.run_sync(lambda: service.get_artifact(digest))
        name = (meta.name or digest.replace(":", "-")).replace('"', "").replace("\n", " ")
        headers = _HEADERS | {
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "Content-Security-Policy": "sandbox; default-src 'none'",
        }
        return Response(data, media_type="application/octet-stream", headers=headers)

    async def workers(request: Request, viewer: _auth.Viewer) -> Response:
        found, holding = await anyio.to_thread.run_sync(lambda: _reads.workers_view(service))
        return _html(_views.workers_page(viewer, found, holding))

    # ── actions ─────────────────────────────────────────────────────────────────────────────

    def action(
        make: Callable[[str, Any], Any], op: str
    ) -> Callable[[Request, _auth.Viewer], Awaitable[Response]]:
        async def handler(request: Request, viewer: _auth.Viewer) -> Response:
            run_id = request.path_params["run_id"]
            await fleet.call(OPERATIONS[op], make(run_id, request.state.form), by=viewer.name)
            return RedirectResponse(f"/ui/runs/{quote(run_id)}", status_code=303)

        return handler

    def _text(form: Any, key: str) -> str:
        value = form.get(key)
        return value if isinstance(value, str) else ""

    approve = action(
        lambda run_id, form: ApproveStepArgs(
            run_id=run_id, step_id=_text(form, "step_id"), comment=_text(form, "comment") or None
        ),
        "approve_step",
    )
    resume = action(lambda run_id, form: ResumeRunArgs(run_id=run_id), "resume_run")
    cancel = action(
        lambda run_id, form: CancelRunArgs(run_id=run_id, reason="cancelled from the dashboard"),
        "cancel_run",
    )

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return Response("not found", status_code=404)
        data = resources.files(__package__).joinpath("static", name).read_bytes()
        return Response(
            data,
            media_type=_STATIC[name],
            headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    return [
        Route("/ui", lambda request: RedirectResponse("/ui/", status_code=307)),
        Route("/ui/login", login_form, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
        Route("/ui/logout", page("read", logout), methods=["POST"]),
        Route("/ui/static/{name}", static, methods=["GET"]),
        Route("/ui/", page("read", runs), methods=["GET"]),
        Route("/ui/workers", page("read", workers), methods=["GET"]),
        Route("/ui/runs/{run_id}", page("read", run), methods=["GET"]),
        Route("/ui/runs/{run_id}/graph", page("read", graph), methods=["GET"]),
        Route("/ui/runs/{run_id}/stream", page("read", stream), methods=["GET"]),
        Route("/ui/runs/{run_id}/approve", page("submit", approve), methods=["POST"]),
        Route("/ui/runs/{run_id}/resume", page("submit", resume), methods=["POST"]),
        Route("/ui/runs/{run_id}/cancel", page("submit", cancel), methods=["POST"]),
        Route("/ui/artifacts/{digest}", page("read", artifact), methods=["GET"]),
    ]
