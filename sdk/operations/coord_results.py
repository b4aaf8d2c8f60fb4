"""What the coordination operations return (issue 22; docs/coordination.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "AgentList",
    "AgentRecord",
    "CheckpointRecord",
    "CursorRecord",
    "InboxPage",
    "LockRecord",
    "Marked",
    "MessageList",
    "MessageRecord",
    "PathBlock",
    "PathCheck",
    "ReservationList",
    "ReservationRecord",
    "Reserved",
]


class AgentRecord(BaseModel):
    """An agent of a project: its callsign, what it runs and when it was last seen."""

    agent_id: str = Field(description="Its worker id (tokens bind to it).")
    project: str = Field(description="Its project.")
    callsign: str = Field(description="Its callsign, unique in the project.")
    program: str = Field(description="Program it runs in.")
    model: str = Field(description="Model it runs on.")
    task: str = Field(description="What it is working on.")
    status: Literal["active", "idle", "deregistered"] = Field(
        description="active (seen in the last 5 minutes), idle, or deregistered."
    )
    registered_at: datetime = Field(description="When it first registered.")
    last_seen_at: datetime = Field(description="Its last coordination call.")


class AgentList(BaseModel):
    """Agents of a project."""

    agents: list[AgentRecord] = Field(description="By callsign.")


class MessageRecord(BaseModel):
    """A message as its sender wrote it, with where it stands in the reader's inbox."""

    message_id: str = Field(description="The message.")
    project: str = Field(description="Its project.")
    sender: str = Field(description="Sender's callsign.")
    to: list[str] = Field(description="Callsigns as addressed (`*`: everyone).")
    subject: str = Field(description="Subject line.")
    body: str = Field(description="Markdown body.")
    importance: str = Field(description="low, normal, high or urgent.")
    ack_required: bool = Field(description="The sender asks for an acknowledgement.")
    thread_id: str = Field(description="Its thread.")
    reply_to: str | None = Field(None, description="The message it answers.")
    sent_at: datetime = Field(description="When it was sent.")
    expires_at: datetime | None = Field(None, description="When it leaves inboxes.")
    read_at: datetime | None = Field(None, description="When the reader read it.")
    acked_at: datetime | None = Field(None, description="When the reader acknowledged it.")


class InboxPage(BaseModel):
    """Messages in an inbox: unread first, then newest first."""

    messages: list[MessageRecord] = Field(description="The messages.")
    unread: int = Field(description="Unread messages in this page.")
    latest: str | None = Field(
        None, description="Newest message id in the page: pass it as `since` next time."
    )


class SentMessage(MessageRecord):
    """A message just sent, and (when asked with ``inbox``) the sender's own inbox, read in the
    same call."""

    inbox: InboxPage | None = Field(
        None, description="Your inbox, unread first, when you asked for it with `inbox`."
    )


class MessageList(BaseModel):
    """Messages (a thread, oldest first; or search hits, best first)."""

    messages: list[MessageRecord] = Field(description="The messages.")


class Marked(BaseModel):
    """Messages marked read or acknowledged."""

    message_ids: list[str] = Field(description="Messages whose state changed.")


class ReservationRecord(BaseModel):
    """A reservation of a path pattern."""

    reservation_id: str = Field(description="The reservation.")
    project: str = Field(description="Its project.")
    callsign: str = Field(description="Holder's callsign.")
    pattern: str = Field(description="Normalized glob, relative to the project root.")
    exclusive: bool = Field(description="Exclusive (writes) or shared.")
    reason: str = Field(description="Why.")
    advisory: bool = Field(description="Granted despite conflicts, as asked.")
    granted_at: datetime = Field(description="When it was granted.")
    expires_at: datetime = Field(description="When it expires unless renewed.")


class Reserved(BaseModel):
    """What a reservation request got."""

    granted: list[ReservationRecord] = Field(description="Reservations granted.")
    conflicts: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Overlapping reservations of others (only when granted as advisory).",
    )


class ReservationList(BaseModel):
    """Active reservations."""

    reservations: list[ReservationRecord] = Field(description="By id.")


class PathBlock(BaseModel):
    """A path another agent holds exclusively."""

    path: str = Field(description="The path, relative to the project root.")
    holder: str = Field(description="Holder's callsign.")
    pattern: str = Field(description="The pattern it holds.")
    reservation_id: str = Field(description="The reservation.")
    expires_at: datetime = Field(description="When it expires unless renewed.")


class PathCheck(BaseModel):
    """May these paths be written? ``ok`` when no other agent holds one exclusively."""

    ok: bool = Field(description="No path is held exclusively by another agent.")
    blocked: list[PathBlock] = Field(description="The paths that are, with their holders.")


class LockRecord(BaseModel):
    """A named lock and its fencing token."""

    project: str = Field(description="Its project.")
    name: str = Field(description="The lock.")
    holder: str = Field(description="Holder's callsign.")
    fencing_token: int = Field(description="Pass it to renew or release; higher = newer.")
    expires_at: datetime = Field(description="When it expires unless renewed.")
    status: Literal["held", "released", "expired"] = Field(description="Its state.")


class CheckpointRecord(BaseModel):
    """A context checkpoint: what an agent needs to pick up its work again."""

    checkpoint_id: str = Field(description="The checkpoint.")
    project: str = Field(description="Its project.")
    callsign: str = Field(description="The agent's callsign.")
    reason: str = Field(description="manual, context_compacted or handoff.")
    summary: str = Field(description="What has been done.")
    state: dict[str, Any] = Field(description="Structured state (read back from the CAS if big).")
    files: list[str] = Field(description="Files touched.")
    next_steps: list[str] = Field(description="What comes next.")
    state_digest: str | None = Field(None, description="Digest of the state kept in the CAS.")
    saved_at: datetime = Field(description="When it was saved.")


class CursorRecord(BaseModel):
    """A named position of an agent."""

    name: str = Field(description="The cursor.")
    position: str | None = Field(None, description="Its position (None: never set).")
    moved_at: datetime | None = Field(None, description="When it last moved.")
