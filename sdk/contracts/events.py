"""Run events (seed 000 `run_event`): the append-only facts every projection is built from.

An event is ``{event_id, type, run_id, at, seq, data}``; ``type`` selects the shape of ``data``.
Worker events (``worker_*``) have no run: their ``run_id`` is null.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from fleetforge.contracts._base import Digest, Identifier, ProtocolModel, Timestamp
from fleetforge.contracts.artifact import Artifact
from fleetforge.contracts.coordination import (
    AgentDeregisteredData,
    AgentRegisteredData,
    CheckpointRecordedData,
    CursorMovedData,
    LockAcquiredData,
    LockEndedData,
    LockRenewedData,
    MessageMarkedData,
    MessageSentData,
    ReservationEndedData,
    ReservationGrantedData,
    ReservationRenewedData,
)
from fleetforge.contracts.envelope import AnyAgentRunEnvelope
from fleetforge.contracts.protocol import (
    FleetAlertEndpoint,
    FleetAlertEventClass,
    FleetArtifactRef,
    FleetReceipt,
    FleetResume,
    FleetRunBudget,
    FleetScore,
    FleetTaskFailureKind,
    FleetTaskSpec,
    FleetTrustLevel,
    FleetUsage,
    FleetWorkerSpec,
    FleetWorkerStatus,
    TraceContext,
)
from fleetforge.contracts.spec import RunSpec

# ── data shapes ──────────────────────────────────────────────────────────────────────────────


class RunSubmittedData(ProtocolModel):
    """A run was accepted."""

    spec: RunSpec = Field(description="The validated spec.")
    spec_digest: Digest = Field(description="Digest of the spec's canonical JSON.")
    idempotency_key: str | None = Field(None, description="Key given at submit, if any.")
    trace: TraceContext | None = Field(
        None, description="The submitter's trace context; every task of the run carries it."
    )


class RunTransitionData(ProtocolModel):
    """A run changed state by someone's hand or the scheduler's."""

    by: str | None = Field(None, description="Who caused it (user, worker, `scheduler`).")
    reason: str = Field("", description="Why, for people.")


class RunPausedData(ProtocolModel):
    """A run paused."""

    reason: Literal["breakpoint", "manual", "approval", "interrupt", "budget"] = Field(
        description=(
            "Why it paused (`interrupt`: a task paused to wait for input; `budget`: the run "
            "went over its budget with `on_exceed: pause`)."
        )
    )
    step_id: Identifier | None = Field(
        None, description="Step it paused before (breakpoint) or in (interrupt), if any."
    )


class ChainHead(ProtocolModel):
    """The signed head of a run's receipt chain, carried by the run's final event."""

    receipts: int = Field(ge=0, description="How many receipts the run's chain holds.")
    head: Digest | None = Field(None, description="Hash of the chain's last receipt, if any.")
    key_id: str = Field(description="Id of the fleet key that signed it.")
    attestation: dict[str, Any] = Field(
        description="DSSE envelope of an in-toto statement over the head (chain-head/v1)."
    )


_CHAIN_HEAD = "The signed head of the receipt chain (absent when trust is off or in older logs)."


class RunCompletedData(ProtocolModel):
    """Every required step completed."""

    outputs: dict[str, Any] = Field(description="Outputs of completed steps, by step id.")
    chain_head: ChainHead | None = Field(None, description=_CHAIN_HEAD)


class RunFailedData(ProtocolModel):
    """A required step failed for good, or a budget was exceeded."""

    reason: str = Field(description="Why the run failed.")
    step_id: Identifier | None = Field(None, description="The step that failed it, if any.")
    kind: FleetTaskFailureKind | None = Field(None, description="Failure kind, if any.")
    chain_head: ChainHead | None = Field(None, description=_CHAIN_HEAD)


class RunCancelledData(RunTransitionData):
    """A run was cancelled."""

    chain_head: ChainHead | None = Field(None, description=_CHAIN_HEAD)


class StepData(ProtocolModel):
    """Something happened to one step."""

    step_id: Identifier = Field(description="The step.")


class StepStartedData(ProtocolModel):
    """A step's first task was leased."""

    step_id: Identifier = Field(description="The step.")
    task_id: Identifier = Field(description="The task that started.")
    attempt: int = Field(ge=1, description="Attempt number.")


class StepCompletedData(ProtocolModel):
    """A step produced its accepted output."""

    step_id: Identifier = Field(description="The step.")
    output: Any = Field(description="The output (a list in item order for map steps).")


class StepFailedData(ProtocolModel):
    """A step failed for good (no attempts left, or a kind that is not retried)."""

    step_id: Identifier = Field(description="The step.")
    kind: FleetTaskFailureKind = Field(description="Failure kind.")
    message: str = Field(description="What went wrong.")


class StepSkippedData(ProtocolModel):
    """A step will not run (an optional parent failed, or the run ended)."""

    step_id: Identifier = Field(description="The step.")
    reason: str = Field(description="Why it was skipped.")


class StepResetData(ProtocolModel):
    """A failed or skipped step goes back to pending (``retry_step``)."""

    step_id: Identifier = Field(description="The step.")
    reason: str = Field("", description="Why, for people.")


class StepApprovedData(ProtocolModel):
    """A person approved a human step."""

    step_id: Identifier = Field(description="The step.")
    by: str | None = Field(None, description="Who approved.")
    comment: str | None = Field(None, description="Their comment; becomes the step's output.")


class TaskEnqueuedData(ProtocolModel):
    """An attempt of a task entered the inbox."""

    entry_id: Identifier = Field(description="Inbox entry of this attempt.")
    attempt: int = Field(ge=1, description="Attempt number.")
    available_at: Timestamp = Field(description="Not leased before this time.")
    task: FleetTaskSpec = Field(description="The task.")
    resume: FleetResume | None = Field(
        None, description="The value a paused task continues with (given to `resume_run`)."
    )


class TaskLeasedData(ProtocolModel):
    """A worker leased a task."""

    task_id: Identifier = Field(description="The task.")
    entry_id: Identifier = Field(description="Inbox entry leased.")
    attempt: int = Field(ge=1, description="Attempt number.")
    worker_id: Identifier = Field(description="The worker.")
    fencing_token: int = Field(ge=1, description="New fencing token (monotonic per task).")
    expires_at: Timestamp = Field(description="When the lease lapses without a heartbeat.")
    step_id: Identifier | None = Field(
        None,
        description="The task's step, which the lease starts (its attempt) when it is not "
        "running yet. Absent in logs before 0.2, which record a `step_started` instead.",
    )
    credential: str | None = Field(
        None,
        description="Id of the bearer token that took the lease when that token names no "
        "worker: only calls with the same token may act on the lease.",
    )
    capability_id: str | None = Field(
        None,
        pattern=r"^cap_[0-9a-f]{32}$",
        description="Id of the capability token minted for this lease (the token itself is "
        "returned with the lease, never logged).",
    )
    policy: dict[str, Any] | None = Field(
        None,
        description="The Cedar policy decision that allowed the lease, when policies are "
        "configured: `decision`, `policy_digest` (sha256 of the policy set), `reasons`.",
    )


class TaskHeartbeatData(ProtocolModel):
    """A worker extended its lease."""

    task_id: Identifier = Field(description="The task.")
    worker_id: Identifier = Field(description="The worker.")
    fencing_token: int = Field(ge=1, description="The lease's fencing token.")
    expires_at: Timestamp = Field(description="New expiry.")


class TaskLeaseEndedData(ProtocolModel):
    """A lease ended without a result: it expired, or the worker released it."""

    task_id: Identifier = Field(description="The task.")
    worker_id: Identifier = Field(description="The worker that held it.")
    fencing_token: int = Field(ge=1, description="The lease's fencing token.")
    reason: str = Field("", description="Why, for people.")


class TaskReleasedData(TaskLeaseEndedData):
    """A lease was given back unfinished: by its worker, or by an admin."""

    by: str | None = Field(
        None, description="Who released it when not the worker holding it (an admin)."
    )


class TaskPausedData(ProtocolModel):
    """A worker stopped a task to wait for input (e.g. a LangGraph ``interrupt()``)."""

    task_id: Identifier = Field(description="The task.")
    step_id: Identifier = Field(description="Its step.")
    attempt: int = Field(ge=1, description="Attempt number.")
    worker_id: Identifier = Field(description="The worker that held it.")
    fencing_token: int = Field(ge=1, description="The lease's fencing token.")
    reason: str = Field("", description="Why, for people.")
    waiting_for: list[Any] = Field(
        default_factory=list, description="What the task waits for, e.g. the interrupt values."
    )


class TaskFailedData(ProtocolModel):
    """An attempt failed."""

    task_id: Identifier = Field(description="The task.")
    attempt: int = Field(ge=1, description="Attempt number.")
    worker_id: Identifier | None = Field(None, description="The worker, if one held it.")
    kind: FleetTaskFailureKind = Field(description="Failure kind.")
    message: str = Field(description="What went wrong.")
    retryable: bool = Field(description="Whether the retry policy allows another attempt.")


class TaskRetryScheduledData(ProtocolModel):
    """Another attempt will be enqueued after a backoff."""

    task_id: Identifier = Field(description="The task.")
    step_id: Identifier = Field(description="Its step.")
    attempt: int = Field(ge=2, description="The coming attempt's number.")
    backoff_s: float = Field(ge=0, description="Delay chosen, seconds (with jitter).")
    available_at: Timestamp = Field(description="When the attempt becomes leasable.")


class TaskEventData(ProtocolModel):
    """An agent adapter reported an envelope."""

    task_id: Identifier = Field(description="The task.")
    envelope: AnyAgentRunEnvelope = Field(description="The adapter envelope.")


class ReceiptPostedData(ProtocolModel):
    """A worker posted a receipt (logs before 0.2; now ``receipt_recorded``)."""

    receipt: FleetReceipt = Field(description="The receipt as received.")


class ReceiptVerdictData(ProtocolModel):
    """The fleet accepted or rejected a receipt (logs before 0.2; now ``receipt_recorded``)."""

    receipt_id: Identifier = Field(description="The receipt.")
    task_id: Identifier = Field(description="Its task.")
    score: FleetScore = Field(description="The scorer's verdict.")
    hash: Digest | None = Field(None, description="Chain hash of the receipt.")


class ReceiptRecordedData(ProtocolModel):
    """A worker posted a receipt and the fleet judged it, in one event: the receipt as chained
    (``prev_hash``, ``hash``, ``posted_at``) with its verdict (``status``, ``score``)."""

    receipt: FleetReceipt = Field(description="The receipt with its status and score.")
    attestation: dict[str, Any] | None = Field(
        None,
        description=(
            "The fleet's signed attestation of the receipt: a DSSE envelope (payloadType, "
            "payload, signatures) of an in-toto Statement v1 (absent when trust is off)."
        ),
    )


class BudgetExceededData(ProtocolModel):
    """A task or run went over a budget."""

    budget: Literal["tokens", "cost", "wall_time"] = Field(description="Which budget.")
    limit: float = Field(description="The limit.")
    used: float = Field(description="What was used.")
    step_id: Identifier | None = Field(None, description="The step, if any.")
    task_id: Identifier | None = Field(None, description="The task, if any.")
    scope: Literal["attempt", "run"] = Field(
        "attempt",
        description="Whose budget: the attempt's (the step's `budget`) or the run's (`budget`).",
    )
    on_exceed: Literal["fail", "pause"] | None = Field(
        None, description="For a run's budget: what going over does to the run."
    )


class UsageReportedData(ProtocolModel):
    """Usage of a running attempt arrived (in an envelope or its receipt): the attempt's usage
    so far as the fleet counts it, and the run's totals with it."""

    task_id: Identifier = Field(description="The task.")
    step_id: Identifier = Field(description="Its step.")
    attempt: int = Field(ge=1, description="The attempt.")
    fencing_token: int = Field(ge=0, description="The lease the attempt ran under.")
    usage: FleetUsage = Field(
        description=(
            "The attempt's usage so far: the largest count reported for each field; "
            "`cost_usd` as reported, else priced from `prices.toml`, else null (unknown)."
        )
    )
    cost_source: Literal["worker", "prices"] | None = Field(
        None, description="Where `usage.cost_usd` came from (null: unknown)."
    )
    run_tokens: int = Field(ge=0, description="Tokens of every attempt of the run, with this.")
    run_cost_usd: float = Field(ge=0, description="Known cost of every attempt of the run.")
    run_cost_unknown: int = Field(
        ge=0, description="Attempts of the run that used tokens at a cost the fleet cannot know."
    )


class RunBudgetChangedData(ProtocolModel):
    """A run's budget was set anew (``resume_run(budget=...)``)."""

    budget: FleetRunBudget | None = Field(description="The budget from now on (null: none).")
    previous: FleetRunBudget | None = Field(None, description="The budget before.")
    started_at: Timestamp | None = Field(
        None, description="When the run started (its wall time counts from there)."
    )
    by: str | None = Field(None, description="Who changed it.")


class CheckpointSavedData(ProtocolModel):
    """An agent saved a checkpoint."""

    task_id: Identifier = Field(description="The task.")
    checkpoint_id: str = Field(min_length=1, description="Framework checkpoint id.")
    state_digest: Digest = Field(description="Digest of the state.")
    artifact: FleetArtifactRef | None = Field(None, description="Stored state, if stored.")


class ArtifactStoredData(ProtocolModel):
    """A blob entered the content store."""

    artifact: Artifact = Field(description="Its metadata.")


class WorkerRegisteredData(ProtocolModel):
    """A worker registered."""

    worker: FleetWorkerSpec = Field(description="Its spec.")


class WorkerHeartbeatData(ProtocolModel):
    """A worker said it is alive."""

    worker_id: Identifier = Field(description="The worker.")
    status: FleetWorkerStatus = Field(description="Its status.")
    task_ids: list[Identifier] = Field(default_factory=list, description="Tasks it holds.")


class WorkerOfflineData(ProtocolModel):
    """A worker stopped or was not heard from in time."""

    worker_id: Identifier = Field(description="The worker.")
    reason: str = Field("", description="Why, for people.")


class ToolCalledData(ProtocolModel):
    """A tool was called through the armory."""

    tool: str = Field(description="Tool name.")
    task_id: Identifier | None = Field(None, description="Task it was called for.")
    worker_id: Identifier | None = Field(None, description="Worker that called it.")
    arguments_digest: Digest = Field(description="Digest of the canonical JSON arguments.")
    duration_ms: float = Field(ge=0, description="How long the call took.")
    outcome: Literal["ok", "error"] = Field(description="Whether it succeeded.")
    error: str | None = Field(None, description="Error message, if it failed.")
    policy_digest: Digest | None = Field(
        None, description="The Cedar policy set that allowed the call, when one is configured."
    )


class ToolRefusedData(ProtocolModel):
    """A tool call was refused (outside the capability grant or the security policy)."""

    tool: str = Field(description="Tool name.")
    task_id: Identifier | None = Field(None, description="Task it was called for.")
    worker_id: Identifier | None = Field(None, description="Worker that called it.")
    reason: str = Field(description="Why it was refused.")
    token_id: str | None = Field(None, description="The capability token that refused it.")
    policy_digest: Digest | None = Field(
        None, description="The Cedar policy set that refused it, when policy refused it."
    )


TokenScope = Literal["read", "submit", "work", "admin"]
"""What a bearer token may do (docs/security.md): read, submit (and steer) runs, work tasks, or
everything."""


class TokenCreatedData(ProtocolModel):
    """A bearer token was created (only its SHA-256 is kept)."""

    token_id: Identifier = Field(description="Stable id of the token.")
    name: str = Field(min_length=1, description="Its name, unique among active tokens.")
    sha256: Digest = Field(description="SHA-256 of the token; the token itself is never kept.")
    scopes: list[TokenScope] = Field(min_length=1, description="What it may do.")
    worker_id: Identifier | None = Field(None, description="The worker it acts as, if bound.")
    by: str | None = Field(None, description="Who created it.")
    trust_level: FleetTrustLevel = Field(
        FleetTrustLevel.SANDBOXED,
        description="Trust level of the worker it acts for, set by the admin who issued it "
        "(a worker's trust is never self-declared).",
    )
    public_key: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9+/]{43}=$",
        description="The worker's Ed25519 public key (base64 of the raw 32 bytes), if any.",
    )
    imported_from: str | None = Field(
        None, description="The token file it came from, when imported from one."
    )
    projects: list[str] | None = Field(
        None, description="Coordination projects it is limited to (issue 22); null: all."
    )


class TokenRevokedData(ProtocolModel):
    """A bearer token was revoked; servers refuse it from their next check on."""

    token_id: Identifier = Field(description="The token.")
    name: str = Field(description="Its name.")
    by: str | None = Field(None, description="Who revoked it.")


class AlertFiredData(ProtocolModel):
    """An alert policy matched an event: one delivery to one endpoint, waiting in the outbox
    (written in the same transaction as the event it reports)."""

    alert_id: Identifier = Field(description="Id of the delivery; the `webhook-id` header.")
    policy: str = Field(description="`run` (the run's own policy) or `fleet:NAME`.")
    event_class: FleetAlertEventClass = Field(description="What happened.")
    subject: str = Field(description="What it is about: a run, step, task or worker id.")
    endpoint: FleetAlertEndpoint = Field(description="Where it goes (references, not secrets).")
    payload: dict[str, Any] = Field(description="The alert's JSON body.")
    max_attempts: int = Field(ge=1, description="Deliveries tried before it is a dead letter.")
    escalation: int = Field(0, ge=0, description="0 for the first alert, 1 when re-alerting.")
    escalates: Identifier | None = Field(None, description="The alert this one escalates.")
    escalate_after_s: float | None = Field(
        None, description="Re-alert this long after, if the condition still holds."
    )


class AlertDeliveredData(ProtocolModel):
    """An alert reached its endpoint (a 2xx answer, or the log)."""

    alert_id: Identifier = Field(description="The alert.")
    attempt: int = Field(ge=1, description="Which delivery attempt succeeded.")
    status_code: int | None = Field(None, description="The HTTP status, for webhooks.")


class AlertFailedData(ProtocolModel):
    """A delivery attempt failed; retried at ``next_attempt_at``, or a dead letter."""

    alert_id: Identifier = Field(description="The alert.")
    attempt: int = Field(ge=1, description="Which delivery attempt failed.")
    error: str = Field(description="What went wrong (no secrets).")
    next_attempt_at: Timestamp | None = Field(
        None, description="When it is tried again; null once it is a dead letter."
    )


class CapabilityRevokedData(ProtocolModel):
    """A capability token id was revoked: every token with that id (and its attenuations) is
    refused from now on; workers learn it with their heartbeat answers."""

    capability_id: str = Field(pattern=r"^cap_[0-9a-f]{32}$", description="The revoked id.")
    task_id: Identifier | None = Field(None, description="The task it was minted for, if known.")
    reason: str = Field("", description="Why, for people.")
    by: str | None = Field(None, description="Who revoked it.")


class PolicyDeniedData(ProtocolModel):
    """A Cedar policy denied a worker a lease of a task. Recorded once per (task, attempt,
    worker, policy set digest), not on every poll: a worker polling again is denied again
    without a write; a changed policy set (another digest) or a new attempt records anew."""

    action: Literal["lease"] = Field("lease", description="What was denied.")
    task_id: Identifier = Field(description="The task.")
    step_id: Identifier = Field(description="Its step.")
    attempt: int = Field(ge=1, description="The task's attempt it was denied for.")
    worker_id: Identifier = Field(description="The worker denied.")
    policy: dict[str, Any] = Field(
        description="The decision: `decision` (deny), `policy_digest` (sha256 of the policy "
        "set), `reasons` (the policies that decided, errors).",
    )


class AccessDeniedData(ProtocolModel):
    """A call was refused because the caller does not hold what it acts on (rate-limited:
    repeats of the same refusal within a minute are counted, not recorded)."""

    who: str = Field(description="The caller: `token:NAME`, `worker:ID` or `local`.")
    what: str = Field(description="The operation refused, e.g. `heartbeat`.")
    task_id: Identifier | None = Field(None, description="The task it aimed at, if any.")
    reason: str = Field(description="Why it was refused.")
    repeats: int = Field(0, ge=0, description="Same refusals since the last one recorded.")


# ── events ───────────────────────────────────────────────────────────────────────────────────


class RunEvent(ProtocolModel):
    """Fields every event carries; each subclass fixes ``type`` and the shape of ``data``."""

    event_id: Identifier = Field(description="Unique id of the event.")
    type: str = Field(description="Event type (snake_case noun_verb).")
    run_id: Identifier | None = Field(description="Run the event belongs to; null for workers.")
    at: Timestamp = Field(description="When it was recorded.")
    seq: int | None = Field(
        None, ge=1, description="Global sequence in the store (a per-store cursor), once stored."
    )
    data: Any = Field(description="Type-specific data.")


# fmt: off
class RunSubmitted(RunEvent):
    """A run was accepted."""
    type: Literal["run_submitted"] = Field("run_submitted", description="Event type.")
    data: RunSubmittedData = Field(description="Event data.")
class RunStarted(RunEvent):
    """The run's first step became ready."""
    type: Literal["run_started"] = Field("run_started", description="Event type.")
    data: RunTransitionData = Field(default_factory=RunTransitionData, description="Event data.")
class RunPaused(RunEvent):
    """The run paused (breakpoint or by hand)."""
    type: Literal["run_paused"] = Field("run_paused", description="Event type.")
    data: RunPausedData = Field(description="Event data.")
class RunResumed(RunEvent):
    """A paused run was resumed."""
    type: Literal["run_resumed"] = Field("run_resumed", description="Event type.")
    data: RunTransitionData = Field(default_factory=RunTransitionData, description="Event data.")
class RunCompleted(RunEvent):
    """Every required step completed."""
    type: Literal["run_completed"] = Field("run_completed", description="Event type.")
    data: RunCompletedData = Field(description="Event data.")
class RunFailed(RunEvent):
    """The run failed."""
    type: Literal["run_failed"] = Field("run_failed", description="Event type.")
    data: RunFailedData = Field(description="Event data.")
class RunCancelled(RunEvent):
    """The run was cancelled."""
    type: Literal["run_cancelled"] = Field("run_cancelled", description="Event type.")
    data: RunCancelledData = Field(default_factory=RunCancelledData, description="Event data.")
class StepReady(RunEvent):
    """A step's dependencies completed."""
    type: Literal["step_ready"] = Field("step_ready", description="Event type.")
    data: StepData = Field(description="Event data.")
class StepStarted(RunEvent):
    """A step's first task was leased."""
    type: Literal["step_started"] = Field("step_started", description="Event type.")
    data: StepStartedData = Field(description="Event data.")
class StepCompleted(RunEvent):
    """A step completed."""
    type: Literal["step_completed"] = Field("step_completed", description="Event type.")
    data: StepCompletedData = Field(description="Event data.")
class StepFailed(RunEvent):
    """A step failed for good."""
    type: Literal["step_failed"] = Field("step_failed", description="Event type.")
    data: StepFailedData = Field(description="Event data.")
class StepSkipped(RunEvent):
    """A step will not run."""
    type: Literal["step_skipped"] = Field("step_skipped", description="Event type.")
    data: StepSkippedData = Field(description="Event data.")
class StepApproved(RunEvent):
    """A human step was approved."""
    type: Literal["step_approved"] = Field("step_approved", description="Event type.")
    data: StepApprovedData = Field(description="Event data.")
class StepReset(RunEvent):
    """A step was reset to pending to run again."""
    type: Literal["step_reset"] = Field("step_reset", description="Event type.")
    data: StepResetData = Field(description="Event data.")
class TaskEnqueued(RunEvent):
    """A task attempt entered the inbox."""
    type: Literal["task_enqueued"] = Field("task_enqueued", description="Event type.")
    data: TaskEnqueuedData = Field(description="Event data.")
class TaskLeased(RunEvent):
    """A worker leased a task."""
    type: Literal["task_leased"] = Field("task_leased", description="Event type.")
    data: TaskLeasedData = Field(description="Event data.")
class TaskHeartbeat(RunEvent):
    """A worker extended its lease."""
    type: Literal["task_heartbeat"] = Field("task_heartbeat", description="Event type.")
    data: TaskHeartbeatData = Field(description="Event data.")
class TaskLeaseExpired(RunEvent):
    """A lease lapsed; the task went back to the inbox."""
    type: Literal["task_lease_expired"] = Field("task_lease_expired", description="Event type.")
    data: TaskLeaseEndedData = Field(description="Event data.")
class TaskReleased(RunEvent):
    """A worker gave a task back unfinished."""
    type: Literal["task_released"] = Field("task_released", description="Event type.")
    data: TaskReleasedData = Field(description="Event data.")
class TaskPaused(RunEvent):
    """A worker stopped a task to wait for input; the run pauses until resume_run."""
    type: Literal["task_paused"] = Field("task_paused", description="Event type.")
    data: TaskPausedData = Field(description="Event data.")
class TaskFailed(RunEvent):
    """A task attempt failed."""
    type: Literal["task_failed"] = Field("task_failed", description="Event type.")
    data: TaskFailedData = Field(description="Event data.")
class TaskRetryScheduled(RunEvent):
    """Another attempt was scheduled."""
    type: Literal["task_retry_scheduled"] = Field("task_retry_scheduled", description="Event type.")
    data: TaskRetryScheduledData = Field(description="Event data.")
class TaskEvent(RunEvent):
    """An adapter envelope from the worker."""
    type: Literal["task_event"] = Field("task_event", description="Event type.")
    data: TaskEventData = Field(description="Event data.")
class ReceiptPosted(RunEvent):
    """A worker posted a receipt."""
    type: Literal["receipt_posted"] = Field("receipt_posted", description="Event type.")
    data: ReceiptPostedData = Field(description="Event data.")
class ReceiptAccepted(RunEvent):
    """A receipt passed its scorer."""
    type: Literal["receipt_accepted"] = Field("receipt_accepted", description="Event type.")
    data: ReceiptVerdictData = Field(description="Event data.")
class ReceiptRejected(RunEvent):
    """A receipt failed its scorer."""
    type: Literal["receipt_rejected"] = Field("receipt_rejected", description="Event type.")
    data: ReceiptVerdictData = Field(description="Event data.")
class ReceiptRecorded(RunEvent):
    """A receipt was posted and judged (accepted or rejected: see its status)."""
    type: Literal["receipt_recorded"] = Field("receipt_recorded", description="Event type.")
    data: ReceiptRecordedData = Field(description="Event data.")
class BudgetExceeded(RunEvent):
    """A budget was exceeded."""
    type: Literal["budget_exceeded"] = Field("budget_exceeded", description="Event type.")
    data: BudgetExceededData = Field(description="Event data.")
class UsageReported(RunEvent):
    """Usage of a running attempt arrived."""
    type: Literal["usage_reported"] = Field("usage_reported", description="Event type.")
    data: UsageReportedData = Field(description="Event data.")
class RunBudgetChanged(RunEvent):
    """A run's budget was set anew."""
    type: Literal["run_budget_changed"] = Field("run_budget_changed", description="Event type.")
    data: RunBudgetChangedData = Field(description="Event data.")
class BreakpointHit(RunEvent):
    """The run reached a breakpoint."""
    type: Literal["breakpoint_hit"] = Field("breakpoint_hit", description="Event type.")
    data: StepData = Field(description="Event data.")
class CheckpointSaved(RunEvent):
    """An agent saved a checkpoint."""
    type: Literal["checkpoint_saved"] = Field("checkpoint_saved", description="Event type.")
    data: CheckpointSavedData = Field(description="Event data.")
class ArtifactStored(RunEvent):
    """A blob was stored."""
    type: Literal["artifact_stored"] = Field("artifact_stored", description="Event type.")
    data: ArtifactStoredData = Field(description="Event data.")
class WorkerRegistered(RunEvent):
    """A worker registered."""
    type: Literal["worker_registered"] = Field("worker_registered", description="Event type.")
    data: WorkerRegisteredData = Field(description="Event data.")
class WorkerHeartbeat(RunEvent):
    """A worker said it is alive."""
    type: Literal["worker_heartbeat"] = Field("worker_heartbeat", description="Event type.")
    data: WorkerHeartbeatData = Field(description="Event data.")
class WorkerOffline(RunEvent):
    """A worker went offline."""
    type: Literal["worker_offline"] = Field("worker_offline", description="Event type.")
    data: WorkerOfflineData = Field(description="Event data.")
class ToolCalled(RunEvent):
    """A tool was called."""
    type: Literal["tool_called"] = Field("tool_called", description="Event type.")
    data: ToolCalledData = Field(description="Event data.")
class ToolRefused(RunEvent):
    """A tool call was refused."""
    type: Literal["tool_refused"] = Field("tool_refused", description="Event type.")
    data: ToolRefusedData = Field(description="Event data.")
class TokenCreated(RunEvent):
    """A bearer token was created."""
    type: Literal["token_created"] = Field("token_created", description="Event type.")
    data: TokenCreatedData = Field(description="Event data.")
class TokenRevoked(RunEvent):
    """A bearer token was revoked."""
    type: Literal["token_revoked"] = Field("token_revoked", description="Event type.")
    data: TokenRevokedData = Field(description="Event data.")
class AlertFired(RunEvent):
    """An alert policy matched an event; its delivery waits in the outbox."""
    type: Literal["alert_fired"] = Field("alert_fired", description="Event type.")
    data: AlertFiredData = Field(description="Event data.")
class AlertDelivered(RunEvent):
    """An alert was delivered."""
    type: Literal["alert_delivered"] = Field("alert_delivered", description="Event type.")
    data: AlertDeliveredData = Field(description="Event data.")
class AlertFailed(RunEvent):
    """An alert delivery attempt failed."""
    type: Literal["alert_failed"] = Field("alert_failed", description="Event type.")
    data: AlertFailedData = Field(description="Event data.")
class CapabilityRevoked(RunEvent):
    """A capability token id was revoked."""
    type: Literal["capability_revoked"] = Field("capability_revoked", description="Event type.")
    data: CapabilityRevokedData = Field(description="Event data.")
class PolicyDenied(RunEvent):
    """A Cedar policy denied a worker a lease (once per task attempt, worker, policy set)."""
    type: Literal["policy_denied"] = Field("policy_denied", description="Event type.")
    data: PolicyDeniedData = Field(description="Event data.")
class AccessDenied(RunEvent):
    """A call was refused: the caller does not hold what it acts on."""
    type: Literal["access_denied"] = Field("access_denied", description="Event type.")
    data: AccessDeniedData = Field(description="Event data.")
class AgentRegistered(RunEvent):
    """An agent registered in a project."""
    type: Literal["agent_registered"] = Field("agent_registered", description="Event type.")
    data: AgentRegisteredData = Field(description="Event data.")
class AgentDeregistered(RunEvent):
    """An agent left its project."""
    type: Literal["agent_deregistered"] = Field("agent_deregistered", description="Event type.")
    data: AgentDeregisteredData = Field(description="Event data.")
class MessageSent(RunEvent):
    """A message entered some inboxes."""
    type: Literal["message_sent"] = Field("message_sent", description="Event type.")
    data: MessageSentData = Field(description="Event data.")
class MessageRead(RunEvent):
    """An agent read a message."""
    type: Literal["message_read"] = Field("message_read", description="Event type.")
    data: MessageMarkedData = Field(description="Event data.")
class MessageAcknowledged(RunEvent):
    """An agent acknowledged a message."""
    type: Literal["message_acknowledged"] = Field("message_acknowledged", description="Event type.")
    data: MessageMarkedData = Field(description="Event data.")
class ReservationGranted(RunEvent):
    """A path pattern was reserved."""
    type: Literal["reservation_granted"] = Field("reservation_granted", description="Event type.")
    data: ReservationGrantedData = Field(description="Event data.")
class ReservationRenewed(RunEvent):
    """A reservation was renewed."""
    type: Literal["reservation_renewed"] = Field("reservation_renewed", description="Event type.")
    data: ReservationRenewedData = Field(description="Event data.")
class ReservationReleased(RunEvent):
    """A reservation was released."""
    type: Literal["reservation_released"] = Field("reservation_released", description="Event type.")
    data: ReservationEndedData = Field(description="Event data.")
class ReservationExpired(RunEvent):
    """A reservation expired."""
    type: Literal["reservation_expired"] = Field("reservation_expired", description="Event type.")
    data: ReservationEndedData = Field(description="Event data.")
class LockAcquired(RunEvent):
    """A named lock was taken."""
    type: Literal["lock_acquired"] = Field("lock_acquired", description="Event type.")
    data: LockAcquiredData = Field(description="Event data.")
class LockRenewed(RunEvent):
    """A lock was renewed."""
    type: Literal["lock_renewed"] = Field("lock_renewed", description="Event type.")
    data: LockRenewedData = Field(description="Event data.")
class LockReleased(RunEvent):
    """A lock was released."""
    type: Literal["lock_released"] = Field("lock_released", description="Event type.")
    data: LockEndedData = Field(description="Event data.")
class LockExpired(RunEvent):
    """A lock expired."""
    type: Literal["lock_expired"] = Field("lock_expired", description="Event type.")
    data: LockEndedData = Field(description="Event data.")
class AgentCheckpointSaved(RunEvent):
    """An agent saved a context checkpoint."""
    type: Literal["agent_checkpoint_saved"] = Field(
        "agent_checkpoint_saved", description="Event type."
    )
    data: CheckpointRecordedData = Field(description="Event data.")
class CursorMoved(RunEvent):
    """A named cursor moved."""
    type: Literal["cursor_moved"] = Field("cursor_moved", description="Event type.")
    data: CursorMovedData = Field(description="Event data.")
# fmt: on

AnyRunEvent = Annotated[
    RunSubmitted
    | RunStarted
    | RunPaused
    | RunResumed
    | RunCompleted
    | RunFailed
    | RunCancelled
    | StepReady
    | StepStarted
    | StepCompleted
    | StepFailed
    | StepSkipped
    | StepApproved
    | StepReset
    | TaskEnqueued
    | TaskLeased
    | TaskHeartbeat
    | TaskLeaseExpired
    | TaskReleased
    | TaskPaused
    | TaskFailed
    | TaskRetryScheduled
    | TaskEvent
    | ReceiptPosted
    | ReceiptAccepted
    | ReceiptRejected
    | ReceiptRecorded
    | BudgetExceeded
    | UsageReported
    | RunBudgetChanged
    | BreakpointHit
    | CheckpointSaved
    | ArtifactStored
    | WorkerRegistered
    | WorkerHeartbeat
    | WorkerOffline
    | ToolCalled
    | ToolRefused
    | TokenCreated
    | TokenRevoked
    | CapabilityRevoked
    | PolicyDenied
    | AccessDenied
    | AlertFired
    | AlertDelivered
    | AlertFailed
    | AgentRegistered
    | AgentDeregistered
    | MessageSent
    | MessageRead
    | MessageAcknowledged
    | ReservationGranted
    | ReservationRenewed
    | ReservationReleased
    | ReservationExpired
    | LockAcquired
    | LockRenewed
    | LockReleased
    | LockExpired
    | AgentCheckpointSaved
    | CursorMoved,
    Field(discriminator="type"),
]
"""Any run event, selected by `type`."""


@cache
def _adapter() -> TypeAdapter[AnyRunEvent]:
    return TypeAdapter(AnyRunEvent)


EVENT_TYPES: dict[str, type[RunEvent]] = {
    cls.model_fields["type"].default: cls for cls in RunEvent.__subclasses__()
}
"""Every event type name → its model class."""


def parse_event(data: Any) -> RunEvent:
    """Build the event model for a JSON object (pydantic path; raises pydantic's error)."""
    return _adapter().validate_python(data)


__all__ = [
    "EVENT_TYPES",
    "AccessDenied",
    "AgentCheckpointSaved",
    "AgentDeregistered",
    "AgentRegistered",
    "AlertDelivered",
    "AlertDeliveredData",
    "AlertFailed",
    "AlertFailedData",
    "AlertFired",
    "AlertFiredData",
    "AnyRunEvent",
    "ArtifactStored",
    "BreakpointHit",
    "BudgetExceeded",
    "CapabilityRevoked",
    "CheckpointSaved",
    "CursorMoved",
    "LockAcquired",
    "LockExpired",
    "LockReleased",
    "LockRenewed",
    "MessageAcknowledged",
    "MessageRead",
    "MessageSent",
    "PolicyDenied",
    "PolicyDeniedData",
    "ReceiptAccepted",
    "ReceiptPosted",
    "ReceiptRecorded",
    "ReceiptRejected",
    "ReservationExpired",
    "ReservationGranted",
    "ReservationReleased",
    "ReservationRenewed",
    "RunBudgetChanged",
    "RunCancelled",
    "RunCompleted",
    "RunEvent",
    "RunFailed",
    "RunPaused",
    "RunResumed",
    "RunStarted",
    "RunSubmitted",
    "StepApproved",
    "StepCompleted",
    "StepFailed",
    "StepReady",
    "StepReset",
    "StepSkipped",
    "StepStarted",
    "TaskEnqueued",
    "TaskEvent",
    "TaskFailed",
    "TaskHeartbeat",
    "TaskLeaseExpired",
    "TaskLeased",
    "TaskPaused",
    "TaskReleased",
    "TaskRetryScheduled",
    "TokenCreated",
    "TokenRevoked",
    "TokenScope",
    "ToolCalled",
    "ToolRefused",
    "UsageReported",
    "WorkerHeartbeat",
    "WorkerOffline",
    "WorkerRegistered",
    "parse_event",
]
