"""Operations of workers: register, lease, and act on the leases they hold.

Every operation here but ``list_workers`` acts as a worker (``as_worker``): over stdio the
caller names its ``worker_id``, over HTTP the token does, and only the worker holding a lease
may act on it (docs/security.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from fleetforge.contracts import (
    FleetArtifactRef,
    FleetLease,
    FleetReceipt,
    FleetTaskFailureKind,
    FleetTrustLevel,
    FleetUsage,
    FleetWorkerAuth,
    FleetWorkerSpec,
    Run,
)
from fleetforge.operations._base import Args, Call, Operation
from fleetforge.operations.results import (
    FailResult,
    LeasedTasks,
    PostedEvent,
    WorkerList,
    WorkerRecord,
)

__all__ = [
    "COMPLETE_TASK",
    "FAIL_TASK",
    "HEARTBEAT",
    "LEASE_TASK",
    "LIST_WORKERS",
    "PAUSE_TASK",
    "POST_EVENT",
    "REGISTER_WORKER",
    "RELEASE_TASK",
    "FencingToken",
    "TaskId",
    "WorkerId",
]

WorkerId = Annotated[
    str | None,
    Field(
        description="Worker acting. Over HTTP a token bound to a worker supplies it (omit it); "
        "over stdio pass the id you registered."
    ),
]
TaskId = Annotated[str, Field(description="Id of the leased task (`task.task_id` of the lease).")]
FencingToken = Annotated[
    int,
    Field(
        ge=1, description="Fencing token of your lease (`lease.fencing_token`); stale = refused."
    ),
]


class _OnLease(Args):
    """Arguments of a call on a lease."""

    task_id: TaskId
    fencing_token: FencingToken
    worker_id: WorkerId = None


# ── workers ─────────────────────────────────────────────────────────────────────────────────


class RegisterWorkerArgs(Args):
    worker_id: WorkerId = None
    role: str | None = Field(None, description="Role served; tasks naming a role need it.")
    tools: list[str] = Field(
        default_factory=list,
        description="Tool patterns this worker can call, e.g. ['workspace.*'].",
    )
    trust_level: FleetTrustLevel = Field(
        FleetTrustLevel.SANDBOXED, description="Trust level of where this worker runs."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels task profiles may match."
    )
    name: str | None = Field(None, description="Name for people.")
    frameworks: list[str] = Field(
        default_factory=list, description="Agent frameworks it runs (langgraph, autogen, ...)."
    )
    max_concurrency: int = Field(1, ge=1, le=1024, description="Tasks it works on at once.")
    auth: FleetWorkerAuth | None = Field(
        None,
        description="How it authenticates; an `ed25519` key lets it sign receipts (over HTTP "
        "it must be the key registered with its token).",
    )


def _register(call: Call, a: RegisterWorkerArgs) -> FleetWorkerSpec:
    spec: dict[str, Any] = a.model_dump(exclude={"worker_id", "auth"}) | {
        "worker_id": call.caller.worker_id if call.caller is not None else a.worker_id
    }
    if a.auth is not None:
        spec["auth"] = a.auth.model_dump(mode="json")
    if call.client is not None:
        spec["host"] = {"kind": "mcp_client", **call.client}
        spec["frameworks"] = a.frameworks or ["mcp"]
    return call.fleet.register_worker(spec, caller=call.caller)


REGISTER_WORKER = Operation(
    "register_worker",
    RegisterWorkerArgs,
    FleetWorkerSpec,
    "work",
    "Register a worker",
    """Register (or re-register) a worker and what it can do. Call once before leasing; tasks
are matched on role, tools, trust level and labels.""",
    _register,
    idempotent=True,
    as_worker=True,
    cli="work, worker",
)


class ListWorkersArgs(Args):
    pass


def _workers(call: Call, a: ListWorkersArgs) -> WorkerList:
    return WorkerList(
        workers=[
            WorkerRecord(spec=w.spec, status=w.status, last_seen_at=w.last_seen_at)
            for w in call.fleet.list_workers()
        ]
    )


LIST_WORKERS = Operation(
    "list_workers",
    ListWorkersArgs,
    WorkerList,
    "read",
    "List workers",
    "Every registered worker with what it declared, its status and when it was last seen.",
    _workers,
    read_only=True,
    cli="workers",
)


# ── leases ──────────────────────────────────────────────────────────────────────────────────


class LeaseTaskArgs(Args):
    worker_id: WorkerId = None
    lease_seconds: float = Field(
        30.0, gt=0, le=3600, description="Lease length; heartbeat before it runs out."
    )
    wait_seconds: float = Field(
        0.0,
        ge=0,
        le=300,
        description="Wait up to this long for a task (long poll); progress notifications are "
        "sent while waiting.",
    )
    max_tasks: int = Field(1, ge=1, le=100, description="Lease up to this many tasks at once.")


def _lease(call: Call, a: LeaseTaskArgs) -> LeasedTasks:
    worker = call.caller.worker_id if call.caller is not None else a.worker_id
    tasks = call.fleet.lease_task(
        worker or "",
        lease_seconds=a.lease_seconds,
        wait_seconds=a.wait_seconds,
        max_tasks=a.max_tasks,
        caller=call.caller,
    )
    return LeasedTasks(tasks=tasks)


LEASE_TASK = Operation(
    "lease_task",
    LeaseTaskArgs,
    LeasedTasks,
    "work",
    "Lease tasks",
    """Lease up to max_tasks tasks this worker can do. Each entry has the task (inputs, type,
scorer, budget), the attempt and the lease (fencing_token, expires_at). Work on it, call
fleet_heartbeat before expires_at, then fleet_post_receipt or fleet_fail_task. Returns an empty
list when nothing came within wait_seconds.""",
    _lease,
    as_worker=True,
    cli="work, worker",
)


class HeartbeatArgs(_OnLease):
    lease_seconds: float = Field(30.0, gt=0, le=3600, description="New lease length from now.")


HEARTBEAT = Operation(
    "heartbeat",
    HeartbeatArgs,
    FleetLease,
    "work",
    "Heartbeat a lease",
    """Extend your lease on a task; returns the lease with its new expires_at. LeaseLostError
(stale token, expired, or wall-time budget spent) or RunCancelledError mean: stop working on
this task and do not post a receipt.""",
    lambda call, a: call.fleet.heartbeat(
        a.task_id, a.fencing_token, lease_seconds=a.lease_seconds, caller=call.caller
    ),
    idempotent=True,
    as_worker=True,
    cli="work, worker",
)


class PostEventArgs(_OnLease):
    envelope: dict[str, Any] = Field(
        description="An agent-run envelope (schema: fleet://schemas/agent_run): kind "
        "start|emit|checkpoint|complete|error, seq, run/step/task ids, adapter, ..."
    )


def _post_event(call: Call, a: PostEventArgs) -> PostedEvent:
    event = call.fleet.post_event(a.task_id, a.fencing_token, a.envelope, caller=call.caller)
    return PostedEvent(seq=event.seq or 0, event_id=event.event_id)


POST_EVENT = Operation(
    "post_event",
    PostEventArgs,
    PostedEvent,
    "work",
    "Post an agent event",
    """Record progress of a leased task as an agent-run envelope (messages, tool calls,
checkpoints). ContractError lists envelope problems as JSON pointers.""",
    _post_event,
    as_worker=True,
    cli="work, worker",
)


class CompleteTaskArgs(_OnLease):
    output: Any = Field(description="The task's result (any JSON value).")
    usage: FleetUsage | None = Field(None, description="Tokens, cost and model used, if known.")
    artifacts: list[FleetArtifactRef] = Field(
        default_factory=list, description="Artifacts produced (from fleet_put_artifact)."
    )
    receipt_id: str | None = Field(
        None,
        description="Your receipt id; by default one is derived from the task and fencing "
        "token, so repeating the call has one effect. Unique within its task.",
    )


COMPLETE_TASK = Operation(
    "complete_task",
    CompleteTaskArgs,
    FleetReceipt,
    "work",
    "Post a receipt",
    """Report the output of a leased task. The fleet scores it with the step's scorer: status
'accepted' completes the step and schedules what follows; 'rejected' comes with score.reason
and the attempt is retried or failed. Posting again returns the first verdict. LeaseLostError:
your lease is gone; the output was not recorded.""",
    lambda call, a: call.fleet.complete_task(
        a.task_id,
        a.fencing_token,
        a.output,
        usage=a.usage,
        artifacts=a.artifacts,
        receipt_id=a.receipt_id,
        caller=call.caller,
    ),
    idempotent=True,
    as_worker=True,
    tool="fleet_post_receipt",
    cli="work, worker",
)


class FailTaskArgs(_OnLease):
    kind: FleetTaskFailureKind = Field(
        description="Failure kind: transient and timeout are retried by default; others fail "
        "the step unless its retry policy lists them."
    )
    message: str = Field(description="What went wrong, for people.")


def _fail(call: Call, a: FailTaskArgs) -> FailResult:
    retry = call.fleet.fail_task(a.task_id, a.fencing_token, a.kind, a.message, caller=call.caller)
    return FailResult(task_id=a.task_id, will_retry=retry)


FAIL_TASK = Operation(
    "fail_task",
    FailTaskArgs,
    FailResult,
    "work",
    "Fail a task",
    """Report that your attempt at a leased task failed. will_retry tells whether another
attempt was scheduled (retry policy with backoff) or the step failed for good.""",
    _fail,
    destructive=True,
    as_worker=True,
    cli="work, worker",
)


class ReleaseTaskArgs(_OnLease):
    reason: str = Field("", description="Why, for people (e.g. shutting down).")


def _release(call: Call, a: ReleaseTaskArgs) -> FailResult:
    call.fleet.release_task(a.task_id, a.fencing_token, reason=a.reason, caller=call.caller)
    return FailResult(task_id=a.task_id, will_retry=True)


RELEASE_TASK = Operation(
    "release_task",
    ReleaseTaskArgs,
    FailResult,
    "work",
    "Release a task",
    """Give a leased task back unfinished, e.g. when shutting down: the same attempt goes back
to the inbox for another worker and does not count as a failure.""",
    _release,
    as_worker=True,
    cli="work, worker",
)


class PauseTaskArgs(_OnLease):
    reason: str = Field("", description="What the task needs, for people.")
    waiting_for: list[Any] = Field(
        default_factory=list,
        description="What it waits for as JSON, e.g. the questions it asks.",
    )


PAUSE_TASK = Operation(
    "pause_task",
    PauseTaskArgs,
    Run,
    "work",
    "Pause a task to wait for input",
    """Stop working on a leased task because it needs input (a question for a person, an agent
framework's interrupt). Your lease ends and the run pauses; when someone calls fleet_resume_run
with a value, the task goes back to the inbox and its next lease carries `resume.value`.
Returns the paused run.""",
    lambda call, a: call.fleet.pause_task(
        a.task_id, a.fencing_token, reason=a.reason, waiting_for=a.waiting_for, caller=call.caller
    ),
    as_worker=True,
    cli="worker",
)
