"""How a :class:`~fleetforge.client.FleetClient` reaches the fleet (the httpx pattern: the client
has one body per method, the transport carries the call).

- :class:`LocalTransport` runs operations on an engine in this process;
- :class:`McpTransport` sends them as MCP tool calls over a client session (stdio or HTTP).

Both take an :class:`~fleetforge.operations.Operation` and its arguments and return its result
model, and raise the same FleetForgeError classes (over MCP they are rebuilt from the structured
error's ``code``).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
from pydantic import BaseModel, ValidationError

from fleetforge._jsondomain import check_tool_arguments
from fleetforge.client._unavailable import Failure, classify
from fleetforge.errors import (
    FleetForgeError,
    InternalError,
    UnavailableError,
    UsageError,
    error_from_dict,
)
from fleetforge.operations import Args, Operation
from fleetforge.redaction import get_logger, mask_url
from fleetforge.redaction import register as register_secret

if TYPE_CHECKING:
    from fleetforge.fleet.service import FleetService

__all__ = ["LocalTransport", "McpTransport", "Transport"]

log = get_logger("fleetforge.client")

A = TypeVar("A", bound=Args)
R = TypeVar("R", bound=BaseModel)
Opener = Callable[[AsyncExitStack], Awaitable[Any]]


class Transport(Protocol):
    """Carries operations to a fleet."""

    kind: str
    """``local``, ``stdio`` or ``http``."""

    async def open(self, stack: AsyncExitStack) -> None:
        """Connect; whatever must be closed goes on ``stack``."""
        ...

    async def call(self, op: Operation[A, R], args: A) -> R:
        """Run ``op`` and return its result model."""
        ...


class LocalTransport:
    """An engine in this process, over a store (an open ``EventStore``, a store URL, or the
    default ``FLEETFORGE_STORE`` / ``$FLEETFORGE_HOME/fleet.db``)."""

    kind = "local"

    def __init__(
        self,
        store: Any = None,
        *,
        artifacts: str | os.PathLike[str] | None = None,
        by: str | None = None,
        **service_options: Any,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.by = by
        self.service_options = service_options
        self.fleet: FleetService | None = None

    async def open(self, stack: AsyncExitStack) -> None:
        from fleetforge.fleet.artifacts import ArtifactStore
        from fleetforge.fleet.service import FleetService
        from fleetforge.fleet.settings import artifacts_root, store_url
        from fleetforge.fleet.store import EventStore, open_store

        opened = self.store
        if not isinstance(opened, EventStore):
            opened = stack.enter_context(open_store(store_url(opened)))
        root = Path(self.artifacts) if self.artifacts is not None else artifacts_root()
        self.fleet = FleetService(opened, artifacts=ArtifactStore(root), **self.service_options)
        stack.callback(setattr, self, "fleet", None)

    async def call(self, op: Operation[A, R], args: A) -> R:
        if self.fleet is None:
            raise UsageError("the client is not open: use `async with FleetClient...`")
        caller = None
        worker_id = getattr(args, "worker_id", None)
        if op.as_worker and worker_id is not None:
            from fleetforge.fleet.access import Caller

            caller = Caller.as_worker(worker_id)
        store = self.fleet.sync.artifacts  # in process, the artifact store's own limit applies
        limit = store.max_bytes if store is not None else 8 * 1024 * 1024
        return await self.fleet.call(op, args, caller=caller, by=self.by, max_artifact_bytes=limit)


class McpTransport:
    """Operations as MCP tool calls, over a session an opener makes (see :meth:`stdio` and
    :meth:`http`)."""

    def __init__(
        self, kind: str, opener: Opener, *, where: str, url: str | None = None, attempts: int = 1
    ) -> None:
        self.kind = kind
        self.where = where
        self.url = url  # a server's (http): its connection failures are classified
        self.attempts = max(attempts, 1)
        self._opener = opener
        self.session: Any = None

    @classmethod
    def stdio(
        cls,
        command: str | Sequence[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> McpTransport:
        """Spawn ``command`` (default: this environment's ``fleetforge mcp``) and talk over its
        stdin and stdout."""
        if command is None:
            argv = [str(Path(sys.executable).with_name("fleetforge")), "mcp"]
        elif isinstance(command, str):
            argv = shlex.split(command)
        else:
            argv = list(command)

        async def open_stdio(stack: AsyncExitStack) -> Any:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            from fleetforge.client._session import FleetClientSession

            merged = {**os.environ, **(env or {})}
            where = Path(cwd) if cwd is not None else None
            params = StdioServerParameters(command=argv[0], args=argv[1:], env=merged, cwd=where)
            read, write = await stack.enter_async_context(stdio_client(params))
            session = await stack.enter_async_context(FleetClientSession(read, write))
            await session.initialize()
            return session

        return cls("stdio", open_stdio, where=shlex.join(argv))

    @classmethod
    def http(
        cls,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        attempts: int = 3,
    ) -> McpTransport:
        """Streamable HTTP to ``fleetforge serve`` at ``url``, with a bearer token.

        Opening it raises :class:`~fleetforge.errors.UnavailableError` when the server cannot
        be reached: at once when the connection is refused or the host is unknown
        (:class:`~fleetforge.errors.AuthError` when the token is refused); after ``attempts``
        tries, a second apart and more, when it does not answer the handshake within
        ``connect_timeout`` seconds or the connection breaks. Each retry is logged as a warning
        (logger ``fleetforge.client``)."""
        register_secret(token)
        endpoint = url if url.rstrip("/").endswith("/mcp") else url.rstrip("/") + "/mcp"

        async def open_http(stack: AsyncExitStack) -> Any:
            import httpx
            from mcp.client.streamable_http import streamable_http_client

            from fleetforge.client._session import FleetClientSession

            headers = {"Authorization": f"Bearer {token}"} if token else {}
            http = await stack.enter_async_context(
                httpx.AsyncClient(headers=headers, timeout=timeout)
            )
            read, write, _ = await stack.enter_async_context(
                streamable_http_client(endpoint, http_client=http)
            )
            session = await stack.enter_async_context(FleetClientSession(read, write))
            with anyio.fail_after(connect_timeout):
                await session.initialize()
            return session

        return cls("http", open_http, where=mask_url(endpoint), url=url, attempts=attempts)

    async def open(self, stack: AsyncExitStack) -> None:
        attempt = 1
        while True:
            own = AsyncExitStack()
            await own.__aenter__()
            try:
                self.session = await self._opener(own)
            except BaseException as raised:
                exc = raised
                try:  # leaving the transport may raise the real error (its task group's)
                    await own.__aexit__(type(raised), raised, raised.__traceback__)
                except BaseException as left:
                    exc = left
                failure = self.failure(exc)
                if failure is None:
                    if exc is raised:
                        raise
                    raise exc from None
                error, transient = failure
                if not transient or attempt >= self.attempts:
                    if transient:
                        error = UnavailableError(
                            f"{error.message} (gave up after {attempt} tries)", **error.context
                        )
                    raise error from exc
                pause = float(attempt)
                log.warning("%s; trying again in %gs (%d of %d)", error.message, pause,
                            attempt + 1, self.attempts)  # fmt: skip
                await anyio.sleep(pause)
                attempt += 1
                continue
            stack.push_async_exit(self._leave(own))
            return

    def _leave(self, own: AsyncExitStack) -> Callable[..., Awaitable[bool | None]]:
        async def leave(*exc_info: Any) -> bool | None:
            self.session = None
            try:
                return await own.__aexit__(*exc_info)
            except BaseException as failed:
                # the server went away while the client was open: the transport's task group
                # ends with the connection error; the caller gets the same error as at open
                failure = None if failed is exc_info[1] else self.failure(failed)
                if failure is None or failure[0] is failed:
                    raise
                raise failure[0] from failed

        return leave

    def failure(self, exc: BaseException) -> Failure | None:
        """What a connection failure means (None: not one, or no server URL to say so)."""
        return None if self.url is None else classify(exc, self.url)

    async def call(self, op: Operation[A, R], args: A) -> R:
        if self.session is None:
            raise UsageError("the client is not open: use `async with FleetClient...`")
        arguments = args.model_dump(mode="json", exclude_unset=True, by_alias=True)
        # The JSON value domain, on the values as given: the JSON dump above, like the MCP
        # session's encoder, writes a NaN or an Infinity as null. The same ContractError and
        # pointer the server would give.
        given = args.model_dump(mode="python", exclude_unset=True, by_alias=True)
        check_tool_arguments(op.tool, given, lenient=("envelope",))
        try:
            result = await self.session.call_tool(op.tool, arguments)
        except FleetForgeError:
            raise
        except Exception as exc:
            failure = self.failure(exc)
            if failure is None:
                raise
            raise failure[0] from exc
        body = result.structuredContent
        if result.isError:
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                raise error_from_dict(body)
            text = " ".join(getattr(c, "text", "") for c in result.content)
            raise InternalError(f"{op.tool} failed: {text}")
        if not isinstance(body, dict):
            raise InternalError(f"{op.tool} returned no structured content")
        try:
            return op.result.model_validate(body)
        except ValidationError as exc:
            raise InternalError(f"{op.tool} returned a result that is not a {op.result.__name__}: "
                                f"{exc.errors()[0]['msg']}") from None  # fmt: skip
