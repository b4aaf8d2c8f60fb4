"""The coordination methods of :class:`~fleetforge.client.FleetClient` (issue 22): one per
operation of :mod:`fleetforge.operations.coordination`, same arguments on every transport."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel

from fleetforge.operations import coordination as co
from fleetforge.operations.coord_results import (
    AgentList,
    AgentRecord,
    CheckpointRecord,
    CursorRecord,
    InboxPage,
    LockRecord,
    Marked,
    MessageList,
    PathCheck,
    ReservationList,
    Reserved,
    SentMessage,
)

if TYPE_CHECKING:
    from fleetforge.operations import Args, Operation

__all__ = ["CoordinationMethods"]

A = TypeVar("A", bound="Args")
R = TypeVar("R", bound=BaseModel)
Importance = Literal["low", "normal", "high", "urgent"]


class CoordinationMethods:
    """Agents, messages, reservations, locks, checkpoints and cursors (docs/coordination.md).
    Every method acts in ``project`` as the agent with callsign ``agent``."""

    if TYPE_CHECKING:

        async def _call(self, op: Operation[A, R], /, **fields: Any) -> R: ...

    async def register_agent(
        self,
        project: str,
        *,
        callsign: str | None = None,
        program: str = "",
        model: str = "",
        task: str = "",
    ) -> AgentRecord:
        """Join ``project`` with a callsign (generated when None); again = come back."""
        return await self._call(
            co.REGISTER_AGENT,
            project=project,
            callsign=callsign,
            program=program,
            model=model,
            task=task,
        )

    async def deregister_agent(self, project: str, agent: str) -> AgentRecord:
        """Leave the project."""
        return await self._call(co.DEREGISTER_AGENT, project=project, agent=agent)

    async def list_agents(self, project: str) -> AgentList:
        """The project's agents, by callsign."""
        return await self._call(co.LIST_AGENTS, project=project)

    async def send_message(
        self,
        project: str,
        agent: str,
        to: Sequence[str],
        subject: str,
        body: str,
        *,
        importance: Importance = "normal",
        ack_required: bool = False,
        reply_to: str | None = None,
        ttl_seconds: float | None = None,
        inbox: int = 0,
        inbox_since: str | None = None,
    ) -> SentMessage:
        """Send a message to callsigns of the project (``["*"]``: everyone); with ``inbox`` > 0
        the answer also carries your own inbox (up to that many), read in the same call."""
        return await self._call(
            co.SEND_MESSAGE,
            project=project,
            agent=agent,
            to=list(to),
            subject=subject,
            body=body,
            importance=importance,
            ack_required=ack_required,
            reply_to=reply_to,
            ttl_seconds=ttl_seconds,
            inbox=inbox,
            inbox_since=inbox_since,
        )

    async def fetch_inbox(
        self,
        project: str,
        agent: str,
        *,
        unread_only: bool = False,
        since: str | None = None,
        importance: Importance | None = None,
        thread_id: str | None = None,
        limit: int = 50,
    ) -> InboxPage:
        """The agent's inbox, unread first, then newest first."""
        return await self._call(
            co.FETCH_INBOX,
            project=project,
            agent=agent,
            unread_only=unread_only,
            since=since,
            importance=importance,
            thread_id=thread_id,
            limit=limit,
        )

    async def mark_messages(
        self, project: str, agent: str, message_ids: Sequence[str], *, acknowledge: bool = False
    ) -> Marked:
        """Mark inbox messages read (or acknowledged)."""
        return await self._call(
            co.MARK_MESSAGES,
            project=project,
            agent=agent,
            message_ids=list(message_ids),
            acknowledge=acknowledge,
        )

    async def get_thread(
        self, project: str, agent: str, thread_id: str, *, limit: int = 200
    ) -> MessageList:
        """A thread's messages the agent sent or received, oldest first."""
        return await self._call(
            co.GET_THREAD, project=project, agent=agent, thread_id=thread_id, limit=limit
        )

    async def search_messages(
        self, project: str, agent: str, query: str, *, limit: int = 20
    ) -> MessageList:
        """Full-text search in the agent's messages, best first."""
        return await self._call(
            co.SEARCH_MESSAGES, project=project, agent=agent, query=query, limit=limit
        )

    async def reserve_paths(
        self,
        project: str,
        agent: str,
        paths: Sequence[str],
        *,
        exclusive: bool = True,
        ttl_seconds: float = 3600.0,
        reason: str = "",
        advisory: bool = False,
    ) -> Reserved:
        """Reserve path patterns, all or none (ConflictError names the holder)."""
        return await self._call(
            co.RESERVE_PATHS,
            project=project,
            agent=agent,
            paths=list(paths),
            exclusive=exclusive,
            ttl_seconds=ttl_seconds,
            reason=reason,
            advisory=advisory,
        )

    async def renew_reservations(
        self,
        project: str,
        agent: str,
        *,
        reservation_ids: Sequence[str] | None = None,
        ttl_seconds: float = 3600.0,
    ) -> ReservationList:
        """Renew the agent's reservations (all, or those named)."""
        ids = None if reservation_ids is None else list(reservation_ids)
        return await self._call(
            co.RENEW_RESERVATIONS,
            project=project,
            agent=agent,
            reservation_ids=ids,
            ttl_seconds=ttl_seconds,
        )

    async def release_reservations(
        self,
        project: str,
        agent: str,
        *,
        reservation_ids: Sequence[str] | None = None,
        paths: Sequence[str] | None = None,
    ) -> ReservationList:
        """Release the agent's reservations (by id, by pattern, or all)."""
        return await self._call(
            co.RELEASE_RESERVATIONS,
            project=project,
            agent=agent,
            reservation_ids=None if reservation_ids is None else list(reservation_ids),
            paths=None if paths is None else list(paths),
        )

    async def list_reservations(self, project: str, *, agent: str | None = None) -> ReservationList:
        """Active reservations of the project (of one agent)."""
        return await self._call(co.LIST_RESERVATIONS, project=project, agent=agent)

    async def check_paths(
        self, project: str, paths: Sequence[str], *, agent: str | None = None
    ) -> PathCheck:
        """May ``agent`` write these paths? (``blocked`` names each holder.)"""
        return await self._call(co.CHECK_PATHS, project=project, paths=list(paths), agent=agent)

    async def acquire_lock(
        self, project: str, agent: str, name: str, *, ttl_seconds: float = 300.0
    ) -> LockRecord:
        """Take a named lock; returns its fencing token."""
        return await self._call(
            co.ACQUIRE_LOCK, project=project, agent=agent, name=name, ttl_seconds=ttl_seconds
        )

    async def renew_lock(
        self, project: str, agent: str, name: str, fencing_token: int, *, ttl_seconds: float = 300.0
    ) -> LockRecord:
        """Extend a lock you hold (LeaseLostError: your token is stale)."""
        return await self._call(
            co.RENEW_LOCK,
            project=project,
            agent=agent,
            name=name,
            fencing_token=fencing_token,
            ttl_seconds=ttl_seconds,
        )

    async def release_lock(
        self, project: str, agent: str, name: str, fencing_token: int
    ) -> LockRecord:
        """Release a lock you hold (LeaseLostError: your token is stale)."""
        return await self._call(
            co.RELEASE_LOCK, project=project, agent=agent, name=name, fencing_token=fencing_token
        )

    async def save_checkpoint(
        self,
        project: str,
        agent: str,
        summary: str,
        *,
        state: dict[str, Any] | None = None,
        files: Sequence[str] = (),
        next_steps: Sequence[str] = (),
        reason: Literal["manual", "context_compacted", "handoff"] = "manual",
    ) -> CheckpointRecord:
        """Save a context checkpoint (large state goes to the CAS)."""
        return await self._call(
            co.SAVE_CHECKPOINT,
            project=project,
            agent=agent,
            summary=summary,
            state=state or {},
            files=list(files),
            next_steps=list(next_steps),
            reason=reason,
        )

    async def latest_checkpoint(self, project: str, agent: str) -> CheckpointRecord:
        """The agent's newest checkpoint."""
        return await self._call(co.LATEST_CHECKPOINT, project=project, agent=agent)

    async def move_cursor(self, project: str, agent: str, name: str, position: str) -> CursorRecord:
        """Set a named cursor of the agent."""
        return await self._call(
            co.MOVE_CURSOR, project=project, agent=agent, name=name, position=position
        )

    async def get_cursor(self, project: str, agent: str, name: str) -> CursorRecord:
        """A named cursor of the agent (position None: never set)."""
        return await self._call(co.GET_CURSOR, project=project, agent=agent, name=name)
