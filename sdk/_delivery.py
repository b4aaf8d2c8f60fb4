"""Delivering one attempt's envelopes to the fleet: in order, each once, none lost.

The adapter writes envelopes into a :class:`~fleetforge.adapter.QueueSink`; an :class:`Outbox`
posts them with ``post_event``. It reads the oldest envelope, posts it, and removes it from the
queue only once the fleet has recorded it, so an envelope is never taken off the queue and then
dropped. A post is shielded from the cancellation of whoever called :meth:`Outbox.deliver` (the
Worker's background task is cancelled when the handler ends): a post in flight always finishes,
within ``post_timeout``, or is cut short by :meth:`Outbox.abort` alone.

Delivery stops at the first envelope the fleet does not record. Either the task is no longer
this worker's (lease lost, run cancelled: ``lost``), or the post failed for another reason
(the fleet refused the envelope, the connection broke, no answer in time): the Worker then fails
the task with :attr:`Outbox.problem` rather than posting a receipt over a hole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

from fleetforge.adapter import QueueSink
from fleetforge.contracts import FleetTaskFailureKind
from fleetforge.contracts.envelope import AgentRunEnvelope, EmitEnvelope
from fleetforge.errors import (
    AlreadyCompletedError,
    AuthError,
    ContractError,
    FleetForgeError,
    LeaseLostError,
    NotFoundError,
    RunCancelledError,
)

__all__ = ["DELIVER_EVERY", "LOST", "Outbox", "describe"]

LOST = (LeaseLostError, RunCancelledError, AlreadyCompletedError, NotFoundError)
"""What the fleet answers when the task is no longer this worker's to report on."""

POST_TIMEOUT = 60.0
BATCH = 64  # envelopes per thread hop in process: a batch cannot be cut short, so keep it small
DELIVER_EVERY = 0.02
"""How often envelopes are posted while a handler works (they reach the fleet live)."""


class _Failed(Exception):
    def __init__(self, envelope: AgentRunEnvelope, error: Exception) -> None:
        super().__init__(str(error))
        self.envelope = envelope
        self.error = error


def _in_process_post(client: Any) -> Callable[[str, int, AgentRunEnvelope], Any] | None:
    """The in-process fleet's own (synchronous) ``post_event``, for a local FleetClient: posting
    a batch of envelopes in one worker thread saves a thread hop per envelope (the same calls
    the client would make). None otherwise: each envelope is then one awaited call."""
    from fleetforge.client import FleetClient

    transport = getattr(client, "transport", None)
    if getattr(transport, "kind", None) != "local":
        return None
    if getattr(type(client), "post_event", None) is not FleetClient.post_event:
        return None  # a client of its own making: its post_event is the one to call
    fleet = getattr(transport, "fleet", None)  # None until open: then post_event will say so
    post = getattr(getattr(fleet, "sync", None), "post_event", None)
    return post if callable(post) else None


def describe(envelope: AgentRunEnvelope) -> str:
    """``#SEQ (kind)``, e.g. ``#3 (emit:tool_call)``, for messages."""
    kind = f"emit:{envelope.event}" if isinstance(envelope, EmitEnvelope) else envelope.kind
    return f"#{envelope.seq} ({kind})"


class Outbox:
    """Posts the envelopes of one leased task, in the order they were written."""

    def __init__(
        self,
        client: Any,
        task_id: str,
        fencing_token: int,
        sink: QueueSink,
        *,
        worker_id: str | None = None,
        post_timeout: float = POST_TIMEOUT,
    ) -> None:
        self.client = client
        self.worker_id = worker_id
        self.task_id = task_id
        self.fencing_token = fencing_token
        self.sink = sink
        self.post_timeout = post_timeout
        self.delivered = 0
        self.lost = False
        self.error: BaseException | None = None
        self.problem: str | None = None
        self._lock = anyio.Lock()
        self._in_flight: anyio.CancelScope | None = None

    @property
    def stopped(self) -> bool:
        return self.problem is not None

    async def deliver(self) -> bool:
        """Post everything written so far; False once delivery has stopped (see ``problem``)."""
        async with self._lock:
            post_here = _in_process_post(self.client)
            while self.problem is None:
                envelope = self.sink.peek()
                if envelope is None:
                    return True
                with anyio.CancelScope(shield=True) as scope:
                    scope.deadline = anyio.current_time() + self.post_timeout
                    self._in_flight = scope
                    try:
                        if post_here is not None:  # a batch per thread hop, each recorded
                            await anyio.to_thread.run_sync(self._post_batch, post_here)
                        else:
                            await self.client.post_event(
                                self.task_id, self.fencing_token, envelope, worker_id=self.worker_id
                            )
                            self.sink.ack()
                            self.delivered += 1
                    except _Failed as failed:
                        lost = isinstance(failed.error, LOST)
                        self._stop(failed.envelope, failed.error, lost=lost)
                    except LOST as exc:
                        self._stop(envelope, exc, lost=True)
                    except Exception as exc:
                        self._stop(envelope, exc)
                    finally:
                        self._in_flight = None
                if scope.cancelled_caught and self.problem is None:
                    timeout = TimeoutError(f"the fleet did not answer in {self.post_timeout:g}s")
                    self._stop(envelope, timeout)
            return False

    def _post_batch(self, post: Callable[[str, int, AgentRunEnvelope], Any]) -> None:
        """In a worker thread: post up to BATCH envelopes, oldest first, each removed from the
        queue once recorded (one thread hop for many posts: they are cheap in process)."""
        for _ in range(BATCH):
            envelope = self.sink.peek()
            if envelope is None or self.problem is not None:
                return
            try:
                post(self.task_id, self.fencing_token, envelope)
            except Exception as exc:
                raise _Failed(envelope, exc) from exc
            self.sink.ack()
            self.delivered += 1

    async def deliver_until(self, done: anyio.Event, every: float = DELIVER_EVERY) -> None:
        """Deliver what was written every ``every`` seconds until ``done`` is set (then the
        caller delivers the rest) or delivery stops."""
        while not done.is_set():
            await anyio.sleep(every)
            if not await self.deliver():
                return

    def abort(self, reason: str) -> None:
        """Stop delivering (the task is being released or was lost); cut a post in flight."""
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

    def _stop(self, envelope: AgentRunEnvelope, exc: BaseException, *, lost: bool = False) -> None:
        self.error = exc
        self.lost = lost
        written = self.sink.written
        self.problem = (
            f"envelope {describe(envelope)} could not be delivered "
            f"({type(exc).__name__}: {exc}); {self.delivered} of {written} envelopes "
            "were recorded"
        )
