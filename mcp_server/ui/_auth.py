"""Who is looking at the dashboard: a session cookie, its scopes and its CSRF token.

Two ways in, both ending in one cookie (HttpOnly, SameSite=Strict, Secure over https):

- a **bearer token** of the store (``fleetforge token create``), typed into the login form: the
  cookie holds the token itself and every request checks it against the store's tokens (the
  same cache the MCP endpoint uses), so a revoked token logs out within about a second;
- a **one-time login token** (``fleetforge ui``, ``serve --no-auth``): printed in a URL, good for
  one login; the cookie then holds a random session id known only to this process, with every
  scope (the person at the terminal owns the store).

The CSRF token of a session is derived from its cookie (SHA-256 of a label and the cookie), so
each process can check it without shared state, and knowing it reveals nothing of the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from fleetforge.contracts.events import TokenScope
from fleetforge.mcp_server.auth import FleetTokenVerifier

__all__ = ["COOKIE", "Sessions", "Viewer"]

COOKIE = "fleetforge_ui"
_SESSION_PREFIX = "ffs_"


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: a name (recorded as ``by``) and scopes."""

    name: str
    scopes: frozenset[str]
    csrf: str

    def allows(self, scope: TokenScope) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def csrf_of(cookie: str) -> str:
    return hashlib.sha256(b"fleetforge-ui-csrf\0" + cookie.encode()).hexdigest()[:40]


@dataclass
class Sessions:
    """The dashboard's sessions: store tokens (when ``verifier`` is set) and one-time logins."""

    verifier: FleetTokenVerifier | None
    launch_token: str | None = None
    _local: dict[str, str] = field(default_factory=dict)  # session id -> name

    async def viewer(self, request: Request) -> Viewer | None:
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        return await self.check(cookie)

    async def check(self, secret: str) -> Viewer | None:
        """The viewer a cookie (or a token typed into the form) stands for, or None."""
        if secret.startswith(_SESSION_PREFIX):
            name = self._local.get(secret)
            if name is None:
                return None
            return Viewer(name, frozenset({"admin"}), csrf_of(secret))
        if self.verifier is None or not secret.isascii() or len(secret) > 200:
            return None
        token = await self.verifier.verify_token(secret)
        if token is None:
            return None
        return Viewer(f"token:{token.client_id}", frozenset(token.scopes), csrf_of(secret))

    def redeem(self, once: str) -> str | None:
        """Exchange the one-time login token for a session id; it works once."""
        expected = self.launch_token
        if expected is None or not hmac.compare_digest(once.encode(), expected.encode()):
            return None
        self.launch_token = None
        session = _SESSION_PREFIX + secrets.token_urlsafe(32)
        self._local[session] = "ui:local"
        return session

    def forget(self, cookie: str | None) -> None:
        if cookie:
            self._local.pop(cookie, None)


def set_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ui",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")


def csrf_ok(viewer: Viewer, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(viewer.csrf.encode(), (sent or "").encode())
