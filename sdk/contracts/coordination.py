"""Coordination events (issue 22): agents with callsigns, messages, file reservations, locks,
checkpoints and cursors, each scoped by a project key.

These are the ``data`` shapes of the coordination events of :mod:`fleetforge.contracts.events`.
Coordination events have no run: their ``run_id`` is null (like worker events).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from fleetforge.contracts._base import Digest, Identifier, ProtocolModel, Timestamp

__all__ = [
    "CALLSIGN_PATTERN",
    "PROJECT_PATTERN",
    "AgentDeregisteredData",
    "AgentRegisteredData",
    "Callsign",
    "CheckpointRecordedData",
    "CursorMovedData",
    "Importance",
    "LockAcquiredData",
    "LockEndedData",
    "LockRenewedData",
    "MessageMarkedData",
    "MessageSentData",
    "ProjectKey",
    "ReservationConflict",
    "ReservationEndedData",
    "ReservationGrantedData",
    "ReservationRenewedData",
]

PROJECT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
CALLSIGN_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,47}$"

ProjectKey = Annotated[
    str,
    Field(
        pattern=PROJECT_PATTERN,
        description="Project key: letters, digits, '.', '_', '-' (default: the git repository's "
        "top folder name).",
    ),
]
Callsign = Annotated[
    str,
    Field(
        pattern=CALLSIGN_PATTERN,
        description="An agent's callsign, unique in its project (e.g. BlueFalcon).",
    ),
]
Importance = Literal["low", "normal", "high", "urgent"]


class AgentRegisteredData(ProtocolModel):
    """An agent (a worker identity that coordinates) registered in a project."""

    agent_id: Identifier = Field(description="Its worker id.")
    project: ProjectKey
    callsign: Callsign
    program: str = Field("", max_length=200, description="Program it runs in (claude-code...).")
    model: str = Field("", max_length=200, description="Model it runs on.")
    task: str = Field("", max_length=2000, description="What it is working on.")


class AgentDeregisteredData(ProtocolModel):
    """An agent left its project."""

    agent_id: Identifier = Field(description="Its worker id.")
    project: ProjectKey
    callsign: Callsign


class MessageSentData(ProtocolModel):
    """A message to some agents of a project (or all of them)."""

    message_id: Identifier = Field(description="The message.")
    project: ProjectKey
    agent_id: Identifier = Field(description="The sender's worker id.")
    sender: Callsign
    recipients: list[Identifier] = Field(description="Worker ids of the inboxes it enters.")
    to: list[str] = Field(description="Callsigns as addressed (`*`: everyone).")
    subject: str = Field(max_length=200, description="Subject line.")
    body: str = Field(description="Markdown body.")
    importance: Importance = Field("normal", description="low, normal, high or urgent.")
    ack_required: bool = Field(False, description="The sender asks for an acknowledgement.")
    thread_id: Identifier = Field(description="Its thread (its own id when it starts one).")
    reply_to: Identifier | None = Field(None, description="The message it answers.")
    expires_at: Timestamp | None = Field(None, description="It leaves inboxes then.")


class MessageMarkedData(ProtocolModel):
    """An agent read or acknowledged a message in its inbox."""

    message_id: Identifier = Field(description="The message.")
    project: ProjectKey
    agent_id: Identifier = Field(description="The reader.")


class ReservationConflict(ProtocolModel):
    """An exclusive reservation another agent holds on an overlapping pattern."""

    reservation_id: Identifier = Field(description="The reservation.")
    callsign: Callsign
    pattern: str = Field(description="Its pattern.")
    expires_at: Timestamp = Field(description="When it expires.")


class ReservationGrantedData(ProtocolModel):
    """An agent reserved a path pattern."""

    reservation_id: Identifier = Field(description="The reservation.")
    project: ProjectKey
    agent_id: Identifier = Field(description="The holder.")
    callsign: Callsign
    pattern: str = Field(description="Normalized glob, relative to the project root.")
    exclusive: bool = Field(description="Exclusive (writes) or shared (reads).")
    reason: str = Field("", description="Why, for the other agents.")
    expires_at: Timestamp = Field(description="When it expires unless renewed.")
    advisory: bool = Field(False, description="Granted despite conflicts, as asked.")
    conflicts: list[ReservationConflict] = Field(
        default_factory=list, description="What it overlapped when granted advisory."
    )


class ReservationRenewedData(ProtocolModel):
    """A reservation's expiry moved."""

    reservation_id: Identifier = Field(description="The reservation.")
    project: ProjectKey
    agent_id: Identifier = Field(description="The holder.")
    expires_at: Timestamp = Field(description="The new expiry.")


class ReservationEndedData(ProtocolModel):
    """A reservation was released, or expired (observed by a later write)."""

    reservation_id: Identifier = Field(description="The reservation.")
    project: ProjectKey
    agent_id: Identifier = Field(description="The holder.")


class LockAcquiredData(ProtocolModel):
    """An agent took a named lock."""

    project: ProjectKey
    name: str = Field(description="The lock.")
    agent_id: Identifier = Field(description="The holder.")
    callsign: Callsign
    fencing_token: int = Field(ge=1, description="Monotonic per lock.")
    expires_at: Timestamp = Field(description="When it expires unless renewed.")


class LockRenewedData(ProtocolModel):
    """A lock's expiry moved."""

    project: ProjectKey
    name: str = Field(description="The lock.")
    agent_id: Identifier = Field(description="The holder.")
    fencing_token: int = Field(ge=1, description="The holder's token.")
    expires_at: Timestamp = Field(description="The new expiry.")


class LockEndedData(ProtocolModel):
    """A lock was released, or expired (observed by a later write)."""

    project: ProjectKey
    name: str = Field(description="The lock.")
    agent_id: Identifier = Field(description="The holder.")
    fencing_token: int = Field(ge=1, description="The holder's token.")


class CheckpointRecordedData(ProtocolModel):
    """An agent saved what it needs to recover its context."""

    checkpoint_id: Identifier = Field(description="The checkpoint.")
    project: ProjectKey
    agent_id: Identifier = Field(description="The agent.")
    reason: Literal["manual", "context_compacted", "handoff"] = Field(
        "manual", description="Why it was saved."
    )
    summary: str = Field(description="What has been done, for the agent's next context.")
    state: dict[str, Any] = Field(default_factory=dict, description="Small structured state.")
    files: list[str] = Field(default_factory=list, description="Files touched.")
    next_steps: list[str] = Field(default_factory=list, description="What comes next.")
    state_digest: Digest | None = Field(None, description="Larger state, in the CAS.")


class CursorMovedData(ProtocolModel):
    """A named position of an agent moved (in the event stream or its inbox)."""

    project: ProjectKey
    agent_id: Identifier = Field(description="The agent.")
    name: str = Field(description="The cursor.")
    position: str = Field(description="An event seq or a message id.")
