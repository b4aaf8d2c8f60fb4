"""``FleetClient``: one typed API over the fleet, in process or over MCP (stdio or HTTP).

Every method is one operation of :mod:`fleetforge.operations`, carried by the client's
transport (:mod:`._transports`); every transport returns the same models and raises the same
FleetForgeError subclasses::

    async with FleetClient.local("sqlite:///fleet.db") as fleet:      # in process
    async with FleetClient.stdio() as fleet:                          # spawns `fleetforge mcp`
    async with FleetClient.connect("http://127.0.0.1:8765/mcp", token="ffk_...") as fleet:
        run = await fleet.submit_run(spec)

:class:`SyncFleetClient` offers the same methods without ``await``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ValidationError

from fleetforge._jsondomain import check_model
from fleetforge.client._coord import CoordinationMethods
from fleetforge.client._transports import LocalTransport, McpTransport, Transport
from fleetforge.contracts import (
    Artifact,
    FleetArtifactRef,
    FleetInboxEntry,
    FleetLease,
    FleetReceipt,
    FleetRunBudget,
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
from fleetforge.errors import ContractError, UsageError
from fleetforge.operations import Args, Operation, batches, work
from fleetforge.operations import alerts as alert_ops
from fleetforge.operations import artifacts as art
from fleetforge.operations import runs as ops
from fleetforge.operations import trust as trust_ops
from fleetforge.operations.alert_results import AlertList, RetriedAlerts
from fleetforge.operations.batches import LeaseItem, TaskCompletion, TaskEnvelope
from fleetforge.operations.results import (
    CompletedTasks,
    DeadLetterList,
    EventPage,
    HeartbeatResults,
    PostedEvents,
    RetriedSteps,
    RunList,
    StepRef,
    WorkerList,
)
from fleetforge.operations.trust import CapabilityRevoked

__all__ = ["FleetClient"]

A = TypeVar("A", bound=Args)
R = TypeVar("R", bound=BaseModel)


class FleetClient(CoordinationMethods):
    """The fleet's API for agent code and tools; build one with :meth:`local`, :meth:`stdio`
    or :meth:`connect` (or hand it a transport) and use it as an async context manager.
    Coordination of agents (issue 22) comes from :class:`CoordinationMethods`."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._stack: AsyncExitStack | None = None

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
        return cls(LocalTransport(store, artifacts=artifacts, **service_options))

    @classmethod
    def stdio(
        cls,
        command: str | Sequence[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> FleetClient:
        """Over MCP stdio: spawn ``command`` (default: this environment's ``fleetforge mcp``)."""
        return cls(McpTransport.stdio(command, env=env, cwd=cwd))

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
        """Over MCP streamable HTTP (``fleetforge serve``), with a bearer token; a server that
        cannot be reached is an :class:`~fleetforge.errors.UnavailableError` (see
        :meth:`McpTransport.http`)."""
        transport = McpTransport.http(
            url, token=token, timeout=timeout, connect_timeout=connect_timeout, attempts=attempts
        )
        return cls(transport)

    # ── lifecycle ───────────────────────────────────────────────────────────────────────────

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            await self.transport.open(stack)
        except BaseException as exc:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)

    async def _call(self, op: Operation[A, R], /, **fields: Any) -> R:
        """Validate ``fields`` as ``op``'s arguments (ContractError with pointers) and run it."""
        if self._stack is None:
            raise UsageError("the client is not open: use `async with FleetClient...`")
        try:
            args = op.args.model_validate(fields)
        except ValidationError as exc:
            from fleetforge.validation import pydantic_details

            raise ContractError(
                f"invalid arguments for {op.name}", details=pydantic_details(exc)
            ) from None
        return await self.transport.call(op, args)

    # ── runs ────────────────────────────────────────────────────────────────────────────────

    async def submit_run(
        self, spec: Mapping[str, Any] | RunSpec, *, idempotency_key: str | None = None
    ) -> Run:
        """Validate and start a run (ContractError lists every problem; nothing is written).

        Records a ``run {name}`` span; its trace context goes with every task of the run."""
        from fleetforge.telemetry import current_trace_context, tracer

        body = (
            spec.model_dump(mode="python", exclude_none=True, by_alias=True)  # NaN stays NaN
            if isinstance(spec, RunSpec)
            else dict(spec)
        )
        with tracer.start_as_current_span(f"run {body.get('name', '')}") as span:
            trace = current_trace_context()
            run = await self._call(
                ops.SUBMIT_RUN,
                spec=body,
                idempotency_key=idempotency_key,
                trace=trace if trace.traceparent else None,
            )
            span.set_attribute("fleet.run_id", run.run_id)
            return run

    async def get_run(self, run_id: str) -> Run:
        """A run with every step's state, its outputs and its usage."""
        return await self._call(ops.GET_RUN, run_id=run_id)

    async def list_runs(
        self,
        *,
        status: FleetRunStatus | str | None = None,
        labels: Mapping[str, str] | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> RunList:
        """A page of runs, newest first (``.next_cursor`` continues)."""
        return await self._call(
            ops.LIST_RUNS, status=status, labels=labels, cursor=cursor, limit=limit
        )

    async def cancel_run(self, run_id: str, *, reason: str = "") -> Run:
        """Cancel a run; workers holding its tasks are told on their next call."""
        return await self._call(ops.CANCEL_RUN, run_id=run_id, reason=reason)

    async def resume_run(
        self,
        run_id: str,
        *,
        value: Any = None,
        values: Mapping[str, Any] | None = None,
        budget: FleetRunBudget | Mapping[str, Any] | None = None,
    ) -> Run:
        """Resume a paused run; ``value`` goes to the tasks that paused for input, ``values``
        answers them one by one (keys: task ids, or step ids); ``budget`` replaces the run's
        budget (a run paused over its budget needs a raised one)."""
        given = budget.model_dump(mode="json") if isinstance(budget, FleetRunBudget) else budget
        return await self._call(
            ops.RESUME_RUN, run_id=run_id, value=value, values=values, budget=given
        )

    async def approve_step(self, run_id: str, step_id: str, *, comment: str | None = None) -> Run:
        """Approve a waiting human step."""
        return await self._call(ops.APPROVE_STEP, run_id=run_id, step_id=step_id, comment=comment)

    async def retry_step(self, run_id: str, step_id: str) -> Run:
        """Run a failed or skipped step again, and what depends on it."""
        return await self._call(ops.RETRY_STEP, run_id=run_id, step_id=step_id)

    async def retry_steps(self, steps: Sequence[StepRef | Mapping[str, Any]]) -> RetriedSteps:
        """Retry a list of failed steps across runs (``{run_id, step_id}`` each, e.g. dead
        letters), each in its own transaction; ``.failures`` says which could not be."""
        items = [s.model_dump() if isinstance(s, StepRef) else dict(s) for s in steps]
        return await self._call(ops.RETRY_STEPS, steps=items)

    async def dead_letters(
        self, *, run_id: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> DeadLetterList:
        """A page of the steps that failed for good, newest run first (``.next_cursor``
        continues): each with its last error, attempts and inputs."""
        return await self._call(ops.DEAD_LETTERS, run_id=run_id, cursor=cursor, limit=limit)

    async def list_alerts(self, *, status: str | None = None, limit: int = 50) -> AlertList:
        """The alert outbox, newest first (``status``: pending, delivered or dead)."""
        return await self._call(alert_ops.LIST_ALERTS, status=status, limit=limit)

    async def retry_alerts(self, alert_ids: Sequence[str]) -> RetriedAlerts:
        """Send alerts again at the dispatcher's next pass (admin scope); all or nothing."""
        return await self._call(alert_ops.RETRY_ALERTS, alert_ids=list(alert_ids))

    async def run_events(
        self,
        run_id: str | None = None,
        *,
        after: int = 0,
        limit: int = 100,
        types: Sequence[str] | None = None,
        wait_seconds: float = 0.0,
    ) -> list[RunEvent]:
        """Events after the cursor ``after`` (a ``seq``) of one run, or of every run; with
        ``wait_seconds``, wait that long for the next one when there is none yet."""
        page = await self._call(
            ops.RUN_EVENTS,
            run_id=run_id,
            cursor=str(after),
            limit=limit,
            types=list(types) if types else None,
            wait_seconds=wait_seconds,
        )
        return [parse_event(record.model_dump(mode="json")) for record in page.events]

    async def events_page(
        self,
        run_id: str | None = None,
        *,
        cursor: str | None = None,
        limit: int = 100,
        types: Sequence[str] | None = None,
        wait_seconds: float = 0.0,
    ) -> EventPage:
        """A page of events as stored (each ``data`` a plain dict, whatever it holds), with the
        cursors to continue (``next_cursor``) or to follow (``last_cursor``)."""
        return await self._call(
            ops.RUN_EVENTS,
            run_id=run_id,
            cursor=cursor,
            limit=limit,
            types=list(types) if types else None,
            wait_seconds=wait_seconds,
        )

    # ── work ────────────────────────────────────────────────────────────────────────────────

    async def register_worker(
        self, spec: FleetWorkerSpec | Mapping[str, Any], *, id_from_token: bool = False
    ) -> FleetWorkerSpec:
        """Register (or re-register) a worker; returns it as the fleet recorded it.

        ``id_from_token``: over HTTP, a token bound to a worker registers as that worker,
        whatever ``spec.worker_id`` says (a token that names no worker uses it)."""
        worker = spec if isinstance(spec, FleetWorkerSpec) else FleetWorkerSpec.model_validate(spec)
        fields = worker.model_dump(mode="json", include=set(work.RegisterWorkerArgs.model_fields))
        if not (id_from_token and self.transport.kind == "http"):
            return await self._call(work.REGISTER_WORKER, **fields)
        try:
            return await self._call(work.REGISTER_WORKER, **fields | {"worker_id": None})
        except ContractError as exc:
            if not any(d.pointer == "/worker_id" for d in exc.details):
                raise
            return await self._call(work.REGISTER_WORKER, **fields)  # the token names no worker

    async def list_workers(self) -> WorkerList:
        """Every registered worker with its status and when it was last seen."""
        return await self._call(work.LIST_WORKERS)

    async def lease_task(
        self,
        worker_id: str,
        *,
        lease_seconds: float = 30.0,
        wait_seconds: float = 0.0,
        max_tasks: int = 1,
    ) -> list[FleetInboxEntry]:
        """Lease up to ``max_tasks`` tasks, waiting up to ``wait_seconds`` for one."""
        leased = await self._call(
            work.LEASE_TASK,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            wait_seconds=wait_seconds,
            max_tasks=max_tasks,
        )
        return leased.tasks

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
        return await self._call(
            work.HEARTBEAT,
            task_id=task_id,
            fencing_token=fencing_token,
            lease_seconds=lease_seconds,
            worker_id=worker_id,
        )

    async def release_task(
        self, task_id: str, fencing_token: int, *, reason: str = "", worker_id: str | None = None
    ) -> None:
        """Give a leased task back unfinished (the same attempt is requeued)."""
        await self._call(
            work.RELEASE_TASK,
            task_id=task_id,
            fencing_token=fencing_token,
            reason=reason,
            worker_id=worker_id,
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
        return await self._call(
            work.PAUSE_TASK,
            task_id=task_id,
            fencing_token=fencing_token,
            reason=reason,
            waiting_for=list(waiting_for),
            worker_id=worker_id,
        )

    async def post_event(
        self,
        task_id: str,
        fencing_token: int,
        envelope: AgentRunEnvelope | Mapping[str, Any],
        *,
        worker_id: str | None = None,
    ) -> int:
        """Record an agent-run envelope for a leased task; returns the event's ``seq``."""
        if isinstance(envelope, AgentRunEnvelope):
            # the JSON value domain on the model's values first: its JSON dump writes NaN as null
            body = check_model(envelope, what="envelope").model_dump(mode="json", exclude_none=True)
        else:
            body = dict(envelope)
        posted = await self._call(
            work.POST_EVENT,
            task_id=task_id,
            fencing_token=fencing_token,
            envelope=body,
            worker_id=worker_id,
        )
        return posted.seq

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
        return await self._call(
            work.COMPLETE_TASK,
            task_id=task_id,
            fencing_token=fencing_token,
            output=output,
            usage=usage,
            artifacts=list(artifacts),
            receipt_id=receipt_id,
            worker_id=worker_id,
        )

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
        failed = await self._call(
            work.FAIL_TASK,
            task_id=task_id,
            fencing_token=fencing_token,
            kind=kind,
            message=message,
            worker_id=worker_id,
        )
        return failed.will_retry

    # ── batches ─────────────────────────────────────────────────────────────────────────────

    async def complete_tasks(
        self,
        items: Sequence[TaskCompletion | Mapping[str, Any]],
        *,
        lease_next: int = 0,
        lease_seconds: float = 30.0,
        worker_id: str | None = None,
    ) -> CompletedTasks:
        """Post several receipts (each with its last envelopes) and lease up to ``lease_next``
        new tasks, in one transaction; failed items are in ``failures``."""
        return await self._call(
            batches.COMPLETE_TASKS,
            items=[_item(i) for i in items],
            lease_next=lease_next,
            lease_seconds=lease_seconds,
            worker_id=worker_id,
        )

    async def heartbeat_many(
        self,
        items: Sequence[LeaseItem | Mapping[str, Any]],
        *,
        lease_seconds: float = 30.0,
        worker_id: str | None = None,
    ) -> HeartbeatResults:
        """Keep several leases; a lost one is null in ``leases`` and listed in ``failures``."""
        return await self._call(
            batches.HEARTBEAT_MANY,
            items=[_item(i) for i in items],
            lease_seconds=lease_seconds,
            worker_id=worker_id,
        )

    async def post_events(
        self,
        items: Sequence[TaskEnvelope | Mapping[str, Any]],
        *,
        worker_id: str | None = None,
    ) -> PostedEvents:
        """Record several envelopes of leased tasks, in order, in one transaction."""
        return await self._call(
            batches.POST_EVENTS, items=[_item(i) for i in items], worker_id=worker_id
        )

    # ── artifacts ───────────────────────────────────────────────────────────────────────────

    async def put_artifact(
        self, content: bytes, *, worker_id: str | None = None, **metadata: Any
    ) -> Artifact:
        """Store bytes (``media_type``, ``name``, ``kind``, ``run_id``, ``step_id``,
        ``task_id``); returns the artifact with its digest. An artifact of a task needs the
        worker holding its lease (``worker_id``)."""
        encoded = base64.b64encode(content).decode()
        return await self._call(art.PUT_ARTIFACT, content=encoded, worker_id=worker_id, **metadata)

    async def get_artifact(self, digest: str) -> tuple[Artifact, bytes]:
        """An artifact's metadata and its bytes (verified against the digest)."""
        found = await self._call(art.GET_ARTIFACT, digest=digest)
        return found.artifact, base64.b64decode(found.content)

    # ── trust ───────────────────────────────────────────────────────────────────────────────

    async def revoke_capability(self, capability_id: str, *, reason: str = "") -> CapabilityRevoked:
        """Revoke a task's capability token id (admin scope over HTTP): its holder learns it
        with its next heartbeat, and tools called after that are refused."""
        return await self._call(
            trust_ops.REVOKE_CAPABILITY, capability_id=capability_id, reason=reason
        )


def _item(item: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """A batch item as its operation's arguments take it (envelope models dumped as JSON)."""
    if isinstance(item, BaseModel):
        return item.model_dump(mode="json", exclude_none=True)
    fields = dict(item)
    for key in ("envelope",):
        if isinstance(fields.get(key), BaseModel):
            fields[key] = _envelope_json(fields[key])
    if "envelopes" in fields:
        fields["envelopes"] = [
            _envelope_json(e) if isinstance(e, BaseModel) else e for e in fields["envelopes"]
        ]
    return fields


def _envelope_json(envelope: BaseModel) -> dict[str, Any]:
    # the JSON value domain on the model's values first: its JSON dump writes NaN as null
    return check_model(envelope, what="envelope").model_dump(mode="json", exclude_none=True)
