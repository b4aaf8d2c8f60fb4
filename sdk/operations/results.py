"""Results of the operations that have no contract type of their own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from fleetforge.contracts import (
    Artifact,
    FleetInboxEntry,
    FleetLease,
    FleetReceipt,
    FleetRun,
    FleetRunStatus,
    FleetWorkerSpec,
    FleetWorkerStatus,
    RunEvent,
)

__all__ = [
    "ArtifactContent",
    "CompletedTasks",
    "DeadLetter",
    "DeadLetterList",
    "EventPage",
    "EventRecord",
    "FailResult",
    "HeartbeatResults",
    "ItemFailure",
    "LeasedTasks",
    "PostedEvent",
    "PostedEvents",
    "RetriedStep",
    "RetriedSteps",
    "RunList",
    "StepFailure",
    "StepRef",
    "WorkerList",
    "WorkerRecord",
]


class RunList(BaseModel):
    """One page of runs, newest first."""

    runs: list[FleetRun] = Field(description="The runs on this page.")
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page."
    )


class DeadLetter(BaseModel):
    """A step that failed for good: what it was given, how often it was tried, how it failed."""

    run_id: str = Field(description="The run.")
    run_name: str = Field(description="The run's name.")
    run_status: FleetRunStatus = Field(description="The run's status (failed, or still running).")
    step_id: str = Field(description="The failed step.")
    type: str = Field(description="The step's type (agent, tool, llm, human, map).")
    attempts: int = Field(description="How many attempts it had.")
    failure_kind: str | None = Field(description="Kind of the last failure (e.g. timeout).")
    error: str | None = Field(description="The last attempt's error message.")
    failed_at: datetime | None = Field(description="When it failed for good.")
    inputs: dict[str, Any] | None = Field(
        description="The inputs of its last attempt, as the worker got them; null for a step "
        "that never became a task (e.g. a human step)."
    )


class DeadLetterList(BaseModel):
    """One page of dead letters, newest run first."""

    dead_letters: list[DeadLetter] = Field(description="The failed steps on this page.")
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page."
    )


class StepRef(BaseModel):
    """A step of a run."""

    run_id: str = Field(description="The run.")
    step_id: str = Field(description="The step.")


class RetriedStep(StepRef):
    """A step that was retried, and its run's status afterwards."""

    run_status: FleetRunStatus = Field(description="The run's status after the retry.")


class StepFailure(StepRef):
    """A step of a batch that was not retried; the others were."""

    index: int = Field(description="Position of the item in the call's list.")
    error: dict[str, Any] = Field(
        description="The error as a single retry would have raised it: {code, message, details}."
    )


class RetriedSteps(BaseModel):
    """What a batch of retries did: each item is its own transaction."""

    retried: list[RetriedStep] = Field(description="The steps retried, in the call's order.")
    failures: list[StepFailure] = Field(description="The items that were not retried, and why.")


class LeasedTasks(BaseModel):
    """What a lease call obtained."""

    tasks: list[FleetInboxEntry] = Field(
        description="Leased inbox entries; each holds the task, its attempt and the lease with "
        "the fencing token to pass to heartbeat, event, receipt and fail calls. Empty when no "
        "task came within wait_seconds."
    )


class EventRecord(BaseModel):
    """One stored run event (docs/contracts.md lists each type's `data`)."""

    seq: int = Field(description="Position in the store's event sequence.")
    event_id: str = Field(description="Id of the event.")
    type: str = Field(description="Event type, e.g. `step_completed`.")
    run_id: str | None = Field(description="The run, or null for worker events.")
    at: datetime = Field(description="When it happened.")
    data: dict[str, Any] = Field(description="Type-specific fields.")

    @classmethod
    def of_row(cls, row: Any) -> EventRecord:
        """From a stored row (an ``EventRow``): its data as stored, whatever it holds."""
        return cls.model_construct(
            seq=row.seq,
            event_id=row.event_id,
            type=row.type,
            run_id=row.run_id,
            at=datetime.fromisoformat(row.at),
            data=row.data,
        )

    @classmethod
    def of(cls, event: RunEvent) -> EventRecord:
        body = event.model_dump(mode="json", by_alias=True)
        return cls(
            seq=event.seq or 0,
            event_id=body["event_id"],
            type=body["type"],
            run_id=body["run_id"],
            at=event.at,
            data=body["data"],
        )


class EventPage(BaseModel):
    """A page of a run's events, oldest first."""

    events: list[EventRecord] = Field(description="Events in order.")
    next_cursor: str | None = Field(
        None,
        description="Pass as `cursor` to continue after the last event; null when the page was "
        "not full (nothing more yet: poll again later with the same cursor as `last_cursor`).",
    )
    last_cursor: str = Field(description="Cursor after the last event returned, for polling.")


class PostedEvent(BaseModel):
    """The stored form of a posted envelope."""

    seq: int = Field(description="Position in the store's event sequence.")
    event_id: str = Field(description="Id of the `task_event` recorded.")


class FailResult(BaseModel):
    """What happens after a failed attempt."""

    task_id: str = Field(description="The task.")
    will_retry: bool = Field(
        description="True when another attempt is scheduled (per the retry policy); false when "
        "the step failed for good."
    )


class ArtifactContent(BaseModel):
    """An artifact's metadata and its bytes."""

    artifact: Artifact = Field(description="Recorded metadata.")
    content: str = Field(description="The bytes, base64-encoded (standard alphabet, padded).")


class WorkerRecord(BaseModel):
    """A registered worker: what it declared, its status and when it was last seen."""

    spec: FleetWorkerSpec = Field(description="What the worker registered with.")
    status: FleetWorkerStatus = Field(description="idle, busy or offline.")
    last_seen_at: datetime = Field(description="Its last registration, heartbeat or lease.")


class WorkerList(BaseModel):
    """The registered workers."""

    workers: list[WorkerRecord] = Field(description="Every registered worker, by id.")


# ── batches ─────────────────────────────────────────────────────────────────────────────────


class ItemFailure(BaseModel):
    """One item of a batch that had no effect; the others did."""

    index: int = Field(description="Position of the item in the call's list.")
    task_id: str = Field(description="The item's task.")
    error: dict[str, Any] = Field(
        description="The error as a single call would have raised it: {code, message, details}."
    )


class CompletedTasks(BaseModel):
    """What a batch of receipts did, and the tasks leased next in the same transaction."""

    receipts: list[FleetReceipt | None] = Field(
        description="Per item, in order: its receipt with status and score; null when it failed "
        "(see failures)."
    )
    failures: list[ItemFailure] = Field(
        default_factory=list, description="Items with no effect (stale lease, bad content, ...)."
    )
    leased: list[FleetInboxEntry] = Field(
        default_factory=list, description="Tasks leased for `lease_next`, as lease_task gives them."
    )


class HeartbeatResults(BaseModel):
    """Leases after a batch of heartbeats."""

    leases: list[FleetLease | None] = Field(
        description="Per item, in order: the lease as it stands (extended when less than half "
        "was left); null when it failed (see failures: stop working on that task)."
    )
    failures: list[ItemFailure] = Field(default_factory=list, description="Leases not kept.")


class PostedEvents(BaseModel):
    """Where a batch of envelopes was recorded."""

    events: list[PostedEvent | None] = Field(
        description="Per item, in order: its task_event; null when it failed (see failures)."
    )
    failures: list[ItemFailure] = Field(default_factory=list, description="Envelopes refused.")
