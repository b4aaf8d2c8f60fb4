"""Delivering what a worker's tasks report to the fleet: in order, each once, none lost, and
several tasks' envelopes and receipts in one call.

The adapter writes envelopes into a :class:`~fleetforge.adapter.QueueSink`; an :class:`Outbox`
holds one attempt's queue and how its delivery stands. A :class:`Courier` carries them: it
reads the oldest envelopes of each queue, sends them with ``post_events`` (several tasks' in
one call, one transaction) and removes them from the queue only once the fleet recorded them,
so an envelope is never taken off the queue and then dropped. A finished task's success
receipt goes with its last envelopes (``complete_tasks``: the receipt after them, in the same
transaction) together with other tasks' receipts, and can lease the next tasks in that
transaction. The courier makes one call at a time, so a task's envelopes and its receipt can
never overtake each other.

A Worker runs one courier for all its tasks (:meth:`Courier.run`): envelopes go every
``DELIVER_EVERY`` seconds while handlers work, and a receipt or an explicit
:meth:`Outbox.deliver` waits up to ``window`` seconds for other tasks to join the call (not
at all when no other task is still working). An Outbox made on its own delivers inline, its
envelopes only, in the caller's task.

Delivery of a task stops at the first envelope the fleet does not record. Either the task is
no longer this worker's (lease lost, run cancelled: ``lost``), or the envelope could not be
recorded for another reason (the fleet refused it, the connection broke, no answer within
``post_timeout``): the Worker then fails the task with :attr:`Outbox.problem` rather than
posting a receipt over a hole. So that a refused envelope is always the last of its task that
the fleet records, a task's envelopes share a call only when the fleet cannot refuse them for
their content: the courier checks each against the JSON value domain before sending it, an
adapter that validates strictly guarantees the rest, except for the tool reports the fleet
checks itself (a ``tool_called`` / ``tool_refused`` emit ends its task's share of a call).
When the fleet refuses a whole call before recording anything (a ``ContractError``, e.g. a
batch over the MCP size limit), or refuses a receipt item, the tasks concerned are delivered
the way single calls would (one envelope per call, then ``complete_task``), which says exactly
which envelope or which receipt was refused.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import orjson
from anyio.abc import TaskStatus

from fleetforge._jsondomain import DomainChecked, check_json_value, check_model
from fleetforge.adapter import QueueSink
from fleetforge.contracts import (
    FleetArtifactRef,
    FleetInboxEntry,
    FleetReceipt,
    FleetReceiptSignature,
    FleetTaskFailureKind,
    FleetUsage,
)
from fleetforge.contracts.envelope import AgentRunEnvelope, EmitEnvelope
from fleetforge.errors import (
    AlreadyCompletedError,
    AuthError,
    ContractError,
    FleetForgeError,
    InternalError,
    LeaseLostError,
    NotFoundError,
    RunCancelledError,
    error_from_dict,
)
from fleetforge.operations.batches import MAX_ITEMS
from fleetforge.operations.results import CompletedTasks, HeartbeatResults, PostedEvents
from fleetforge.redaction import get_logger

__all__ = [
    "BATCH_WINDOW",
    "DELIVER_EVERY",
    "LOST",
    "Courier",
    "Outbox",
    "WorkerCalls",
    "describe",
]

log = get_logger("fleetforge.worker")

LOST = (LeaseLostError, RunCancelledError, AlreadyCompletedError, NotFoundError)
"""What the fleet answers when the task is no longer this worker's to report on."""

POST_TIMEOUT = 60.0
DELIVER_EVERY = 0.02
"""How often envelopes are posted while handlers work (they reach the fleet live)."""
BATCH_WINDOW = 0.003
"""How long a receipt (or an explicit delivery) waits for other tasks to join its call."""
CARRY = 256
"""Envelopes a receipt carries at most; a longer backlog goes ahead with ``post_events``."""
CALL_BYTES = 1 << 20
"""Envelope JSON per call over MCP (whose arguments may not exceed 4 MiB as a whole)."""
_FLEET_FACTS = frozenset({"tool_called", "tool_refused"})
"""Emits the fleet validates itself (fleetforge.fleet.service: the armory's tool reports)."""


class _Aborted(Exception):
    """A call cut short by :meth:`Outbox.abort`."""


def describe(envelope: AgentRunEnvelope) -> str:
    """``#SEQ (kind)``, e.g. ``#3 (emit:tool_call)``, for messages."""
    kind = f"emit:{envelope.event}" if isinstance(envelope, EmitEnvelope) else envelope.kind
    return f"#{envelope.seq} ({kind})"


def _checked_by_fleet(envelope: AgentRunEnvelope) -> bool:
    return isinstance(envelope, EmitEnvelope) and envelope.payload.get("type") in _FLEET_FACTS


# ── the calls ───────────────────────────────────────────────────────────────────────────────


@dataclass(slots=True)
class _Envelope:
    task_id: str
    fencing_token: int
    envelope: AgentRunEnvelope


@dataclass(slots=True)
class _Completion(DomainChecked):  # its envelopes went through wire(): checked
    task_id: str
    fencing_token: int
    output: Any
    usage: FleetUsage | None
    artifacts: list[FleetArtifactRef]
    envelopes: list[AgentRunEnvelope]
    receipt_id: str | None = None
    worker_signature: FleetReceiptSignature | None = None


@dataclass(slots=True)
class _Lease:
    task_id: str
    fencing_token: int


def _in_process_engine(client: Any) -> Any | None:
    """The in-process engine (a ``SyncFleetService``) of a local FleetClient whose batch calls
    are its own; None otherwise (a remote fleet, a client of your own making, or one not open:
    its methods then say so)."""
    from fleetforge.client import FleetClient

    transport = getattr(client, "transport", None)
    if getattr(transport, "kind", None) != "local":
        return None
    for name in ("post_events", "complete_tasks", "heartbeat_many"):
        if getattr(type(client), name, None) is not getattr(FleetClient, name):
            return None  # a client of its own making: its methods are the ones to call
    return getattr(getattr(transport, "fleet", None), "sync", None)


class WorkerCalls:
    """The batch calls of a worker (``post_events``, ``complete_tasks``, ``heartbeat_many``),
    made as ``worker_id``. On a local :class:`~fleetforge.client.FleetClient` they go straight
    to the in-process engine in a worker thread: the same engine calls the client would make,
    with the envelopes as models (no JSON round trip, no argument models)."""

    def __init__(self, client: Any, worker_id: str | None = None) -> None:
        self.client = client
        self.worker_id = worker_id
        self._engine: Any | None = None

    def engine(self) -> Any | None:
        """The in-process engine the calls go to, or None (they go through the client)."""
        if self._engine is None:
            self._engine = _in_process_engine(self.client)
        return self._engine

    def wire(self, envelope: AgentRunEnvelope) -> tuple[Any, int]:
        """``envelope`` as a call carries it, and its size in bytes over MCP (0 in process):
        checked against the JSON value domain first (ContractError, as the fleet would)."""
        checked = check_model(envelope, what="envelope")
        if self.engine() is not None:
            return checked, 0
        body = checked.model_dump(mode="json", exclude_none=True)
        return body, len(orjson.dumps(body))

    def _caller(self) -> Any:
        if self.worker_id is None:
            return None
        from fleetforge.fleet.access import Caller

        return Caller.as_worker(self.worker_id)

    async def post_events(self, items: Sequence[tuple[str, int, Any]]) -> PostedEvents:
        engine = self.engine()
        if engine is not None:
            batch = [_Envelope(t, k, e) for t, k, e in items]
            run = functools.partial(engine.post_events, batch, caller=self._caller())
            result: PostedEvents = await anyio.to_thread.run_sync(run)
            return result
        given = [{"task_id": t, "fencing_token": k, "envelope": e} for t, k, e in items]
        answer: PostedEvents = await self.client.post_events(given, worker_id=self.worker_id)
        return answer

    async def complete_tasks(
        self, items: Sequence[_Completion], *, lease_next: int, lease_seconds: float
    ) -> CompletedTasks:
        engine = self.engine()
        if engine is not None:
            run = functools.partial(
                engine.complete_tasks,
                items,
                worker_id=self.worker_id,
                lease_next=lease_next,
                lease_seconds=lease_seconds,
                caller=self._caller(),
            )
            result: CompletedTasks = await anyio.to_thread.run_sync(run)
            return result
        given = [
            {
                "task_id": i.task_id,
                "fencing_token": i.fencing_token,
                "output": i.output,
                "usage": None if i.usage is None else i.usage.model_dump(mode="json"),
                "artifacts": [a.model_dump(mode="json") for a in i.artifacts],
                "envelopes": i.envelopes,  # already in their JSON form (wire)
                **(
                    {}
                    if i.worker_signature is None
                    else {"worker_signature": i.worker_signature.model_dump(mode="json")}
                ),
            }
            for i in items
        ]
        answer: CompletedTasks = await self.client.complete_tasks(
            given, lease_next=lease_next, lease_seconds=lease_seconds, worker_id=self.worker_id
        )
        return answer

    async def heartbeat_many(
        self, items: Sequence[tuple[str, int]], *, lease_seconds: float
    ) -> HeartbeatResults:
        engine = self.engine()
        if engine is not None:
            batch = [_Lease(t, k) for t, k in items]
            run = functools.partial(
                engine.heartbeat_many, batch, lease_seconds=lease_seconds, caller=self._caller()
            )
            result: HeartbeatResults = await anyio.to_thread.run_sync(run)
            return result
        given = [{"task_id": t, "fencing_token": k} for t, k in items]
        answer: HeartbeatResults = await self.client.heartbeat_many(
            given, lease_seconds=lease_seconds, worker_id=self.worker_id
        )
        return answer


# ── one attempt's queue ─────────────────────────────────────────────────────────────────────


class Outbox:
    """The envelopes of one leased task, delivered in the order they were written."""

    def __init__(
        self,
        client: Any,
        task_id: str,
        fencing_token: int,
        sink: QueueSink,
        *,
        worker_id: str | None = None,
        post_timeout: float = POST_TIMEOUT,
        courier: Courier | None = None,
        validated: bool = True,
    ) -> None:
        self.client = client
        self.worker_id = worker_id
        self.task_id = task_id
        self.fencing_token = fencing_token
        self.sink = sink
        self.post_timeout = post_timeout
        self.courier = courier or Courier(WorkerCalls(client, worker_id), post_timeout=post_timeout)
        self.validated = validated
        """The adapter validated every envelope strictly: they may share a call. Otherwise
        each goes in a call of its own (one the fleet refuses is then the last recorded)."""
        self.delivered = 0
        self.lost = False
        self.error: BaseException | None = None
        self.problem: str | None = None
        self.on_stop: Callable[[], None] | None = None
        self._lock = anyio.Lock()
        self._in_flight: anyio.CancelScope | None = None

    @property
    def stopped(self) -> bool:
        return self.problem is not None

    async def deliver(self) -> bool:
        """Post everything written so far; False once delivery has stopped (see ``problem``)."""
        async with self._lock:
            while self.problem is None and len(self.sink):
                await self.courier.flush(self)
            return self.problem is None

    async def deliver_until(self, done: anyio.Event, every: float = DELIVER_EVERY) -> None:
        """Deliver what was written every ``every`` seconds until ``done`` is set (then the
        caller delivers the rest) or delivery stops."""
        while not done.is_set():
            await anyio.sleep(every)
            if not await self.deliver():
                return

    async def deliver_singly(self) -> bool:
        """Post what was written one envelope per call (the fleet's answer then names the one
        it refused); False once delivery has stopped."""
        async with self._lock:
            return await self._post_singly(inline=True)

    async def _post_singly(self, *, inline: bool, limit: float = math.inf) -> bool:
        calls = self.courier.calls
        while self.problem is None and limit > 0:
            limit -= 1
            envelope = self.sink.peek()
            if envelope is None:
                return True
            try:
                item, _ = calls.wire(envelope)
                posted: PostedEvents = await self.courier.call(
                    calls.post_events, [(self.task_id, self.fencing_token, item)],
                    owner=self if inline else None,
                )  # fmt: skip
            except Exception as exc:
                self._stop(envelope, exc, lost=isinstance(exc, LOST))
                break
            if posted.failures:
                error = error_from_dict(posted.failures[0].error)
                self._stop(envelope, error, lost=isinstance(error, LOST))
                break
            self._recorded(1)
        return self.problem is None

    def abort(self, reason: str) -> None:
        """Stop delivering (the task is being released or was lost); cut a post in flight that
        carries this task's envelopes only."""
        if self.problem is None:
            self.problem = reason
            self.lost = True
        if self._in_flight is not None:
            self._in_flight.cancel()

    def failure_kind(self) -> FleetTaskFailureKind:
        """The failure kind of an attempt whose envelopes could not be delivered."""
        if isinstance(self.error, ContractError):
            return FleetTaskFailureKind.INVALID_OUTPUT  # the fleet refused what was written
        if isinstance(self.error, AuthError):
            return FleetTaskFailureKind.POLICY_DENIED
        if isinstance(self.error, FleetForgeError):
            return FleetTaskFailureKind.INTERNAL
        return FleetTaskFailureKind.TRANSIENT  # the connection broke or timed out

    def _recorded(self, count: int) -> None:
        self.sink.ack(count)
        self.delivered += count

    def _stop(self, envelope: AgentRunEnvelope, exc: BaseException, *, lost: bool = False) -> None:
        if self.problem is not None:
            return  # stopped already (aborted): the first reason stands
        self.error = exc
        self.lost = lost
        written = self.sink.written
        self.problem = (
            f"envelope {describe(envelope)} could not be delivered "
            f"({type(exc).__name__}: {exc}); {self.delivered} of {written} envelopes "
            "were recorded"
        )
        if self.on_stop is not None:
            self.on_stop()


# ── the courier ─────────────────────────────────────────────────────────────────────────────


@dataclass(eq=False)
class _Receipt:
    """A finished task's success receipt, waiting for its call."""

    outbox: Outbox
    output: Any
    usage: FleetUsage | None
    artifacts: list[FleetArtifactRef]
    signature: FleetReceiptSignature | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    receipt: FleetReceipt | None = None
    error: BaseException | None = None
    alone: bool = False
    """The fleet refused the item (or the call, before recording anything): single calls will
    say which envelope or whether the receipt itself."""


Reserve = Callable[[int], int]
"""Given how many receipts a call carries, how many tasks to lease with them (reserved)."""
Leased = Callable[[list[FleetInboxEntry], int], None]
"""Tasks leased with receipts, and how many were reserved for them."""


class Courier:
    """Carries the envelopes and success receipts of a worker's tasks to the fleet, several
    tasks' per call, one call at a time (see the module doc)."""

    def __init__(
        self,
        calls: WorkerCalls,
        *,
        window: float = BATCH_WINDOW,
        post_timeout: float = POST_TIMEOUT,
        busy: Callable[[], int] | None = None,
        reserve: Reserve | None = None,
        leased: Leased | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        self.calls = calls
        self.window = window
        self.post_timeout = post_timeout
        self.lease_seconds = lease_seconds
        self._busy = busy
        self._reserve = reserve
        self._leased = leased
        self.running = False
        self.waiting = 0
        """Tasks waiting for a call of this courier (a Worker counts the others as busy)."""
        self._live: dict[Outbox, None] = {}
        self._asked: dict[Outbox, None] = {}
        self._receipts: list[_Receipt] = []
        self._backlog: dict[Outbox, None] = {}
        self._wake: anyio.Event | None = None
        self._live_due = math.inf
        """When the next live delivery is due (``anyio.current_time()``), inf when idle."""
        self._round_done: anyio.Event | None = None

    # what tasks ask for

    def watch(self, outbox: Outbox, on_stop: Callable[[], None] | None = None) -> None:
        """Deliver ``outbox`` live (every ``DELIVER_EVERY``) until :meth:`unwatch`;
        ``on_stop`` is called if its delivery stops meanwhile."""
        outbox.on_stop = on_stop
        if not self._live:
            self.nudge()  # an idle courier sleeps until told: start the live deliveries
        self._live[outbox] = None

    def unwatch(self, outbox: Outbox) -> None:
        outbox.on_stop = None
        self._live.pop(outbox, None)

    def nudge(self) -> None:
        """Something changed that may end the window (a task stopped working)."""
        if self._wake is not None:
            self._wake.set()

    async def flush(self, outbox: Outbox) -> None:
        """Send what ``outbox`` has written (in the next call, or now when not running)."""
        if not self.running:
            await self._post([outbox], inline=True)
            return
        assert self._round_done is not None
        done = self._round_done  # the round after this one has begun takes it
        self._asked[outbox] = None
        self.waiting += 1
        try:
            self.nudge()
            await done.wait()
        finally:
            self.waiting -= 1

    async def complete(
        self,
        outbox: Outbox,
        output: Any,
        *,
        usage: FleetUsage | None = None,
        artifacts: Sequence[FleetArtifactRef] = (),
        signature: FleetReceiptSignature | None = None,
    ) -> FleetReceipt:
        """Post ``outbox``'s remaining envelopes and then the task's success receipt, with
        other tasks' receipts (and the next leases) when running; returns the scored receipt,
        or raises what ``complete_task`` would (``outbox.stopped`` says when the envelopes
        could not all be delivered)."""
        request = _Receipt(outbox, output, usage, list(artifacts), signature)
        if self.running:
            self._receipts.append(request)
            self.waiting += 1
            try:
                self.nudge()
                await request.done.wait()
            finally:
                self.waiting -= 1
        else:
            await self._complete([request])
        if request.receipt is not None:
            return request.receipt
        error = request.error or InternalError("the receipt was not posted")
        if not request.alone:
            raise error
        # what single calls would have done: every envelope first, then the receipt alone
        if not await outbox.deliver_singly():
            raise outbox.error or error
        client = self.calls.client
        receipt: FleetReceipt = await client.complete_task(
            outbox.task_id, outbox.fencing_token, output, usage=usage, artifacts=list(artifacts),
            worker_id=self.calls.worker_id,
        )  # fmt: skip
        return receipt

    # the loop

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled (a Worker runs this beside its tasks)."""
        self._wake = anyio.Event()
        self._round_done = anyio.Event()
        self.running = True
        task_status.started()
        try:
            while True:
                await self._gather()
                await self._round()
        finally:
            self.running = False
            self._round_done.set()
            for request in self._receipts:
                request.error = InternalError("the worker stopped before the receipt was posted")
                request.done.set()

    async def _gather(self) -> None:
        """Wait for something to send: a receipt or an explicit delivery (then up to ``window``
        for other tasks still working to join), or the next live delivery, ``DELIVER_EVERY``
        after the last round or after the first task began to be watched. Other wake-ups (a
        task started or stopped) do not make a round of their own: a task's first envelopes
        wait for the cadence instead of costing a call (and a thread hop) on their own."""
        assert self._wake is not None
        while not (self._receipts or self._asked):
            if not self._live:
                self._live_due = math.inf  # idle: sleep until told
            elif self._live_due == math.inf:
                self._live_due = anyio.current_time() + DELIVER_EVERY
            with anyio.CancelScope(deadline=self._live_due):
                await self._wake.wait()
            woken, self._wake = self._wake.is_set(), anyio.Event()
            if not woken and self._live:
                return  # the live delivery is due
        if self.window <= 0:
            return
        with anyio.move_on_after(self.window):
            while self._busy is not None and self._busy() > 0:
                await self._wake.wait()
                self._wake = anyio.Event()

    async def _round(self) -> None:
        assert self._round_done is not None
        done, self._round_done = self._round_done, anyio.Event()
        self._live_due = math.inf  # the next live delivery is DELIVER_EVERY after this round
        asked, self._asked = self._asked, {}
        receipts, self._receipts = self._receipts, []
        try:
            sending = {**self._live, **asked, **self._backlog}
            self._backlog = {}
            for request in receipts:  # a long backlog goes ahead of its receipt
                if len(request.outbox.sink) > CARRY:
                    sending[request.outbox] = None
            outboxes = [o for o in sending if o.problem is None and len(o.sink)]
            if outboxes:
                await self._post(outboxes)
            if receipts:
                await self._complete(receipts)
        except Exception as exc:  # a bug here must not leave tasks waiting forever
            log.exception("delivery failed (%s: %s)", type(exc).__name__, exc)
            for request in receipts:
                if not request.done.is_set():
                    if request in self._receipts:
                        self._receipts.remove(request)  # deferred to the next call: not anymore
                    request.error = exc
                    request.done.set()
        finally:
            done.set()

    # the calls

    async def call(self, method: Callable[..., Any], *args: Any, owner: Outbox | None = None,
                   **kwargs: Any) -> Any:  # fmt: skip
        """``method(*args, **kwargs)`` within ``post_timeout`` (TimeoutError). With ``owner``
        (a call for its envelopes only, made in its task): shielded from that task's
        cancellation, cut only by ``owner.abort()``."""
        with anyio.CancelScope(shield=owner is not None) as scope:
            scope.deadline = anyio.current_time() + self.post_timeout
            if owner is not None:
                owner._in_flight = scope
            try:
                return await method(*args, **kwargs)
            finally:
                if owner is not None:
                    owner._in_flight = None
        if owner is not None and owner.problem is not None:
            raise _Aborted(owner.problem)
        raise TimeoutError(f"the fleet did not answer in {self.post_timeout:g}s")

    async def _post(self, outboxes: list[Outbox], *, inline: bool = False) -> None:
        """One ``post_events`` call with the oldest envelopes of each outbox."""
        items: list[tuple[str, int, Any]] = []
        taken: list[tuple[Outbox, list[AgentRunEnvelope]]] = []
        room, size_left = MAX_ITEMS, CALL_BYTES
        share = max(MAX_ITEMS // len(outboxes), 16)
        for outbox in outboxes:
            if room <= 0:
                break
            chosen: list[AgentRunEnvelope] = []
            for envelope in outbox.sink.peek_many(min(share, room)):
                try:
                    item, size = self.calls.wire(envelope)
                except ContractError as exc:  # never sent: the fleet would refuse it
                    if not chosen:
                        outbox._stop(envelope, exc)
                    break
                if items and size > size_left:
                    break
                chosen.append(envelope)
                items.append((outbox.task_id, outbox.fencing_token, item))
                room, size_left = room - 1, size_left - size
                if not outbox.validated or _checked_by_fleet(envelope):
                    break  # the fleet may refuse it: the last of this task in the call
            if chosen:
                taken.append((outbox, chosen))
        if not items:
            return
        owner = taken[0][0] if inline else None
        try:
            result: PostedEvents = await self.call(self.calls.post_events, items, owner=owner)
        except ContractError:  # refused as a whole, nothing recorded: one envelope per call
            for outbox, chosen in taken:
                await outbox._post_singly(inline=inline, limit=len(chosen))
            return
        except Exception as exc:  # whether it was recorded is unknown: stop there
            for outbox, chosen in taken:
                outbox._stop(chosen[0], exc, lost=isinstance(exc, LOST))
            return
        failures = {f.index: f for f in result.failures}
        index = 0
        for outbox, chosen in taken:
            for offset, envelope in enumerate(chosen):
                failure = failures.get(index + offset)
                if failure is not None:
                    outbox._recorded(offset)
                    error = error_from_dict(failure.error)
                    outbox._stop(envelope, error, lost=isinstance(error, LOST))
                    break
            else:
                outbox._recorded(len(chosen))
            index += len(chosen)

    async def _complete(self, requests: list[_Receipt]) -> None:
        """One ``complete_tasks`` call: each receipt after its task's remaining envelopes."""
        items: list[_Completion] = []
        sent: list[tuple[_Receipt, list[AgentRunEnvelope]]] = []
        size_left = CALL_BYTES
        for request in requests:
            outbox = request.outbox
            if outbox.problem is not None:  # its backlog could not be delivered
                request.error = outbox.error or InternalError(outbox.problem)
                request.done.set()
                continue
            carried = outbox.sink.peek_many(CARRY + 1)
            if len(carried) > CARRY:  # still a long backlog: the next round posts more first
                self._receipts.append(request)
                continue
            try:
                wires = [self.calls.wire(e) for e in carried]
                output = request.output
                if self.calls.engine() is None:  # over MCP a bad one refuses the whole call
                    output = check_json_value(output, pointer="/output", what="receipt")
            except ContractError as exc:
                request.error, request.alone = exc, True
                request.done.set()
                continue
            size = sum(n for _, n in wires)
            if size > size_left:  # over MCP: the call would be too large
                self._receipts.append(request)  # in the next call
                if size > CALL_BYTES:
                    self._backlog[outbox] = None  # its envelopes go ahead with post_events
                continue
            size_left -= size
            wired = [w for w, _ in wires]
            task = (outbox.task_id, outbox.fencing_token)
            items.append(
                _Completion(
                    *task, output, request.usage, request.artifacts, wired,
                    worker_signature=request.signature,
                )
            )  # fmt: skip
            sent.append((request, carried))
        if not items:
            return
        reserved = self._reserve(len(items)) if self._reserve is not None else 0
        leased: list[FleetInboxEntry] = []
        try:
            result: CompletedTasks = await self.call(
                self.calls.complete_tasks, items, lease_next=reserved,
                lease_seconds=self.lease_seconds,
            )  # fmt: skip
        except ContractError as exc:  # refused as a whole, nothing recorded: one by one
            for request, _ in sent:
                request.error, request.alone = exc, True
        except Exception as exc:  # whether it was recorded is unknown: no receipt over a hole
            for request, carried in sent:
                request.error = exc
                if carried:
                    request.outbox._stop(carried[0], exc, lost=isinstance(exc, LOST))
        else:
            leased = result.leased
            failures = {f.index: error_from_dict(f.error) for f in result.failures}
            for index, (request, carried) in enumerate(sent):
                receipt = result.receipts[index]
                if receipt is not None:
                    request.outbox._recorded(len(carried))
                    request.receipt = receipt
                    continue
                error = failures.get(index) or InternalError("the fleet gave no receipt")
                request.error, request.alone = error, not isinstance(error, LOST)
        finally:
            if self._leased is not None:
                self._leased(leased, reserved)
            for request, _ in sent:
                request.done.set()
