"""Batch operations of workers: many receipts, heartbeats or envelopes in one transaction.

A worker running several tasks at once (``Worker(concurrency=N)``) sends what it has within a
few milliseconds as one call, so the fleet writes (and fsyncs) once for all of them; a receipt
can carry the task's last envelopes and the worker's next lease request. Each item is all or
nothing: an item that fails (a stale lease, a bad envelope) is listed in ``failures`` with the
error a single call would have raised, and the others take effect.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from fleetforge.contracts import FleetArtifactRef, FleetReceiptSignature, FleetUsage
from fleetforge.operations._base import Args, Call, Operation
from fleetforge.operations.results import CompletedTasks, HeartbeatResults, PostedEvents
from fleetforge.operations.work import FencingToken, TaskId, WorkerId

__all__ = [
    "COMPLETE_TASKS",
    "HEARTBEAT_MANY",
    "POST_EVENTS",
    "LeaseItem",
    "TaskCompletion",
    "TaskEnvelope",
]

MAX_ITEMS = 500


class LeaseItem(BaseModel):
    """A lease held: its task and fencing token."""

    task_id: TaskId
    fencing_token: FencingToken


class TaskEnvelope(LeaseItem):
    """An agent-run envelope of a leased task."""

    envelope: dict[str, Any] = Field(
        description="An agent-run envelope (schema: fleet://schemas/agent_run)."
    )


class TaskCompletion(LeaseItem):
    """A success receipt for a leased task, with the envelopes that go before it."""

    output: Any = Field(None, description="The task's result (any JSON value).")
    usage: FleetUsage | None = Field(None, description="Tokens, cost and model used, if known.")
    artifacts: list[FleetArtifactRef] = Field(
        default_factory=list, description="Artifacts produced (from fleet_put_artifact)."
    )
    receipt_id: str | None = Field(
        None, description="Your receipt id; by default derived from task and fencing token."
    )
    envelopes: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The task's envelopes not posted yet, recorded before the receipt.",
    )
    worker_signature: FleetReceiptSignature | None = Field(
        None, description="The worker's signature of the receipt (require_signed_receipts)."
    )


class CompleteTasksArgs(Args):
    worker_id: WorkerId = None
    items: list[TaskCompletion] = Field(
        min_length=1, max_length=MAX_ITEMS, description="Receipts to post, in order."
    )
    lease_next: int = Field(
        0,
        ge=0,
        le=100,
        description="Also lease up to this many new tasks for the worker, in the same "
        "transaction (the slots these receipts free).",
    )
    lease_seconds: float = Field(30.0, gt=0, le=3600, description="Length of those leases.")


def _complete(call: Call, a: CompleteTasksArgs) -> CompletedTasks:
    worker = call.caller.worker_id if call.caller is not None else None
    return call.fleet.complete_tasks(
        a.items,
        worker_id=worker or a.worker_id,
        lease_next=a.lease_next,
        lease_seconds=a.lease_seconds,
        caller=call.caller,
    )


COMPLETE_TASKS = Operation(
    "complete_tasks",
    CompleteTasksArgs,
    CompletedTasks,
    "work",
    "Post receipts",
    """Post receipts for several leased tasks at once (each with the envelopes still to go
before it) and, with lease_next, lease the next tasks in the same transaction. receipts[i] is
items[i]'s scored receipt, or null when it failed: failures[] names the item and the error
(e.g. LeaseLostError: that task's lease is gone). Repeating a call has one effect.""",
    _complete,
    idempotent=True,
    as_worker=True,
    cli="worker",
)


class HeartbeatManyArgs(Args):
    worker_id: WorkerId = None
    items: list[LeaseItem] = Field(
        min_length=1, max_length=MAX_ITEMS, description="Leases to keep."
    )
    lease_seconds: float = Field(30.0, gt=0, le=3600, description="Lease length from now.")


HEARTBEAT_MANY = Operation(
    "heartbeat_many",
    HeartbeatManyArgs,
    HeartbeatResults,
    "work",
    "Heartbeat leases",
    """Keep several leases at once. leases[i] is items[i]'s lease as it stands (extended when
less than half of lease_seconds was left), or null when it is lost: failures[] says why; stop
working on those tasks.""",
    lambda call, a: call.fleet.heartbeat_many(
        a.items, lease_seconds=a.lease_seconds, caller=call.caller
    ),
    as_worker=True,
    cli="worker",
)


class PostEventsArgs(Args):
    worker_id: WorkerId = None
    items: list[TaskEnvelope] = Field(
        min_length=1, max_length=MAX_ITEMS, description="Envelopes to record, in order."
    )


POST_EVENTS = Operation(
    "post_events",
    PostEventsArgs,
    PostedEvents,
    "work",
    "Post agent events",
    """Record several agent-run envelopes of leased tasks at once, in order. events[i] is
where items[i] was stored, or null when it was refused: failures[] lists those with their
errors (ContractError pointers are inside the envelope).""",
    lambda call, a: call.fleet.post_events(a.items, caller=call.caller),
    as_worker=True,
    cli="worker",
)
