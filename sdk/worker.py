"""``Worker``: lease tasks, run a handler for each, heartbeat, post receipts.

::

    async def handler(task: TaskRun) -> dict:
        task.adapter.emit("message", {"role": "assistant", "content": "working"})
        return {"answer": 42}            # the receipt's output

    async with FleetClient.local() as client:
        await Worker(client, handler, capabilities={"role": "writer"}, concurrency=4).run()

For each leased task the Worker builds an :class:`~fleetforge.adapter.AgentRunAdapter` (its
envelopes are posted to the fleet as ``task_event``), calls ``start``, runs the handler, and
finishes with ``complete`` + a receipt, or ``error`` + ``fail_task`` with the failure kind of
the exception (:func:`~fleetforge.adapter.failure_kind_of`; raise :class:`TaskError` to choose
it). A handler that drives the adapter itself (framework adapters do) may call ``complete`` or
``error`` on its own; the Worker then uses what it reported.

What the tasks report goes to the fleet in batches (:mod:`fleetforge._delivery`): envelopes
of all running tasks in one ``post_events`` call every 20 ms, finished tasks' receipts (each
with its last envelopes) in one ``complete_tasks`` call that also leases the next tasks for the
slots it frees, gathered within ``batch_window`` seconds (not waiting when no other task is
still working). Heartbeats of all running tasks go in one ``heartbeat_many`` call every
``lease_seconds / 3``. When the lease is lost or the run is cancelled, an async handler is
cancelled and a sync one (run in a thread) sees ``task.cancelled`` set; no receipt is posted.
:meth:`Worker.stop` (the CLI calls it on SIGINT or SIGTERM) stops leasing and gives running
tasks ``shutdown_grace`` seconds to finish; the rest are cancelled and released back to the
inbox.
"""

from __future__ import annotations

import inspect
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.abc import TaskGroup
from opentelemetry.trace import SpanKind, Status, StatusCode

from fleetforge._delivery import BATCH_WINDOW, LOST, Courier, Outbox, WorkerCalls
from fleetforge.adapter import (
    AgentRunAdapter,
    AgentRunContext,
    QueueSink,
    ValidationMode,
    failure_kind_of,
)
from fleetforge.capabilities import Capability
from fleetforge.client import FleetClient
from fleetforge.contracts import (
    FleetArtifactRef,
    FleetInboxEntry,
    FleetReceipt,
    FleetReceiptSignature,
    FleetTaskFailureKind,
    FleetTaskSpec,
    FleetUsage,
    FleetWorkerEnvironment,
    FleetWorkerSpec,
)
from fleetforge.errors import ContractError, UsageError, error_from_dict
from fleetforge.operations.batches import MAX_ITEMS
from fleetforge.redaction import get_logger
from fleetforge.signing import public_key_of, sign_receipt
from fleetforge.telemetry import context_from, tracer, trust_attributes

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "Handler",
    "TaskError",
    "TaskPaused",
    "TaskRun",
    "Worker",
    "WorkerStats",
    "detect_environment",
]

log = get_logger("fleetforge.worker")


class TaskError(Exception):
    """Raise from a handler to fail the attempt with a chosen failure kind."""

    def __init__(
        self, message: str, kind: FleetTaskFailureKind | str = FleetTaskFailureKind.AGENT_ERROR
    ) -> None:
        super().__init__(message)
        self.kind = FleetTaskFailureKind(kind)


class TaskPaused(TaskError):
    """Raise from a handler when the task needs input (a person's answer, a framework's
    interrupt): the Worker ends the attempt's envelopes with ``error`` (kind ``cancelled``) and
    calls ``pause_task`` instead of ``fail_task``. The run pauses; ``resume_run(value=...)``
    sends the task back, and its next lease carries the value (``task.context.resume``)."""

    def __init__(self, message: str, waiting_for: Sequence[Any] = ()) -> None:
        super().__init__(message, kind=FleetTaskFailureKind.CANCELLED)
        self.waiting_for = list(waiting_for)


@dataclass
class TaskRun:
    """What a handler gets: the leased entry, its adapter, and a way to notice cancellation."""

    entry: FleetInboxEntry
    adapter: AgentRunAdapter
    client: FleetClient
    cancelled: threading.Event = field(default_factory=threading.Event)
    usage: FleetUsage | None = None
    artifacts: list[FleetArtifactRef] = field(default_factory=list)
    capability: Capability | None = None
    """The task's capability token (pass it to ``armory.open(..., capability=...)``); kept
    current by the heartbeats: renewed with the lease, and refused once revoked."""
    attestation_id: str | None = None
    """The id of the fleet's signed attestation of the attempt's receipt, once recorded."""

    @property
    def task(self) -> FleetTaskSpec:
        return self.entry.task

    @property
    def inputs(self) -> dict[str, Any]:
        return dict(self.entry.task.inputs)

    @property
    def context(self) -> AgentRunContext:
        return self.adapter.context


Handler = Callable[[TaskRun], Any | Awaitable[Any]]


@dataclass
class WorkerStats:
    """What one :meth:`Worker.run` did."""

    completed: int = 0
    rejected: int = 0
    failed: int = 0
    lost: int = 0
    released: int = 0
    paused: int = 0
    errors: int = 0
    """Tasks where something went wrong between the Worker and the fleet (the fleet refused a
    result, envelopes could not be delivered, an unexpected error): each is logged with the task
    and the error, and also counted under its outcome (``failed``, or ``lost`` when nothing could
    be recorded and the lease will expire)."""

    @property
    def handled(self) -> int:
        done = self.completed + self.rejected + self.failed
        return done + self.lost + self.released + self.paused


@dataclass
class _Held:
    """A lease the heartbeats keep, and what to do when it is lost."""

    task_id: str
    fencing_token: int
    lost: Callable[[BaseException], None]
    capability: Capability | None = None


# Once shutdown_grace is over: how long a cancelled handler gets to stop, and how long the last
# envelopes and the release call get (the CLI exits 4.5 s after the grace period at the latest).
_HANDLER_STOP_WAIT = 0.5
_RELEASE_DRAIN = 1.5
_RELEASE_TIMEOUT = 2.0


def detect_environment(
    workspace: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> FleetWorkerEnvironment:
    """This machine as a worker reports it when it registers (names, never values): free disk
    of ``workspace`` (default: the current directory), platform, Python version, the
    FleetForge extras installed, and the names of the environment variables set."""
    import importlib.util
    import platform
    import shutil
    import sys

    env = os.environ if environ is None else environ
    try:
        free_mb: int | None = shutil.disk_usage(workspace or os.getcwd()).free // (1024 * 1024)
    except OSError:
        free_mb = None
    markers = {"langgraph": "langgraph", "autogen": "autogen_agentchat", "crewai": "crewai",
               "postgres": "psycopg", "otel": "opentelemetry.sdk", "policy": "cedarpy",
               "ui": "textual", "alerts": "apprise"}  # fmt: skip
    extras = []
    for extra, module in markers.items():
        try:
            if importlib.util.find_spec(module) is not None:
                extras.append(extra)
        except (ImportError, ValueError):
            continue
    names = sorted(n for n in env if n.isidentifier() and n.isascii())
    return FleetWorkerEnvironment(
        free_disk_mb=free_mb, platform=sys.platform, python=platform.python_version(),
        extras=extras, env_vars=names,
    )  # fmt: skip


class Worker:
    """Runs ``handler`` for every task this worker can lease (see the module doc)."""

    def __init__(
        self,
        client: FleetClient,
        handler: Handler,
        *,
        worker_id: str | None = None,
        capabilities: FleetWorkerSpec | Mapping[str, Any] | None = None,
        concurrency: int = 1,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float | None = None,
        poll_seconds: float = 1.0,
        shutdown_grace: float = 30.0,
        adapter_name: str = "fleetforge",
        validation: ValidationMode = "strict",
        default_id: str | None = None,
        batch_window: float = BATCH_WINDOW,
        signing_key: Ed25519PrivateKey | None = None,
        key_id: str = "worker",
    ) -> None:
        if concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, got {concurrency}")
        if not 0 <= batch_window <= 1:
            raise UsageError(f"batch_window must be between 0 and 1 second, got {batch_window}")
        caps = (
            capabilities.model_dump(mode="json")
            if isinstance(capabilities, FleetWorkerSpec)
            else dict(capabilities or {})
        )
        given = worker_id or caps.get("worker_id")
        # no id given: a token bound to a worker names it (see register), else the default
        self._id_from_token = given is None
        self._registered = False
        name = given or default_id or f"worker-{socket.gethostname()}-{os.getpid()}"
        caps.setdefault("max_concurrency", concurrency)
        if "environment" not in caps:  # what tasks' workspace requirements are matched against
            caps["environment"] = detect_environment().model_dump(mode="json")
        if signing_key is not None and "auth" not in caps:  # it registers the key it signs with
            caps["auth"] = {"kind": "ed25519", "key_id": key_id,
                            "public_key": public_key_of(signing_key)}  # fmt: skip
        self.spec = FleetWorkerSpec.model_validate({**caps, "worker_id": name})
        self.signing_key = signing_key
        self.key_id = key_id
        self.client = client
        self.handler = handler
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds or lease_seconds / 3
        self.poll_seconds = poll_seconds
        self.shutdown_grace = shutdown_grace
        self.adapter_name = adapter_name
        self.validation: ValidationMode = validation
        self.batch_window = batch_window
        self.stats = WorkerStats()
        self._stopping = False
        self._stop_event: anyio.Event | None = None
        self._running = 0  # tasks leased and not yet accounted for
        self._reserved = 0  # slots of lease calls in flight
        self._leased_total = 0
        self._max_tasks: int | None = None
        self._slot_freed: anyio.Event | None = None
        self._held: dict[str, _Held] = {}
        # running attempts' shutdown watchers, started by stop() (not a task per attempt)
        self._on_stop: dict[str, Callable[[], None]] = {}
        self._calls = WorkerCalls(client)
        self._courier = Courier(self._calls)
        self._tasks: TaskGroup | None = None

    @property
    def worker_id(self) -> str:
        return self.spec.worker_id

    def stop(self) -> None:
        """Stop leasing; running tasks get ``shutdown_grace`` seconds (call from the loop)."""
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        for watch in list(self._on_stop.values()):
            watch()

    # ── the loop ────────────────────────────────────────────────────────────────────────────

    async def register(self) -> FleetWorkerSpec:
        """Register with the fleet (:meth:`run` does it when not done yet). Without a
        ``worker_id``, a client whose token is bound to a worker registers as that worker and
        :attr:`worker_id` becomes its id; otherwise the default id is used."""
        registered = await self.client.register_worker(self.spec, id_from_token=self._id_from_token)
        if registered.worker_id != self.spec.worker_id:
            self.spec = self.spec.model_copy(update={"worker_id": registered.worker_id})
        self._registered = True
        return self.spec

    async def run(
        self, *, stop_when_idle: bool = False, max_tasks: int | None = None
    ) -> WorkerStats:
        """Lease and work until :meth:`stop`, or until idle (``stop_when_idle``), or until
        ``max_tasks`` tasks were handled."""
        self._stop_event = anyio.Event()
        self._stopping = False
        if not self._registered:
            await self.register()
        self._slot_freed = anyio.Event()
        self._leased_total, self._reserved, self._max_tasks = 0, 0, max_tasks
        self._calls = WorkerCalls(self.client, self.worker_id)
        courier = self._courier = Courier(
            self._calls,
            window=self.batch_window,
            busy=lambda: self._running - courier.waiting,
            reserve=self._reserve,
            leased=self._leased,
            lease_seconds=self.lease_seconds,
        )
        async with anyio.create_task_group() as services:
            await services.start(courier.run)
            services.start_soon(self._heartbeats)
            async with anyio.create_task_group() as tasks:
                self._tasks = tasks
                await self._lease(stop_when_idle=stop_when_idle, max_tasks=max_tasks)
            self._tasks = None
            services.cancel_scope.cancel()
        return self.stats

    async def _lease(self, *, stop_when_idle: bool, max_tasks: int | None) -> None:
        """Lease for free slots: at once after work, long-polling a little longer each time
        when idle. (Receipts lease the next tasks for the slots they free: see _reserve.)"""
        assert self._slot_freed is not None
        wait = 0.0
        while not self._stopping:
            free = self.concurrency - self._running - self._reserved
            if max_tasks is not None:
                if self._leased_total >= max_tasks:
                    break
                free = min(free, max_tasks - self._leased_total - self._reserved)
            if free <= 0:
                await self._slot_freed.wait()
                self._slot_freed = anyio.Event()
                continue
            finished_before = self.stats.handled
            self._reserved += free
            try:
                entries = await self.client.lease_task(
                    self.worker_id,
                    lease_seconds=self.lease_seconds,
                    wait_seconds=wait,
                    max_tasks=free,
                )
            finally:
                self._reserved -= free
            if not entries:
                # idle = nothing running or being leased, and nothing finished (and maybe
                # scheduled a next step) while this lease call was out
                if stop_when_idle and self._running == 0 and self._reserved == 0:
                    if self.stats.handled == finished_before:
                        break
                    continue
                # idle: long-poll a little longer each time, up to poll_seconds
                wait = min(max(wait * 2, 0.05), self.poll_seconds)
                continue
            wait = 0.0
            self._start(entries)

    def _reserve(self, freed: int) -> int:
        """How many tasks a call carrying ``freed`` receipts leases with them: the slots they
        free and any others free, none once stopping (reserved until :meth:`_leased`)."""
        if self._stopping or self._tasks is None:
            return 0
        free = self.concurrency - (self._running - freed) - self._reserved
        if self._max_tasks is not None:
            free = min(free, self._max_tasks - self._leased_total - self._reserved)
        wanted = max(0, min(free, 100))
        self._reserved += wanted
        return wanted

    def _leased(self, entries: list[FleetInboxEntry], reserved: int) -> None:
        self._reserved -= reserved
        if entries:
            self._start(entries)
        elif reserved and self._slot_freed is not None:
            self._slot_freed.set()

    def _start(self, entries: list[FleetInboxEntry]) -> None:
        assert self._tasks is not None
        self._leased_total += len(entries)
        for entry in entries:
            self._running += 1
            self._tasks.start_soon(self._work_safely, entry)

    async def _work_safely(self, entry: FleetInboxEntry) -> None:
        try:
            await self._work(entry)
        except Exception as exc:  # a bug here or in the client: say so, go on
            self.stats.errors += 1
            self.stats.lost += 1  # its lease will expire and the fleet requeue it
            log.exception("task %s: unexpected error in the worker (%s: %s)",
                          entry.task.task_id, type(exc).__name__, exc)  # fmt: skip
        finally:
            self._running -= 1
            if self._slot_freed is not None:
                self._slot_freed.set()
            self._courier.nudge()

    async def _heartbeats(self) -> None:
        """Every ``heartbeat_seconds``: keep the leases of all running tasks, in one call."""
        while True:
            await anyio.sleep(self.heartbeat_seconds)
            held = list(self._held.values())
            for start in range(0, len(held), MAX_ITEMS):
                await self._beat(held[start : start + MAX_ITEMS])

    async def _beat(self, held: list[_Held]) -> None:
        try:
            result = await self._calls.heartbeat_many(
                [(h.task_id, h.fencing_token) for h in held], lease_seconds=self.lease_seconds
            )
        except Exception as exc:  # a blip: the next heartbeat may get through
            log.warning("heartbeat of %d tasks failed (%s: %s)", len(held),
                        type(exc).__name__, exc)  # fmt: skip
            return
        for one, lease in zip(held, result.leases, strict=False):
            if lease is not None and one.capability is not None:
                one.capability.update(lease)
        for failure in result.failures:
            one = held[failure.index]
            error = error_from_dict(failure.error)
            if self._held.get(one.task_id) is not one:
                continue  # it finished meanwhile
            if isinstance(error, LOST):
                one.lost(error)
            else:
                log.warning("task %s: heartbeat failed (%s: %s)", one.task_id,
                            type(error).__name__, error)  # fmt: skip

    def _signature(self, run: TaskRun) -> FleetReceiptSignature | None:
        """The worker's signature of the receipt the fleet will build (``signing_key``)."""
        if self.signing_key is None:
            return None
        usage = run.adapter.usage or FleetUsage()
        unsigned = FleetReceipt.success(run.entry, run.adapter.output, usage=usage)
        unsigned = unsigned.model_copy(update={"artifacts": list(run.artifacts)})
        signed = sign_receipt(unsigned, self.signing_key, key_id=self.key_id)
        return signed.worker_signature

    # ── one task ────────────────────────────────────────────────────────────────────────────

    async def _work(self, entry: FleetInboxEntry) -> None:
        task = entry.task
        context = AgentRunContext.from_entry(entry)
        token = context.fencing_token
        sink = QueueSink(
            store_artifact=self._artifact_storer(task.run_id, task.step_id, task.task_id)
        )
        adapter = AgentRunAdapter(context, sink, name=self.adapter_name, validation=self.validation)
        info = getattr(self.handler, "fleetforge_adapter", None)  # framework adapters name it
        if info is not None:
            adapter.info = info
        run = TaskRun(entry=entry, adapter=adapter, client=self.client)
        run.capability = Capability.from_lease(
            entry.lease, run_id=task.run_id, task_id=task.task_id
        )
        parent = context_from(task.trace)
        attributes: dict[str, str | int] = {
            "fleet.run_id": task.run_id,
            "fleet.step_id": task.step_id,
            "fleet.task_id": task.task_id,
            "fleet.attempt": entry.attempt,
            "fleet.worker_id": self.worker_id,
        }
        token_id = (
            entry.lease.capability.token_id if entry.lease and entry.lease.capability else None
        )
        attributes |= trust_attributes(capability_token_id=token_id)
        with (
            tracer.start_as_current_span(
                f"step {task.step_id}",
                context=parent,
                kind=SpanKind.INTERNAL,
                attributes=attributes,
            ) as step_span,
            tracer.start_as_current_span(
                f"task {task.task_id}", kind=SpanKind.CONSUMER, attributes=attributes
            ) as span,
        ):
            outcome = await self._attempt(run, token, sink)
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
            span.set_attribute("fleet.outcome", outcome)
            signed = trust_attributes(attestation_id=run.attestation_id)  # known once recorded
            step_span.set_attributes(signed)
            span.set_attributes(signed)
            if outcome in ("failed", "rejected"):
                span.set_status(Status(StatusCode.ERROR, outcome))

    def _artifact_storer(
        self, run_id: str, step_id: str, task_id: str
    ) -> Callable[[bytes, str], FleetArtifactRef]:
        client = self.client
        worker_id = self.worker_id

        def store(content: bytes, media_type: str) -> FleetArtifactRef:
            # called from the handler's thread (sync handlers); raises RuntimeError in the
            # event loop's own thread, and the adapter then keeps the state inline
            artifact = anyio.from_thread.run(
                lambda: client.put_artifact(
                    content, media_type=media_type, kind="checkpoint", run_id=run_id,
                    step_id=step_id, task_id=task_id, worker_id=worker_id,
                )
            )  # fmt: skip
            return FleetArtifactRef.model_validate(artifact.model_dump(mode="json"))

        return store

    async def _attempt(self, run: TaskRun, token: int, sink: QueueSink) -> str:
        task_id = run.task.task_id
        me = self.worker_id  # every call on the lease names the worker holding it
        courier = self._courier
        outbox = Outbox(self.client, task_id, token, sink, worker_id=me, courier=courier,
                        validated=self.validation == "strict")  # fmt: skip
        halted: list[str] = []  # why the attempt stopped early (the first reason wins)
        released: list[str] = []  # the outcome, when the shutdown watcher gave the task back
        handler_scope = anyio.CancelScope()
        handler_done = anyio.Event()
        release_done = anyio.Event()

        def halt(reason: str) -> None:
            if not halted:
                halted.append(reason)
                run.cancelled.set()
                handler_scope.cancel()

        def undelivered() -> None:  # live delivery stopped while the handler works
            halt("lease lost" if outbox.lost else "undeliverable")

        def lease_lost(exc: BaseException) -> None:  # from the heartbeats
            outbox.abort(f"lease lost: {exc}")
            halt(f"lease lost: {exc}")

        async def watch_shutdown() -> None:
            assert self._stop_event is not None
            await self._stop_event.wait()
            with anyio.move_on_after(self.shutdown_grace):
                await handler_done.wait()
            if handler_done.is_set() or halted:
                return
            halt("released")
            try:
                released.append(await self._release(run, token, outbox, handler_done))
            finally:
                release_done.set()

        output: Any = None
        error: BaseException | None = None
        self._held[task_id] = _Held(task_id, token, lease_lost, run.capability)
        courier.watch(outbox, undelivered)  # envelopes reach the fleet while the handler works
        watching: list[bool] = []
        try:
            async with anyio.create_task_group() as tg:

                def watch() -> None:  # once the worker stops (a task per attempt costs)
                    if not watching:
                        watching.append(True)
                        with suppress(RuntimeError):  # the attempt's group is closing: done
                            tg.start_soon(watch_shutdown)

                self._on_stop[task_id] = watch
                if self._stopping:
                    watch()
                try:
                    run.adapter.start()
                    with handler_scope:
                        output = await self._call_handler(run)
                except LOST as exc:  # the handler's own calls to the fleet found the task gone
                    halt(f"lease lost: {exc}")
                except Exception as exc:
                    error = exc
                handler_done.set()
                courier.unwatch(outbox)  # what is left goes with the result
                if not halted:
                    error = self._end_envelopes(run, output, error)
                    succeeded = error is None and run.adapter.failure is None
                    # a receipt carries the last envelopes; a failure or pause posts them first
                    if not succeeded and not await outbox.deliver():
                        halt("lease lost" if outbox.lost else "undeliverable")
                if halted and halted[0] == "released":
                    await release_done.wait()  # the watcher is giving the task back
                self._on_stop.pop(task_id, None)
                if watching:
                    tg.cancel_scope.cancel()
        finally:
            self._on_stop.pop(task_id, None)
            courier.unwatch(outbox)
            del self._held[task_id]

        if halted:
            self._close(run, halted[0] if not outbox.problem else outbox.problem)
        if released:
            return released[0]
        if halted and halted[0] != "undeliverable":
            reason = outbox.problem if halted[0] == "lease lost" and outbox.problem else halted[0]
            log.warning("task %s: %s; no receipt posted", task_id, reason)
            return "lost"
        try:
            if outbox.stopped:
                return await self._undeliverable(run, token, outbox)
            if error is not None:
                if isinstance(error, TaskPaused):
                    await self.client.pause_task(
                        task_id,
                        token,
                        reason=str(error),
                        waiting_for=error.waiting_for,
                        worker_id=me,
                    )
                    return "paused"
                kind, message = run.adapter.failure or (failure_kind_of(error), str(error))
                await self.client.fail_task(task_id, token, kind, message, worker_id=me)
                return "failed"
            if run.adapter.failure is not None:
                kind, message = run.adapter.failure
                await self.client.fail_task(task_id, token, kind, message, worker_id=me)
                return "failed"
            try:
                receipt = await courier.complete(
                    outbox,
                    run.adapter.output,
                    usage=run.adapter.usage,
                    artifacts=run.artifacts,
                    signature=self._signature(run),
                )
            except LOST:
                raise
            except Exception:
                if outbox.problem is None:
                    raise  # the fleet refused the receipt
                if outbox.lost:
                    log.warning("task %s: %s; no receipt posted", task_id, outbox.problem)
                    return "lost"
                return await self._undeliverable(run, token, outbox)
        except LOST as exc:
            log.warning("task %s: %s; the result was not recorded", task_id, exc)
            return "lost"
        except Exception as exc:  # the fleet refused the result, or something unexpected
            return await self._refused(run, token, exc)
        run.attestation_id = receipt.attestation_id
        return "completed" if receipt.status == "accepted" else "rejected"

    @staticmethod
    def _end_envelopes(run: TaskRun, output: Any, error: BaseException | None) -> Any:
        """The attempt's last envelope: ``complete`` with the output, or ``error``. Returns the
        error to report (``complete`` itself may fail: an output the contract refuses)."""
        adapter = run.adapter
        if error is None and not adapter.finished:
            try:
                adapter.complete(output, run.usage)
            except Exception as exc:
                error = exc
        if error is not None and adapter.started and not adapter.finished:
            try:
                adapter.error(error)
            except Exception:
                log.exception("task %s: the error envelope could not be built", run.task.task_id)
        return error

    @staticmethod
    def _close(run: TaskRun, reason: str) -> None:
        """End an attempt that stopped early with an ``error`` envelope, closing its spans (the
        envelope stays with the worker: the fleet no longer takes this attempt's envelopes)."""
        if run.adapter.started and not run.adapter.finished:
            try:
                run.adapter.error(FleetTaskFailureKind.CANCELLED, reason)
            except Exception:  # the handler's thread may have finished it meanwhile
                log.debug("task %s: attempt already ended", run.task.task_id)

    async def _release(
        self, run: TaskRun, token: int, outbox: Outbox, handler_done: anyio.Event
    ) -> str:
        """Give a task back after the grace period, whether or not its handler stops."""
        task_id = run.task.task_id
        with anyio.move_on_after(_HANDLER_STOP_WAIT):
            await handler_done.wait()
        if not handler_done.is_set():
            log.warning("task %s: the handler did not stop when cancelled; releasing anyway",
                        task_id)  # fmt: skip
        with anyio.move_on_after(_RELEASE_DRAIN):
            await outbox.deliver()  # what the handler reported so far
        outbox.abort("released")
        try:
            with anyio.fail_after(_RELEASE_TIMEOUT):
                await self.client.release_task(
                    task_id, token, reason="worker shutting down", worker_id=self.worker_id
                )
        except LOST:
            return "lost"
        except Exception as exc:
            self.stats.errors += 1
            log.error("task %s: could not release it (%s: %s); its lease will expire",
                      task_id, type(exc).__name__, exc)  # fmt: skip
            return "lost"
        return "released"

    async def _undeliverable(self, run: TaskRun, token: int, outbox: Outbox) -> str:
        """Fail a task whose envelopes did not all reach the fleet: no receipt over a hole."""
        task_id = run.task.task_id
        message = f"the worker could not report the attempt: {outbox.problem}"
        log.error("task %s: %s; failing the task", task_id, message)
        self.stats.errors += 1
        await self.client.fail_task(
            task_id, token, outbox.failure_kind(), message[:4000], worker_id=self.worker_id
        )
        return "failed"

    async def _refused(self, run: TaskRun, token: int, exc: BaseException) -> str:
        """The fleet refused the attempt's result (or something unexpected broke): say so, fail
        the task if the fleet lets us, and go on."""
        task_id = run.task.task_id
        self.stats.errors += 1
        reason = f"{type(exc).__name__}: {exc}"
        log.error("task %s: the fleet refused the result (%s)", task_id, reason)
        kind = (
            FleetTaskFailureKind.INVALID_OUTPUT
            if isinstance(exc, ContractError)
            else FleetTaskFailureKind.INTERNAL
        )
        try:
            await self.client.fail_task(
                task_id,
                token,
                kind,
                f"the result was refused: {reason}"[:4000],
                worker_id=self.worker_id,
            )
        except LOST:
            return "lost"
        except Exception as again:
            log.error("task %s: could not fail it either (%s: %s); its lease will expire",
                      task_id, type(again).__name__, again)  # fmt: skip
            return "lost"
        return "failed"

    async def _call_handler(self, run: TaskRun) -> Any:
        if inspect.iscoroutinefunction(self.handler) or inspect.iscoroutinefunction(
            getattr(self.handler, "__call__", None)  # noqa: B004
        ):
            return await self.handler(run)
        result = await anyio.to_thread.run_sync(self.handler, run, abandon_on_cancel=True)
        if inspect.isawaitable(result):
            return await result
        return result
