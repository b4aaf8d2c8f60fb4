"""The serialized run record (seed 000 `run`): a run handle plus its spec and step states."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from fleetforge.contracts._base import Identifier, ProtocolModel, Timestamp
from fleetforge.contracts.protocol import (
    FleetRun,
    FleetRunBudget,
    FleetTaskFailureKind,
    FleetUsage,
)
from fleetforge.contracts.spec import RunSpec

__all__ = [
    "AttemptUsage",
    "BlockedStep",
    "InputRequest",
    "Run",
    "RunBudgetStatus",
    "StepRecord",
    "StepStatus",
]


class StepStatus(StrEnum):
    """Where one step of a run stands."""

    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class StepRecord(ProtocolModel):
    """The state of one step of a run."""

    step_id: Identifier = Field(description="Step id from the spec.")
    type: Literal["agent", "tool", "llm", "human", "map"] = Field(description="Step type.")
    status: StepStatus = Field(description="Where the step stands.")
    attempt: int = Field(0, ge=0, description="Attempts made so far.")
    task_ids: list[Identifier] = Field(
        default_factory=list, description="Tasks of the step (one, or one per map item)."
    )
    output: Any = Field(None, description="The accepted output, once completed.")
    failure_kind: FleetTaskFailureKind | None = Field(None, description="Why it failed, if so.")
    error: str | None = Field(None, description="Failure message, if it failed.")
    started_at: Timestamp | None = Field(None, description="When its first task started.")
    finished_at: Timestamp | None = Field(None, description="When it reached a final status.")


class BlockedStep(ProtocolModel):
    """A ready task no live worker may take, and why (codes are stable; later issues add some).

    Codes: ``trust_too_low`` (no live worker reaches the run's or step's ``min_trust``),
    ``no_signing_worker`` (``require_signed_receipts`` and no live worker registered a public
    key), ``tool_denied`` (the step needs a tool the run's security policy denies),
    ``no_worker`` (no live worker of the step's role, tools and labels), ``env_var_missing``
    (no live worker has an environment variable the step's workspace requires),
    ``disk_too_small`` (none has the free disk it needs), ``requirements_unmet`` (each lacks a
    different one), ``policy_denied`` (the fleet's Cedar policy set denies the step to every
    live worker that may otherwise take it; the message names the set's digest); the message
    says what is missing."""

    step_id: Identifier = Field(description="The step.")
    code: str = Field(description="Why, as a stable code.")
    message: str = Field(description="Why, for people.")


class InputRequest(ProtocolModel):
    """A task that paused for input: what it asks. ``resume_run``'s value answers it."""

    task_id: Identifier = Field(description="The paused task.")
    step_id: Identifier = Field(description="Its step.")
    reason: str = Field("", description="What it needs, for people.")
    waiting_for: list[Any] = Field(
        default_factory=list, description="What it asks, as JSON (e.g. interrupt values)."
    )
    since: Timestamp = Field(description="When it paused.")


class AttemptUsage(ProtocolModel):
    """What a running attempt has used so far, as its envelopes reported it."""

    task_id: Identifier = Field(description="The task.")
    step_id: Identifier = Field(description="Its step.")
    attempt: int = Field(ge=1, description="The attempt.")
    worker_id: Identifier | None = Field(None, description="The worker running it.")
    usage: FleetUsage = Field(description="Its usage so far (cost null: unknown).")


class RunBudgetStatus(ProtocolModel):
    """A run's budget and what it has used against it, counted as usage arrives."""

    limits: FleetRunBudget | None = Field(
        None, description="The budget in force (the spec's, or the one resume_run set)."
    )
    tokens: int = Field(0, ge=0, description="Tokens of every attempt so far.")
    cost_usd: float = Field(0.0, ge=0, description="Known cost of every attempt so far.")
    cost_unknown: int = Field(
        0,
        ge=0,
        description=(
            "Attempts whose cost is unknown (no cost reported, model not in prices.toml); "
            "they count as 0 against max_cost_usd."
        ),
    )
    wall_s: float | None = Field(None, description="Seconds since the run started, when read.")
    exceeded: Literal["tokens", "cost", "wall_time"] | None = Field(
        None, description="The budget the run went over, until it is resumed."
    )
    running: list[AttemptUsage] = Field(
        default_factory=list, description="Live usage of the attempts running now."
    )


class Run(FleetRun):
    """A run as stored and served: the handle, the spec, each step's state and the outputs."""

    spec: RunSpec = Field(description="The submitted spec, as validated.")
    steps: list[StepRecord] = Field(default_factory=list, description="State of every step.")
    outputs: dict[str, Any] = Field(
        default_factory=dict, description="Outputs of completed steps, by step id."
    )
    error: str | None = Field(None, description="Why the run failed, if it did.")
    usage: FleetUsage = Field(
        default_factory=FleetUsage, description="Totals of the usage of every posted receipt."
    )
    idempotency_key: str | None = Field(None, description="Key given at submit, if any.")
    started_at: Timestamp | None = Field(None, description="When the first step started.")
    finished_at: Timestamp | None = Field(None, description="When the run reached a final status.")
    waiting_for_input: list[InputRequest] = Field(
        default_factory=list,
        description="Tasks paused for input (the run is paused); resume_run's value answers them.",
    )
    blocked: list[BlockedStep] = Field(
        default_factory=list,
        description="Ready tasks that no live worker may take, and why (computed when read).",
    )
    budget: RunBudgetStatus | None = Field(
        None,
        description="The run's budget and its live usage (absent: no budget and no usage yet).",
    )

    model_config = FleetRun.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "run_id": "run_01JD3Z6Q",
                    "name": "tiny",
                    "status": "completed",
                    "seed": 7,
                    "created_at": "2026-11-22T10:00:00Z",
                    "updated_at": "2026-11-22T10:00:09Z",
                    "spec": {
                        "name": "tiny",
                        "seed": 7,
                        "steps": [{"id": "hello", "type": "tool", "tool": "echo"}],
                    },
                    "steps": [
                        {
                            "step_id": "hello",
                            "type": "tool",
                            "status": "completed",
                            "attempt": 1,
                            "task_ids": ["tsk_01JD3Z6Q_hello"],
                            "output": "hi",
                        }
                    ],
                    "outputs": {"hello": "hi"},
                }
            ]
        }
    }
