"""Messages between agents: send, inbox, read, acknowledge, threads and full-text search."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fleetforge.errors import ContractError, ErrorDetail, NotFoundError
from fleetforge.fleet.access import Caller
from fleetforge.fleet.coord._base import Agent, Q, as_datetime, to_dt, transient
from fleetforge.fleet.coord.agents import Agents
from fleetforge.fleet.store._base import iso
from fleetforge.ids import new_id
from fleetforge.operations.coord_results import (
    InboxPage,
    Marked,
    MessageList,
    MessageRecord,
    SentMessage,
)

__all__ = ["MAX_BODY_BYTES", "Messages"]

MAX_BODY_BYTES = 64 * 1024
MAX_SUBJECT = 200
MAX_RECIPIENTS = 1000
IMPORTANCE = ("low", "normal", "high", "urgent")
_COLUMNS = (
    "m.message_id, m.project, m.agent_id, m.sender, m.recipients, m.addressed, m.subject, "
    "m.body, m.importance, m.ack_required, m.thread_id, m.reply_to, m.sent_at, "
    "m.expires_at"
)
_LIVE = "(i.expires_at IS NULL OR i.expires_at > :now)"
_WORD = re.compile(r"\w+", re.UNICODE)


class Messages(Agents):
    """Messages between the agents of a project."""

    @transient
    def send_message(
        self,
        project: str,
        agent: str,
        to: list[str],
        subject: str,
        body: str,
        *,
        importance: str = "normal",
        ack_required: bool = False,
        reply_to: str | None = None,
        ttl_seconds: float | None = None,
        inbox: int = 0,
        inbox_since: str | None = None,
        caller: Caller | None = None,
    ) -> SentMessage:
        """Send a message to some callsigns of the project (``*``: every registered agent but
        the sender). Each recipient's inbox gets it exactly once. With ``inbox`` > 0 the answer
        also carries the sender's own inbox (up to that many, newer than ``inbox_since``), read
        in the same transaction: an agent replies and sees what is new in one call."""
        self._check_message(to, subject, body, importance)
        if not 0 <= inbox <= 1000:
            raise ContractError(
                "inbox must be 0..1000", details=[ErrorDetail("/inbox", "out of range")]
            )
        _check_since(inbox_since, "/inbox_since")
        now = self.clock.now()
        expires = None if ttl_seconds is None else now + self._ttl(ttl_seconds)
        with self._unit() as unit:
            tx = unit.tx
            me = self._agent(tx, project, agent, caller)
            registered = {
                r[1]: r[0] for r in tx.fetchall(Q["agents_registered"], {"project": project})
            }
            if "*" in to:
                recipients = [aid for sign, aid in registered.items() if aid != me.agent_id]
            else:
                unknown = [
                    ErrorDetail(f"/to/{i}", f"no agent '{sign}' in project '{project}'")
                    for i, sign in enumerate(to)
                    if sign not in registered
                ]
                if unknown:
                    names = ", ".join(repr(to[int(d.pointer.rsplit("/", 1)[1])]) for d in unknown)
                    raise ContractError(
                        f"unknown recipient {names} in project '{project}' "
                        "(list_agents shows who is there)",
                        details=unknown,
                    )
                recipients = list(dict.fromkeys(registered[sign] for sign in to))
            thread_id = message_id = new_id("msg")
            if reply_to is not None:
                parent = tx.fetchone(Q["message"], {"message_id": reply_to, "project": project})
                if parent is None or not self._may_see(tx, me, parent):
                    raise NotFoundError(
                        f"no message '{reply_to}' in project '{project}' to reply to",
                        details=[ErrorDetail("/reply_to", "not found")],
                    )
                thread_id = parent[10]
            self._append(
                unit,
                [
                    self._event(
                        "message_sent",
                        now,
                        message_id=message_id,
                        project=project,
                        agent_id=me.agent_id,
                        sender=me.callsign,
                        recipients=recipients,
                        to=list(dict.fromkeys(to)),
                        subject=subject,
                        body=body,
                        importance=importance,
                        ack_required=ack_required,
                        thread_id=thread_id,
                        reply_to=reply_to,
                        expires_at=expires,
                    )
                ],
            )
            row = tx.fetchone(Q["message"], {"message_id": message_id, "project": project})
            assert row is not None
            sent = SentMessage.model_validate(vars(_message(tx, row)))
            if inbox:
                sent.inbox = _inbox(tx, me, project, now, limit=inbox, since=inbox_since)
            return sent

    @staticmethod
    def _check_message(to: list[str], subject: str, body: str, importance: str) -> None:
        problems = []
        if not to:
            problems.append(ErrorDetail("/to", "must name at least one callsign, or '*'"))
        elif len(to) > MAX_RECIPIENTS:
            problems.append(ErrorDetail("/to", f"at most {MAX_RECIPIENTS} recipients"))
        if not subject.strip():
            problems.append(ErrorDetail("/subject", "must not be empty"))
        elif len(subject) > MAX_SUBJECT:
            problems.append(ErrorDetail("/subject", f"longer than {MAX_SUBJECT} characters"))
        if len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
            problems.append(ErrorDetail("/body", f"larger than {MAX_BODY_BYTES:,} bytes"))
        problems += [
            ErrorDetail(f"/{name}", "may not contain NUL")
            for name, value in (("subject", subject), ("body", body))
            if "\x00" in value
        ]
        if importance not in IMPORTANCE:
            problems.append(ErrorDetail("/importance", f"must be one of {', '.join(IMPORTANCE)}"))
        if problems:
            raise ContractError(
                "message not sent: " + "; ".join(f"{d.pointer} {d.message}" for d in problems),
                details=problems,
            )

    @staticmethod
    def _may_see(tx: Any, me: Agent, row: tuple[Any, ...]) -> bool:
        if row[2] == me.agent_id:
            return True
        return (
            tx.fetchone(Q["inbox_entry"], {"agent_id": me.agent_id, "message_id": row[0]})
            is not None
        )

    def fetch_inbox(
        self,
        project: str,
        agent: str,
        *,
        unread_only: bool = False,
        since: str | None = None,
        importance: str | None = None,
        thread_id: str | None = None,
        limit: int = 50,
        caller: Caller | None = None,
    ) -> InboxPage:
        """The agent's inbox: unread first, then newest first; expired messages are left out."""
        if not 1 <= limit <= 1000:
            raise ContractError(
                "limit must be 1..1000", details=[ErrorDetail("/limit", "out of range")]
            )
        if importance is not None and importance not in IMPORTANCE:
            raise ContractError(
                f"importance must be one of {', '.join(IMPORTANCE)}",
                details=[ErrorDetail("/importance", "unknown")],
            )
        _check_since(since, "/since")
        with self.store.backend.read() as tx:
            me = self._agent(tx, project, agent, caller)
            return _inbox(
                tx,
                me,
                project,
                self.clock.now(),
                limit=limit,
                unread_only=unread_only,
                since=since,
                importance=importance,
                thread_id=thread_id,
            )

    @transient
    def mark_messages(
        self,
        project: str,
        agent: str,
        message_ids: list[str],
        *,
        acknowledge: bool = False,
        caller: Caller | None = None,
    ) -> Marked:
        """Mark messages of the agent's inbox read (or acknowledged, which reads them too);
        NotFoundError for one that is not in its inbox, and nothing is marked."""
        if not message_ids:
            raise ContractError(
                "message_ids must name at least one message",
                details=[ErrorDetail("/message_ids", "empty")],
            )
        now = self.clock.now()
        kind = "message_acknowledged" if acknowledge else "message_read"
        changed: list[str] = []
        with self._unit() as unit:
            me = self._agent(unit.tx, project, agent, caller)
            events = []
            for i, message_id in enumerate(dict.fromkeys(message_ids)):
                row = unit.tx.fetchone(
                    Q["inbox_entry"], {"agent_id": me.agent_id, "message_id": message_id}
                )
                if row is None:
                    raise NotFoundError(
                        f"no message '{message_id}' in the inbox of '{agent}'",
                        details=[ErrorDetail(f"/message_ids/{i}", "not in this inbox")],
                    )
                if row[1 if acknowledge else 0] is None:
                    changed.append(message_id)
                    events.append(
                        self._event(
                            kind, now, message_id=message_id, project=project, agent_id=me.agent_id
                        )
                    )
            self._append(unit, events)
        return Marked(message_ids=changed)

    def get_thread(
        self,
        project: str,
        agent: str,
        thread_id: str,
        *,
        limit: int = 200,
        caller: Caller | None = None,
    ) -> MessageList:
        """The messages of a thread the agent sent or received, oldest first (``thread_id``
        may be any message id of the thread)."""
        with self.store.backend.read() as tx:
            me = self._agent(tx, project, agent, caller)
            row = tx.fetchone(Q["message"], {"message_id": thread_id, "project": project})
            thread = row[10] if row is not None else thread_id
            rows = tx.fetchall(
                Q["thread"],
                {"project": project, "thread_id": thread, "limit": max(1, min(limit, 1000))},
            )
            mine = [r for r in rows if self._may_see(tx, me, r)]
            if not mine:
                raise NotFoundError(
                    f"no thread '{thread_id}' in project '{project}' for '{agent}'",
                    details=[ErrorDetail("/thread_id", "not found")],
                )
            return MessageList(messages=[_message(tx, r) for r in mine])

    def search_messages(
        self,
        project: str,
        agent: str,
        query: str,
        *,
        limit: int = 20,
        caller: Caller | None = None,
    ) -> MessageList:
        """Full-text search over the subjects and bodies of the messages the agent sent or
        received (SQLite FTS5; PostgreSQL full text), best match first. Every word must occur."""
        words = _WORD.findall(query)[:32]
        if not words:
            raise ContractError(
                "query must contain at least one word", details=[ErrorDetail("/query", "no words")]
            )
        with self.store.backend.read() as tx:
            me = self._agent(tx, project, agent, caller)
            params: dict[str, Any] = {
                "project": project,
                "agent_id": me.agent_id,
                "limit": max(1, min(limit, 200)),
            }
            mine = (
                "(m.agent_id = :agent_id OR EXISTS (SELECT 1 FROM coord_inbox i WHERE "
                "i.agent_id = :agent_id AND i.message_id = m.message_id))"
            )
            if self.store.backend.name == "sqlite":
                params["q"] = " ".join('"' + w.replace('"', "") + '"' for w in words)
                sql = (
                    f"SELECT {_COLUMNS} FROM coord_messages_fts f JOIN coord_messages m "
                    "ON m.rowid = f.rowid WHERE coord_messages_fts MATCH :q "
                    f"AND m.project = :project AND {mine} ORDER BY f.rank, m.message_id DESC "
                    "LIMIT :limit"
                )
            else:
                params["q"] = " ".join(words)
                sql = (
                    f"SELECT {_COLUMNS} FROM coord_messages m WHERE m.project = :project "
                    f"AND m.tsv @@ plainto_tsquery('english', :q) AND {mine} "
                    "ORDER BY ts_rank(m.tsv, plainto_tsquery('english', :q)) DESC, "
                    "m.message_id DESC LIMIT :limit"
                )
            rows = tx.fetchall(sql, params)
            return MessageList(messages=[_message(tx, r) for r in rows])


def _message(
    tx: Any, row: tuple[Any, ...], read_at: Any = None, acked_at: Any = None
) -> MessageRecord:
    (
        message_id,
        project,
        _agent_id,
        sender,
        _recipients,
        addressed,
        subject,
        body,
        importance,
        ack_required,
        thread_id,
        reply_to,
        sent_at,
        expires_at,
    ) = row
    return MessageRecord(
        message_id=message_id,
        project=project,
        sender=sender,
        to=tx.load_json(addressed),
        subject=subject,
        body=body,
        importance=importance,
        ack_required=bool(ack_required),
        thread_id=thread_id,
        reply_to=reply_to,
        sent_at=as_datetime(sent_at),
        expires_at=to_dt(expires_at),
        read_at=to_dt(read_at),
        acked_at=to_dt(acked_at),
    )


def _check_since(since: str | None, pointer: str) -> None:
    """A ``since`` is a message id (compared as text): one with NUL is refused here, before
    any write, the same on every store (PostgreSQL's text cannot hold NUL)."""
    if since is not None and "\x00" in since:
        raise ContractError(
            f"{pointer[1:]} is not a message id", details=[ErrorDetail(pointer, "contains NUL")]
        )


def _inbox(
    tx: Any,
    me: Agent,
    project: str,
    now: datetime,
    *,
    limit: int,
    unread_only: bool = False,
    since: str | None = None,
    importance: str | None = None,
    thread_id: str | None = None,
) -> InboxPage:
    """``me``'s inbox as of ``now``: unread first, then newest first; expired ones left out."""
    where = ["i.agent_id = :agent_id", "i.project = :project", _LIVE]
    params: dict[str, Any] = {
        "agent_id": me.agent_id,
        "project": project,
        "now": iso(now),
        "limit": limit,
    }
    if unread_only:
        where.append("i.unread = 1")
    if since:
        where.append("i.message_id > :since")
        params["since"] = since
    if importance:
        where.append("i.importance = :importance")
        params["importance"] = importance
    if thread_id:
        where.append("i.thread_id = :thread_id")
        params["thread_id"] = thread_id
    sql = (
        f"SELECT {_COLUMNS}, i.read_at, i.acked_at FROM coord_inbox i "
        f"JOIN coord_messages m ON m.message_id = i.message_id "
        f"WHERE {' AND '.join(where)} "
        "ORDER BY i.unread DESC, i.message_id DESC LIMIT :limit"
    )
    messages = [_message(tx, r[:14], r[14], r[15]) for r in tx.fetchall(sql, params)]
    return InboxPage(
        messages=messages,
        unread=sum(1 for m in messages if m.read_at is None),
        latest=max((m.message_id for m in messages), default=None),
    )
