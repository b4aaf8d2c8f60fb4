"""The adapter envelope (seed 000 `agent_run`): what an agent adapter reports about one task.

``kind`` selects the variant: ``start``, ``emit``, ``checkpoint``, ``complete`` or ``error``.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal, Self

from pydantic import (
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    model_serializer,
)

from fleetforge.contracts._base import (
    FLEET_PROTOCOL_VERSION,
    Digest,
    Identifier,
    JsonObject,
    ProtocolModel,
    Timestamp,
)
from fleetforge.contracts.protocol import (
    FleetArtifactRef,
    FleetTaskFailureKind,
    FleetUsage,
    TraceContext,
)

__all__ = [
    "AdapterInfo",
    "AgentRunEnvelope",
    "AnyAgentRunEnvelope",
    "CheckpointEnvelope",
    "CompleteEnvelope",
    "EmitEnvelope",
    "EmitEvent",
    "ErrorEnvelope",
    "StartEnvelope",
    "parse_envelope",
]


class EmitEvent(StrEnum):
    """What an `emit` envelope reports."""

    STEP_STARTED = "step_started"
    STEP_FINISHED = "step_finished"
    MESSAGE = "message"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    PAUSED = "paused"
    CUSTOM = "custom"


class AdapterInfo(ProtocolModel):
    """The adapter that produced an envelope."""

    name: str = Field(min_length=1, description="Adapter name, e.g. `langgraph`.")
    version: str = Field(min_length=1, description="Adapter (or framework) version.")


class AgentRunEnvelope(ProtocolModel):
    """Fields every envelope carries; the subclasses add what their ``kind`` needs."""

    protocol_version: str = Field(FLEET_PROTOCOL_VERSION, description="Fleet protocol version.")
    kind: str = Field(description="Envelope kind.")
    run_id: Identifier = Field(description="Run of the task.")
    step_id: Identifier = Field(description="Step of the task.")
    task_id: Identifier = Field(description="The task.")
    adapter: AdapterInfo = Field(description="Adapter that produced the envelope.")
    seq: int = Field(ge=0, description="Sequence number within the task attempt, from 0.")
    at: Timestamp = Field(description="When the adapter observed it.")
    seed: int = Field(ge=1, description="The run's seed.")
    trace: TraceContext = Field(
        default_factory=TraceContext, description="The task's W3C trace context."
    )
    usage: FleetUsage | None = Field(
        None,
        description=(
            "What the attempt has used so far (cumulative, not since the last envelope); the "
            "fleet counts it against the run's budget as it arrives."
        ),
    )

    def validate(self) -> Self:  # type: ignore[override]  # replaces pydantic v1's deprecated classmethod
        """Check this envelope against ``agent_run.json`` (JSON Schema); raise ContractError."""
        from fleetforge.schemas import validate as validate_schema

        validate_schema("agent_run", self.model_dump(mode="json", exclude_none=True))
        return self


class StartEnvelope(AgentRunEnvelope):
    """The adapter started working on the task."""

    kind: Literal["start"] = Field("start", description="Envelope kind.")
    inputs: JsonObject = Field(default_factory=dict, description="The task's resolved inputs.")


class EmitEnvelope(AgentRunEnvelope):
    """Something happened while working: a step, a message, a tool call or result, a pause."""

    kind: Literal["emit"] = Field("emit", description="Envelope kind.")
    event: EmitEvent = Field(description="What happened.")
    payload: JsonObject = Field(default_factory=dict, description="Details, as JSON.")


class CheckpointEnvelope(AgentRunEnvelope):
    """The agent saved its state; large state lives in the artifact store."""

    kind: Literal["checkpoint"] = Field("checkpoint", description="Envelope kind.")
    checkpoint_id: str = Field(min_length=1, description="Framework checkpoint id.")
    state_digest: Digest = Field(description="Digest of the serialized state.")
    artifact: FleetArtifactRef | None = Field(
        None, description="Where the state is stored, when it is not inline."
    )
    state: JsonObject | None = Field(None, description="The state itself, when small.")


class CompleteEnvelope(AgentRunEnvelope):
    """The agent finished with an output."""

    kind: Literal["complete"] = Field("complete", description="Envelope kind.")
    output: Any = Field(description="The task's output (any JSON value).")
    usage: FleetUsage = Field(default_factory=FleetUsage, description="Resources used.")

    @model_serializer(mode="wrap")
    def _keep_null_output(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        # `output` is required and null is a valid output (a handler that returns None):
        # dumps with exclude_none (the MCP client's, the store's) must still carry it
        data = handler(self)
        excluded = info.exclude or ()
        if info.exclude_none and isinstance(data, dict) and "output" not in excluded:
            data.setdefault("output", None)
        return data


class ErrorEnvelope(AgentRunEnvelope):
    """The agent failed."""

    kind: Literal["error"] = Field("error", description="Envelope kind.")
    failure_kind: FleetTaskFailureKind = Field(description="Failure category (seed 001).")
    message: str = Field(description="What went wrong, for people.")
    retryable: bool | None = Field(
        None, description="The adapter's opinion; the retry policy decides."
    )


AnyAgentRunEnvelope = Annotated[
    StartEnvelope | EmitEnvelope | CheckpointEnvelope | CompleteEnvelope | ErrorEnvelope,
    Field(discriminator="kind"),
]
"""Any envelope, selected by `kind`."""


@cache
def _adapter() -> TypeAdapter[AnyAgentRunEnvelope]:
    return TypeAdapter(AnyAgentRunEnvelope)


def parse_envelope(data: Any) -> AgentRunEnvelope:
    """Build the envelope model for a JSON object (pydantic path; raises pydantic's error)."""
    return _adapter().validate_python(data)
