"""Operations on runs: submit, read, list, steer, and their events."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from fleetforge.contracts import FleetRunBudget, FleetRunStatus, Run, TraceContext
from fleetforge.operations._base import Args, Call, Operation
from fleetforge.operations.results import (
    DeadLetterList,
    EventPage,
    EventRecord,
    RetriedSteps,
    RunList,
    StepRef,
)

__all__ = [
    "APPROVE_STEP",
    "CANCEL_RUN",
    "DEAD_LETTERS",
    "GET_RUN",
    "LIST_RUNS",
    "RESUME_RUN",
    "RETRY_STEP",
    "RETRY_STEPS",
    "RUN_EVENTS",
    "SUBMIT_RUN",
]

RunId = Annotated[str, Field(description="Id of the run, as returned by fleet_submit_run.")]
Cursor = Annotated[
    str | None, Field(description="Cursor from a previous page's next_cursor; omit to start.")
]


# ── submit ──────────────────────────────────────────────────────────────────────────────────


class SubmitRunArgs(Args):
    spec: dict[str, Any] = Field(
        description="The run spec as a JSON object: name, seed (positive integer), optional "
        "labels/inputs/breakpoints, and steps (each with id, type agent|tool|llm|human|map, "
        "depends_on, inputs). The full schema is the resource fleet://schemas/run_spec."
    )
    idempotency_key: str | None = Field(
        None,
        description="Optional key: submitting again with the same key returns the same run "
        "instead of a new one.",
    )
    trace: TraceContext | None = Field(
        None,
        description="Optional W3C trace context (traceparent, tracestate) of the caller: every "
        "task of the run carries it, so workers' spans join that trace.",
    )


def _submit(call: Call, a: SubmitRunArgs) -> Run:
    return call.fleet.submit_run(a.spec, idempotency_key=a.idempotency_key, trace=a.trace)


SUBMIT_RUN = Operation(
    "submit_run",
    SubmitRunArgs,
    Run,
    "submit",
    "Submit a run",
    """Validate a run spec and start the run; its root steps become tasks for workers.

Returns the run (run_id, status, steps). An invalid spec is refused with a ContractError listing
each problem as a JSON pointer into the spec, and nothing is written. Follow the run with
fleet_get_run or fleet_run_events.""",
    _submit,
    cli="submit",
)


# ── read ────────────────────────────────────────────────────────────────────────────────────


class GetRunArgs(Args):
    run_id: RunId


GET_RUN = Operation(
    "get_run",
    GetRunArgs,
    Run,
    "read",
    "Get a run",
    """Read a run: status, every step's status/attempt/output/error, the outputs of completed
steps, usage totals and the spec. NotFoundError if no such run.""",
    lambda call, a: call.fleet.get_run(a.run_id),
    read_only=True,
    cli="show, output",
)


class ListRunsArgs(Args):
    status: FleetRunStatus | None = Field(None, description="Only runs in this status.")
    labels: dict[str, str] | None = Field(
        None, description="Only runs carrying all of these labels."
    )
    cursor: Cursor = None
    limit: int = Field(50, ge=1, le=1000, description="Runs per page.")


LIST_RUNS = Operation(
    "list_runs",
    ListRunsArgs,
    RunList,
    "read",
    "List runs",
    "List runs, newest first, a page at a time (pass next_cursor back as cursor).",
    lambda call, a: call.fleet.list_runs(
        status=a.status, labels=a.labels, cursor=a.cursor, limit=a.limit
    ),
    read_only=True,
    cli="runs",
)


class RunEventsArgs(Args):
    run_id: str | None = Field(
        None, description="The run whose events to read; omit for the events of every run."
    )
    cursor: Cursor = None
    limit: int = Field(100, ge=1, le=10_000, description="Events per page.")
    types: list[str] | None = Field(
        None, description="Only events of these types (e.g. step_completed)."
    )
    wait_seconds: float = Field(
        0.0,
        ge=0,
        le=60,
        description="When nothing follows the cursor yet, wait up to this long for the next "
        "event (long poll) instead of answering at once.",
    )


def _events(call: Call, a: RunEventsArgs) -> EventPage:
    after = _seq_cursor(a.cursor)
    rows = call.fleet.event_rows(
        a.run_id, after=after, limit=a.limit, types=a.types, wait_seconds=a.wait_seconds
    )
    last = str(rows[-1].seq) if rows else str(after)
    return EventPage(
        events=[EventRecord.of_row(row) for row in rows],
        next_cursor=last if len(rows) == a.limit else None,
        last_cursor=last,
    )


def _seq_cursor(cursor: str | None) -> int:
    from fleetforge.errors import ContractError, ErrorDetail

    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit():
        raise ContractError(
            f"invalid cursor {cursor!r}",
            details=[ErrorDetail("/cursor", "use next_cursor or last_cursor from a page")],
        )
    return int(cursor)


RUN_EVENTS = Operation(
    "run_events",
    RunEventsArgs,
    EventPage,
    "read",
    "Run events",
    """A run's events in order (run_submitted, step_ready, task_leased, receipt_recorded, ...), a
page at a time. To follow a run, call again with last_cursor as cursor (wait_seconds makes the
call wait for the next event). Without run_id: every run's events.""",
    _events,
    read_only=True,
    cli="events",
)


# ── steer ───────────────────────────────────────────────────────────────────────────────────


class CancelRunArgs(Args):
    run_id: RunId
    reason: str = Field("", description="Why, recorded for people.")


CANCEL_RUN = Operation(
    "cancel_run",
    CancelRunArgs,
    Run,
    "submit",
    "Cancel a run",
    """Cancel a run: queued tasks are withdrawn and workers holding its tasks get
RunCancelledError on their next call. AlreadyCompletedError if the run is final.""",
    lambda call, a: call.fleet.cancel_run(a.run_id, reason=a.reason, by=call.by),
    destructive=True,
    cli="cancel",
)


class ResumeRunArgs(Args):
    run_id: RunId
    value: Any = Field(
        None,
        description="For a run paused because a task waits for input (reason `interrupt`): "
        "the answer, any JSON value, which that task continues with.",
    )
    values: dict[str, Any] | None = Field(
        None,
        description="Different answers for different waiting tasks: task id (or step id) -> "
        "value, as listed in the run's waiting_for_input; others get `value`.",
    )
    budget: FleetRunBudget | None = Field(
        None,
        description="A new budget for the whole run (max_tokens, max_cost_usd, max_wall_s, "
        "on_exceed), replacing the old one whole. A run paused because it went over its "
        "budget resumes only within the new one.",
    )


RESUME_RUN = Operation(
    "resume_run",
    ResumeRunArgs,
    Run,
    "submit",
    "Resume a paused run",
    """Resume a paused run. At a breakpoint, the step it paused before becomes ready; when a
task paused for input (fleet_pause_task), it goes back to the inbox with `value`. A run paused
over its budget needs a raised `budget`. ConflictError if the run is not paused (or still over
its budget).""",
    lambda call, a: call.fleet.resume_run(
        a.run_id, by=call.by, value=a.value, values=a.values, budget=a.budget
    ),
    cli="resume",
)


class ApproveStepArgs(Args):
    run_id: RunId
    step_id: str = Field(description="Id of the waiting human step.")
    comment: str | None = Field(None, description="Optional note kept with it.")


APPROVE_STEP = Operation(
    "approve_step",
    ApproveStepArgs,
    Run,
    "submit",
    "Approve a human step",
    """Approve a human step that is waiting; it completes with output {approved, by, comment}
and the steps after it are scheduled. ConflictError if it is not waiting.""",
    lambda call, a: call.fleet.approve_step(a.run_id, a.step_id, by=call.by, comment=a.comment),
    cli="approve",
)


class RetryStepArgs(Args):
    run_id: RunId
    step_id: str = Field(description="Id of the failed (or skipped) step.")


RETRY_STEP = Operation(
    "retry_step",
    RetryStepArgs,
    Run,
    "submit",
    "Retry a failed step",
    """Run a failed or skipped step again, and the steps after it that did not complete; a
failed run is reopened. ConflictError if the step did not fail.""",
    lambda call, a: call.fleet.retry_step(a.run_id, a.step_id, by=call.by),
    cli="retry",
)


class RetryStepsArgs(Args):
    steps: list[StepRef] = Field(
        min_length=1,
        max_length=1000,
        description="The failed (or skipped) steps to retry, each {run_id, step_id}; they may "
        "belong to different runs (e.g. what fleet_dead_letters listed).",
    )


RETRY_STEPS = Operation(
    "retry_steps",
    RetryStepsArgs,
    RetriedSteps,
    "submit",
    "Retry a list of failed steps",
    """Retry several failed steps, across runs: each is fleet_retry_step in its own transaction.
Returns the steps retried (with their run's status) and, in failures, each one that could not be
(index, run_id, step_id and the error a single retry would have raised); the others go on.""",
    lambda call, a: call.fleet.retry_steps(a.steps, by=call.by),
    cli="retry --dead-letters",
)


class DeadLettersArgs(Args):
    run_id: str | None = Field(None, description="Only this run's failed steps; omit for all.")
    cursor: Cursor = None
    limit: int = Field(50, ge=1, le=1000, description="Failed steps per page.")


DEAD_LETTERS = Operation(
    "dead_letters",
    DeadLettersArgs,
    DeadLetterList,
    "read",
    "List dead letters",
    """List the steps that failed for good (their retries spent), newest run first: each with
its run, last error and failure kind, number of attempts and the inputs of its last attempt.
Retry one with fleet_retry_step, or a list with fleet_retry_steps.""",
    lambda call, a: call.fleet.dead_letters(run_id=a.run_id, cursor=a.cursor, limit=a.limit),
    read_only=True,
    cli="dead-letters",
)
