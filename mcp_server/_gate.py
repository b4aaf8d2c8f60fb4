"""Who calls a tool: the bearer token over HTTP, or the trusted transport's ``worker_id``; and
whether that caller holds the operation's scope."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

from mcp.server.fastmcp import Context

from fleetforge.errors import ContractError, ErrorDetail, ForbiddenError
from fleetforge.fleet.access import Caller
from fleetforge.mcp_server.auth import FleetAccessToken

if TYPE_CHECKING:
    from fleetforge.operations import Operation, Scope

__all__ = ["Ctx", "Gate"]

# FastMCP finds a context parameter by its bare class, so at run time the annotation must not be
# subscripted; type checkers see the parameters.
if TYPE_CHECKING:
    from mcp.server.session import ServerSession

    Ctx: TypeAlias = Context[ServerSession, Any, Any]
else:
    Ctx = Context


def token_of(ctx: Ctx) -> FleetAccessToken | None:
    """The token of an HTTP caller; None for a trusted caller (stdio, in-memory, no-auth)."""
    request = ctx.request_context.request
    if request is None:
        return None
    user = request.scope.get("user")
    token = getattr(user, "access_token", None)
    return token if isinstance(token, FleetAccessToken) else None


class Gate:
    """The checks every tool call passes before it reaches the engine."""

    def __init__(self, auth_required: bool) -> None:
        self.auth_required = auth_required

    def check(self, ctx: Ctx, scope: Scope, what: str) -> FleetAccessToken | None:
        """The caller's token, if it holds ``scope``; ForbiddenError otherwise."""
        token = token_of(ctx)
        if token is None:
            if self.auth_required and ctx.request_context.request is not None:
                raise ForbiddenError(f"forbidden: {what} needs a token with the '{scope}' scope")
            return None
        if scope not in token.scopes and "admin" not in token.scopes:
            have = ", ".join(token.scopes) or "none"
            raise ForbiddenError(
                f"forbidden: {what} needs the '{scope}' scope; token '{token.client_id}' has "
                f"{have}",
                scope=scope,
            )
        return token

    def caller(self, ctx: Ctx, op: Operation[Any, Any], given: str | None) -> Caller:
        """Who a work call comes from: over HTTP the token (its worker when it names one),
        else the trusted transport's ``worker_id`` argument, which is then required."""
        token = self.check(ctx, op.scope, op.tool)
        if token is None:
            if not given:
                raise ContractError(
                    f"{op.tool} needs worker_id (this transport has no token to name the worker)",
                    details=[ErrorDetail("/worker_id", "is required")],
                )
            return Caller.as_worker(given)
        bound = token.worker_id
        if bound is not None and given not in (None, bound):
            if "admin" not in token.scopes:
                raise ForbiddenError(
                    f"forbidden: token '{token.client_id}' acts as worker '{bound}', not '{given}'"
                )
            bound = None  # an admin token may act as another worker, holding what it takes
        caller = Caller.token(
            token.token_id,
            token.client_id,
            token.scopes,
            worker_id=bound,
            acting_as=given,
            trust_level=token.trust_level,
            public_key=token.public_key,
        )
        if op.name in ("register_worker", "lease_task") and caller.worker_id is None:
            raise ContractError(
                f"{op.tool} needs worker_id (this token names no worker)",
                details=[ErrorDetail("/worker_id", "is required")],
            )
        return caller

    @staticmethod
    def agent(token: FleetAccessToken) -> Caller:
        """The caller of a coordination tool over HTTP: the token, its worker (the agent it
        may act as) and the projects it is limited to."""
        return Caller.token(
            token.token_id,
            token.client_id,
            token.scopes,
            worker_id=token.worker_id,
            projects=token.projects,
        )

    @staticmethod
    def by(ctx: Ctx) -> str:
        """Who a person's action is recorded as: ``token:NAME``, or ``mcp`` over stdio."""
        token = token_of(ctx)
        return f"token:{token.client_id}" if token is not None else "mcp"
