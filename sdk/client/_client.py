"""``FleetClient``: one typed API over the fleet, in process or over MCP (stdio or HTTP).

Every transport returns the same contract models and raises the same FleetForgeError subclasses
(over MCP they are rebuilt from the structured error's ``code``)::

    async with FleetClient.local("sqlite:///fleet.db") as fleet:      # in process
    async with FleetClient.stdio() as fleet:                          # spawns `fleetforge mcp`
    async with FleetClient.connect("http://127.0.0.1:8765/mcp", token="ffk_...") as fleet:
        run = await fleet.submit_run(spec)

:class:`SyncFleetClient` offers the same methods without ``await``.
"""

from __future__ import annotations

import base64
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import anyio

from fleetforge._jsondomain import check_tool_arguments
from fleetforge.client._unavailable import classify
from fleetforge.contracts import (
    Artifact,
    FleetArtifactRef,
    FleetInboxEntry,
    FleetLease,
    FleetReceipt,
    FleetRun,
    FleetRunStatus,
    FleetTaskFailureKind,
    FleetUsage,
    FleetWorkerSpec,
    Run,
    RunEvent,
    RunSpec,
    parse_event,
)
from fleetforge.contracts.envelope import AgentRunEnvelope
from fleetforge.errors import (
    ContractError,
    FleetForgeError,
    InternalError,
    UnavailableError,
    UsageError,
    error_from_dict,
)
from fleetforge.redaction import get_logger
from fleetforge.redaction import register as register_secret

__all__ = ["FleetClient", "RunList", "Transport"]

log = get_logger("fleetforge.client")

Transport = Literal["local", "stdio", "http"]


class RunList(list[FleetRun]):
    """A page of runs; ``next_cursor`` continues it (None on the last page)."""

    next_cursor: str | None = None


def _json_spec(spec: Mapping[str, Any] | RunSpec) -> dict[str, Any]:
    if isinstance(spec, RunSpec):  # python mode: a NaN stays NaN, and is refused (not null)
        return spec.model_dump(mode="python", exclude_none=True, by_alias=True)
    return dict(spec)


class FleetClient:
    """The fleet's API for agent code and tools; build one with :meth:`local`, :meth:`stdio`
    or :meth:`connect` and use it as an async context manager."""

    def __init__(self, transport: Transport, opener: Any) -> None:
        self.transport: Transport = transport
        self._opener = opener
        self._url: str | None = None  # the server (http)
        self._attempts = 1
        self._stack: AsyncExitStack | None = None
        self._service: Any = None  # FleetService (local)
        self._session: Any = None  # FleetClientSession (MCP)

    # ── constructors ────────────────────────────────────────────────────────────────────────

    @classmethod
    def local(
        cls,
        store: Any = None,
        *,
        artifacts: str | os.PathLike[str] | None = None,
        **service_options: Any,
    ) -> FleetClient:
        """In process, over a store (an open ``EventStore``, a store URL, or the default
        ``FLEETFORGE_STORE`` / ``$FLEETFORGE_HOME/fleet.db``)."""

        async def open_local(stack: AsyncExitStack) -> tuple[Any, None]:
            from fleetforge.fleet.artifacts import ArtifactStore
            from fleetforge.fleet.service import FleetService
            from fleetforge.fleet.settings import artifacts_root, store_url
            from fleetforge.fleet.store import EventStore, open_store

            opened = store
            if not isinstance(store, EventStore):
                opened = stack.enter_context(open_store(store_url(store)))
            root = Path(artifacts) if artifacts is not None else artifacts_root()
            return FleetService(opened, artifacts=ArtifactStore(root), **service_options), None

        return cls("local", open_local)

    @classmethod
    def stdio(
        cls,
        command: str | Sequence[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> FleetClient:
        """Over MCP stdio: spawn ``command`` (default: this environment's ``fleetforge mcp``)."""
        if command is None:
            argv = [str(Path(sys.executable).with_name("fleetforge")), "mcp"]
        elif isinstance(command, str):
            argv = shlex.split(command)
        else:
            argv = list(command)

        async def open_stdio(stack: AsyncExitStack) -> tuple[None, Any]:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            from fleetforge.client._session import FleetClientSession

            merged = {**os.environ, **(env or {})}
            where = Path(cwd) if cwd is not None else None
            params = StdioServerParameters(command=argv[0], args=argv[1:], env=merged, cwd=where)
            read, write = await stack.enter_async_context(stdio_client(params))
            session = await stack.enter_async_context(FleetClientSession(read, write))
            await session.initialize()
            return None, session

        return cls("stdio", open_stdio)

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        attempts: int = 3,
    ) -> FleetClient:
        """Over MCP streamable HTTP (``fleetforge serve``), with a bearer token.

        Opening it raises :class:`~fleetforge.errors.UnavailableError` when the server cannot
        be reached: at once when the connection is refused or the host is unknown
        (:class:`~fleetforge.errors.AuthError` when the token is refused); after ``attempts``
        tries, a second apart and more, when it does not answer the handshake within
        ``connect_timeout`` seconds or the connection breaks. Each retry is logged as a warning
        (logger ``fleetforge.client``)."""

        register_secret(token)

        async def open_http(stack: AsyncExitStack) -> tuple[None, Any]:
            import httpx
            from mcp.client.streamable_http import streamable_http_client

            from fleetforge.client._session import FleetClientSession

            headers = {"Authorization": f"Bearer {token}"} if token else {}
            http = await stack.enter_async_context(
                httpx.AsyncClient(headers=headers, timeout=timeout)
            )
            endpoint = url if url.rstrip("/").endswith("/mcp") else url.rstrip("/") + "/mcp"
            read, write, _ = await stack.enter_async_context(
                streamable_http_client(endpoint, http_client=http)
            )
            session = await stack.enter_async_context(FleetClientSession(read, write))
            with anyio.fail_after(connect_timeout):
                await session.initialize()
            return None, session

        client = cls("http", open_http)
        client._url = url
        client._attempts = max(attempts, 1)
        return client

    # ── lifecycle ───────────────────────────────────────────────────────────────────────────

    async def __aenter__(self) -> Self:
        attempt = 1
        while True:
            stack = AsyncExitStack()
            await stack.__aenter__()
            try:
                self._service, self._session = await self._opener(stack)
            except BaseException as raised:
                exc = raised
                try:  # leaving the transport may raise the real error (its task group's)
                    await stack.__aexit__(type(raised), raised, raised.__traceback__)
                except BaseException as left:
                    exc = left
                failure = None if self._url is None else classify(exc, self._url)
                if failure is None:
                    if exc is raised:
                        raise
                    raise exc from None
                error, transient = failure
                if not transient or attempt >= self._attempts:
                    if transient:
                        error = UnavailableError(
                            f"{error.message} (gave up after {attempt} tries)", **error.context
                        )
                    raise error from exc
                pause = float(attempt)
                log.warning("%s; trying again in %gs (%d of %d)", error.message, pause,
                            attempt + 1, self._attempts)  # fmt: skip
                await anyio.sleep(pause)
                attempt += 1
                continue
            self._stack = stack
            return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._service = self._session = None
        if stack is None:
            return
        try:
            await stack.__aexit__(exc_type, exc, tb)
        except BaseException as failed:
            # the server went away while the client was open: the transport's task group
            # ends with the connection error, and the caller gets the same error as at open
            failure = None if self._url is None or failed is exc else classify(failed, self._url)
            if failure is None or failure[0] is failed:
                raise
            raise failure[0] from failed

    @property
    def service(self) -> Any:
        """The in-process FleetService (local transport only)."""
        if self._service is None:
            raise UsageError("this client is not a local, open client")
        return self._service

    async def _tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if self._session is None:
            raise UsageError("the client is not open: use `async with FleetClient...`")
        # The JSON value domain, before the MCP session's JSON encoder silently writes a NaN or
        # an Infinity as null: the same ContractError and pointer the server would give.
        check_tool_arguments(name, arguments, lenient=("envelope",))
        try:
            result = await self._session.call_tool(name, arguments)
        except FleetForgeError:
            raise
        except Exception as exc:
            failure = None if self._url is None else classify(exc, self._url)
            if failure is None:
                raise
            raise failure[0] from exc
        body = result.structuredContent
        if result.isError:
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                raise error_from_dict(body)
            text = " ".join(getattr(c, "text", "") for c in result.content)
            raise InternalError(f"{name} failed: {text}")
        if not isinstance(body, dict):
            raise InternalError(f"{name} returned no structured content")
        return body

    @property
    def _local(self) -> bool:
        if self._service is None and self._session is None:
            raise UsageError("the client is not open: use `async with FleetClient...`")
        return self._service is not None

    # ── runs ────────────────────────────────────────────────────────────────────────────────

    async def submit_run(
        self, spec: Mapping[str, Any] | RunSpec, *, idempotency_key: str | None = None
    ) -> Run:
        """Validate and start a run (ContractError lists every problem; nothing is written).

        Records a ``run {name}`` span; its trace context goes with every task of the run."""
        from fleetforge.telemetry import current_trace_context, tracer

        name = spec.name if isinstance(spec, RunSpec) else str(spec.get("name", ""))
        with tracer.start_as_current_span(f"run {name}") as span:
            trace = current_trace_context()
            if self._local:
                run: Run = await self._service.submit_run(
                    spec, idempotency_key=idempotency_key, trace=trace
                )
            else:
                body = await self._tool(
                    "fleet_submit_run",
                    {
                        "spec": _json_spec(spec),
                        "idempotency_key": idempotency_key,
                        "trace": trace.model_dump(exclude_none=True) or None,
                    },
                )
                run = Run.model_validate(body)
            span.set_attribute("fleet.run_id", run.run_id)
            return run

    async def get_run(self, run_id: str) -> Run:
        if self._local:
            return await self._service.get_run(run_id)  # type: ignore[no-any-return]
        return Run.model_validate(await self._tool("fleet_get_run", {"run_id": run_id}))

    async def list_runs(
        self,
        *,
        status: FleetRunStatus | str | None = None,
        labels: Mapping[str, str] | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> RunList:
        """A page of runs, newest first (``.next_cursor`` continues)."""
        page = RunList()
        if self._local:
            got = await self._service.list_runs(
                status=status, labels=labels, cursor=cursor, limit=limit
            )
            page.extend(got.runs)
            page.next_cursor = got.next_cursor
            return page
        body = await self._tool(
            "fleet_list_runs",
            {
                "status": str(status) if status else None,
                "labels": dict(labels) if labels else None,
                "cursor": cursor,
                "limit": limit,
            },
        )
        page.extend(FleetRun.model_validate(r) for r in body["runs"])
        page.next_cursor = body.get("next_cursor")
        return page

    async def cancel_run(self, run_id: str, *, reason: str = "") -> Run:
        if self._local:
            return await self._service.cancel_run(run_id, reason=reason)  # type: ignore[no-any-return]
        body = await self._tool("fleet_cancel_run", {"run_id": run_id, "reason": reason})
        return Run.model_validate(body)

    async def resume_run(
        self, run_id: str, *, value: Any = None, values: Mapping[str, Any] | None = None
    ) -> Run:
        """Resume a paused run; ``value`` goes to the tasks that paused for input, ``values``
        answers them one by one (keys: task ids, or step ids)."""
        if self._local:
            return await self._service.resume_run(run_id, value=value, values=values)  # type: ignore[no-any-return]
        arguments = {"run_id": run_id, "value": value, "values": dict(values or {})}
        return Run.model_validate(await self._tool("fleet_resume_run", arguments))

    async def approve_step(self, run_id: str, step_id: str, *, comment: str | None = None) -> Run:
        if self._local:
            return await self._service.approve_step(run_id, step_id, comment=comment)  # type: ignore[no-any-return]
        body = await self._tool(
            "fleet_approve_step", {"run_id": run_id, "step_id": step_id, "comment": comment}
        )
        return Run.model_validate(body)

    async def run_events(self, run_id: str, *, after: int = 0, limit: int = 100) -> list[RunEvent]:
        """A run's events after the cursor ``after`` (a ``seq``)."""
        if self._local:
            await self._service.get_run(run_id)
            return await self._service.run_events(run_id, after=after, limit=limit)  # type: ignore[no-any-return]
        body = await self._tool(
            "fleet_run_events", {"run_id": run_id, "cursor": str(after), "limit": limit}
        )
        return [parse_event(e) for e in body["events"]]

    # ── work ────────────────────────────────────────────────────────────────────────────────

    async def register_worker(
        self, spec: FleetWorkerSpec | Mapping[str, Any], *, id_from_token: bool = False
    ) -> FleetWorkerSpec:
        """Register (or re-register) a worker; returns it as the fleet recorded it.

        ``id_from_token``: over HTTP, a token bound to a worker registers as that worker,
        whatever ``spec.worker_id`` says (a token that names no worker uses it)."""
        worker = spec if isinstance(spec, FleetWorkerSpec) else FleetWorkerSpec.model_validate(spec)
        if self._local:
            return await self._service.register_worker(worker)  # type: ignore[no-any-return]
        arguments = {
            "worker_id": None if id_from_token and self.transport == "http" else worker.worker_id,
            "role": worker.role,
            "tools": list(worker.tools),
            "trust_level": str(worker.trust_level),
            "labels": dict(worker.labels),
            "name": worker.name,
        }
        try:
            body = await self._tool("fleet_register_worker", arguments)
        except ContractError as exc:
            if arguments["worker_id"] is not None or not _asks_for_worker_id(exc):
                raise
            # the token names no worker: register under the id given
            body = await self._tool(
                "fleet_register_worker", {**arguments, "worker_id": worker.worker_id}
            )
        return FleetWorkerSpec.model_validate(body)

    async def lease_task(
        self,
        worker_id: str,
        *,
        lease_seconds: float = 30.0,
        wait_seconds: float = 0.0,
        max_tasks: int = 1,
    ) -> list[FleetInboxEntry]:
        if self._local:
            return await self._service.lease_task(  # type: ignore[no-any-return]
                worker_id,
                lease_seconds=lease_seconds,
                wait_seconds=wait_seconds,
                max_tasks=max_tasks,
                caller=_as(worker_id),
            )
        body = await self._tool(
            "fleet_lease_task",
            {
                "worker_id": worker_id,
                "lease_seconds": lease_seconds,
                "wait_seconds": wait_seconds,
                "max_tasks": max_tasks,
            },
        )
        return [FleetInboxEntry.model_validate(t) for t in body["tasks"]]

    async def heartbeat(
        self,
        task_id: str,
        fencing_token: int,
        *,
        lease_seconds: float = 30.0,
        worker_id: str | None = None,
    ) -> FleetLease:
        """Extend a lease. ``worker_id``: the worker holding it (every task call names it
        unless the client's token names the worker; only the holder may act on a lease)."""
        if self._local:
            return await self._service.heartbeat(  # type: ignore[no-any-return]
                task_id, fencing_token, lease_seconds=lease_seconds, caller=_as(worker_id)
            )
        body = await self._tool(
            "fleet_heartbeat",
            {
                "task_id": task_id,
                "fencing_token": fencing_token,
                "lease_seconds": lease_seconds,
                "worker_id": worker_id,
            },
        )
        return FleetLease.model_validate(body)

    async def release_task(
        self, task_id: str, fencing_token: int, *, reason: str = "", worker_id: str | None = None
    ) -> None:
        """Give a leased task back unfinished (the same attempt is requeued)."""
        if self._local:
            await self._service.release_task(
                task_id, fencing_token, reason=reason, caller=_as(worker_id)
            )
            return
        await self._tool(
            "fleet_release_task",
            {
                "task_id": task_id,
                "fencing_token": fencing_token,
                "reason": reason,
                "worker_id": worker_id,
            },
        )

    async def pause_task(
        self,
        task_id: str,
        fencing_token: int,
        *,
        reason: str = "",
        waiting_for: Sequence[Any] = (),
        worker_id: str | None = None,
    ) -> Run:
        """Stop a leased task to wait for input: the run pauses until ``resume_run(value=...)``,
        and the task's next lease carries the value (``entry.resume``)."""
        if self._local:
            return await self._service.pause_task(  # type: ignore[no-any-return]
                task_id,
                fencing_token,
                reason=reason,
                waiting_for=list(waiting_for),
                caller=_as(worker_id),
            )
        body = await self._tool(
            "fleet_pause_task",
            {
                "task_id": task_id,
                "fencing_token": fencing_token,
                "reason": reason,
                "waiting_for": list(waiting_for),
                "worker_id": worker_id,
            },
        )
        return Run.model_validate(body)

    async def post_event(
        self,
        task_id: str,
        fencing_token: int,
        envelope: AgentRunEnvelope | Mapping[str, Any],
        *,
        worker_id: str | None = None,
    ) -> int:
        """Record an agent-run envelope for a leased task; returns the event's ``seq``."""
        if self._local:
            event = await self._service.post_event(
                task_id, fencing_token, envelope, caller=_as(worker_id)
            )
            return int(event.seq or 0)
        body = (
            envelope.model_dump(mode="python", exclude_none=True)
            if isinstance(envelope, AgentRunEnvelope)
            else dict(envelope)
        )
        posted = await self._tool(
            "fleet_post_event",
            {
                "task_id": task_id,
                "fencing_token": fencing_token,
                "envelope": body,
                "worker_id": worker_id,
            },
        )
        return int(posted["seq"])

    async def complete_task(
        self,
        task_id: str,
        fencing_token: int,
        output: Any,
        *,
        usage: FleetUsage | Mapping[str, Any] | None = None,
        artifacts: Sequence[FleetArtifactRef | Mapping[str, Any]] = (),
        receipt_id: str | None = None,
        worker_id: str | None = None,
    ) -> FleetReceipt:
        """Post the output of a leased task; returns the scored receipt."""
        if self._local:
            return await self._service.complete_task(  # type: ignore[no-any-return]
                task_id,
                fencing_token,
                output,
                usage=usage,
                artifacts=artifacts,
                receipt_id=receipt_id,
                caller=_as(worker_id),
            )
        used = usage.model_dump(mode="json") if isinstance(usage, FleetUsage) else usage
        refs = [
            a.model_dump(mode="json") if isinstance(a, FleetArtifactRef) else dict(a)
            for a in artifacts
        ]
        body = await self._tool(
            "fleet_post_receipt",
            {
                "task_id": task_id,
                "fencing_token": fencing_token,
                "output": output,
                "usage": used,
                "artifacts": refs,
                "receipt_id": receipt_id,
                "worker_id": worker_id,
            },
        )
        return FleetReceipt.model_validate(body)

    async def fail_task(
        self,
        task_id: str,
        fencing_token: int,
        kind: FleetTaskFailureKind | str,
        message: str,
        *,
        worker_id: str | None = None,
    ) -> bool:
        """Report a failed attempt; True when another attempt will follow."""
        if self._local:
            return await self._service.fail_task(  # type: ignore[no-any-return]
                task_id, fencing_token, kind, message, caller=_as(worker_id)
            )
        body = await self._tool(
            "fleet_fail_task",
            {
                "task_id": task_id,
                "fencing_token": fencing_token,
                "kind": str(FleetTaskFailureKind(kind)),
                "message": message,
                "worker_id": worker_id,
            },
        )
        return bool(body["will_retry"])

    # ── artifacts ───────────────────────────────────────────────────────────────────────────

    async def put_artifact(
        self, content: bytes, *, worker_id: str | None = None, **metadata: Any
    ) -> Artifact:
        """Store bytes (``media_type``, ``name``, ``kind``, ``run_id``, ``step_id``,
        ``task_id``); returns the artifact with its digest. An artifact of a task needs the
        worker holding its lease (``worker_id``)."""
        if self._local:
            return await self._service.put_artifact(  # type: ignore[no-any-return]
                content, caller=_as(worker_id), **metadata
            )
        args = {"content": base64.b64encode(content).decode(), "worker_id": worker_id, **metadata}
        if "kind" in args:
            args["kind"] = str(args["kind"])
        return Artifact.model_validate(await self._tool("fleet_put_artifact", args))

    async def get_artifact(self, digest: str) -> tuple[Artifact, bytes]:
        if self._local:
            return await self._service.get_artifact(digest)  # type: ignore[no-any-return]
        body = await self._tool("fleet_get_artifact", {"digest": digest})
        return Artifact.model_validate(body["artifact"]), base64.b64decode(body["content"])


def _asks_for_worker_id(exc: ContractError) -> bool:
    return any(d.pointer == "/worker_id" for d in exc.details)


def _as(worker_id: str | None) -> Any:
    """The in-process caller a task call names (None: trusted, unchecked)."""
    if worker_id is None:
        return None
    from fleetforge.fleet.access import Caller

    return Caller.as_worker(worker_id)
