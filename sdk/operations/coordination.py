"""Operations of agents that coordinate (issue 22; docs/coordination.md): identities with
callsigns, messages, file reservations, locks, context checkpoints and cursors.

Each acts in a ``project`` as the agent named by its callsign (``agent``). Over HTTP a token
bound to a worker may only act as the agent registered with that worker id, and a token limited
to some projects sees nothing of the others (``as_agent``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from fleetforge.operations._base import Args, Operation
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

__all__ = ["COORDINATION_OPERATIONS"]

Project = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="Project key: every agent working in one repository uses the same one "
        "(by convention the repository's top folder name).",
    ),
]
AgentName = Annotated[
    str,
    Field(min_length=1, max_length=48, description="Your callsign (from fleet_register_agent)."),
]
Ttl = Annotated[float, Field(gt=0, le=30 * 24 * 3600, description="Time to live, in seconds.")]
Paths = Annotated[
    list[str],
    Field(
        description="Path patterns relative to the project root: 'src/app.py', 'src/*.py', "
        "'docs/' (= docs/**), 'src/**/test_*.py'. No absolute paths, no '..'."
    ),
]


class _AsAgent(Args):
    project: Project
    agent: AgentName


# ── agents ──────────────────────────────────────────────────────────────────────────────────


class RegisterAgentArgs(Args):
    project: Project
    callsign: str | None = Field(
        None,
        description="Callsign to use (letter first; letters, digits, '_', '-'). Omit it to get "
        "a memorable one. Registering again with your callsign resumes your identity.",
    )
    program: str = Field("", max_length=200, description="Program you run in: claude-code...")
    model: str = Field("", max_length=200, description="Model you run on.")
    task: str = Field("", max_length=2000, description="What you are working on, in a line.")


REGISTER_AGENT = Operation(
    "register_agent",
    RegisterAgentArgs,
    AgentRecord,
    "work",
    "Register an agent",
    """Join a project as an agent with a callsign (yours, or a generated one like BlueFalcon).
Call this first; every other coordination tool takes the project and your callsign. Registering
again with the same callsign is you coming back after a restart: inbox, reservations and
checkpoints are kept. ConflictError if the callsign belongs to another agent.""",
    lambda call, a: call.fleet.coord.register_agent(
        a.project,
        callsign=a.callsign,
        program=a.program,
        model=a.model,
        task=a.task,
        caller=call.caller,
    ),
    idempotent=True,
    as_agent=True,
    cli="agents register",
)


DEREGISTER_AGENT = Operation(
    "deregister_agent",
    _AsAgent,
    AgentRecord,
    "work",
    "Leave a project",
    "Leave the project when your work is done (release your reservations first).",
    lambda call, a: call.fleet.coord.deregister_agent(a.project, a.agent, caller=call.caller),
    destructive=True,
    idempotent=False,
    as_agent=True,
    cli="agents deregister",
)


class ListAgentsArgs(Args):
    project: Project


LIST_AGENTS = Operation(
    "list_agents",
    ListAgentsArgs,
    AgentList,
    "read",
    "List agents",
    """The agents of a project: callsign, program, model, task, status (active = seen in the
last 5 minutes, idle, deregistered) and when each was last seen.""",
    lambda call, a: call.fleet.coord.list_agents(a.project, caller=call.caller),
    read_only=True,
    as_agent=True,
    cli="agents",
)


# ── messages ────────────────────────────────────────────────────────────────────────────────


class SendMessageArgs(_AsAgent):
    to: list[str] = Field(
        min_length=1, description="Recipients' callsigns, or ['*'] for every agent of the project."
    )
    subject: str = Field(description="Subject line (at most 200 characters).")
    body: str = Field(description="Markdown body (at most 64 KiB).")
    importance: Literal["low", "normal", "high", "urgent"] = Field(
        "normal", description="low, normal, high or urgent."
    )
    ack_required: bool = Field(False, description="Ask the recipients to acknowledge it.")
    reply_to: str | None = Field(None, description="Message id this answers (same thread).")
    ttl_seconds: Ttl | None = Field(None, description="It leaves inboxes after this long.")
    inbox: int = Field(
        0,
        ge=0,
        le=1000,
        description="Also return up to this many messages of YOUR inbox (unread first, then "
        "newest), read after the send in the same call: reply and see what is new in one round "
        "trip. 0: do not.",
    )
    inbox_since: str | None = Field(
        None, description="With `inbox`: only messages newer than this id (`latest` of before)."
    )


SEND_MESSAGE = Operation(
    "send_message",
    SendMessageArgs,
    SentMessage,
    "work",
    "Send a message",
    """Send a message to other agents of the project (by callsign, or '*' for all). Use it to
ask a reservation holder for a file, announce what you are starting, or answer (reply_to keeps
the thread). Each recipient's inbox gets it once. Pass `inbox` (a count) to get your own inbox
back in the same answer instead of a fleet_fetch_inbox call after it. ContractError naming /to/N
for an unknown callsign; nothing is sent then.""",
    lambda call, a: call.fleet.coord.send_message(
        a.project,
        a.agent,
        a.to,
        a.subject,
        a.body,
        importance=a.importance,
        ack_required=a.ack_required,
        reply_to=a.reply_to,
        ttl_seconds=a.ttl_seconds,
        inbox=a.inbox,
        inbox_since=a.inbox_since,
        caller=call.caller,
    ),
    as_agent=True,
    cli="mail send",
)


class FetchInboxArgs(_AsAgent):
    unread_only: bool = Field(False, description="Only messages not yet read.")
    since: str | None = Field(
        None, description="Only messages newer than this message id (`latest` of a last fetch)."
    )
    importance: Literal["low", "normal", "high", "urgent"] | None = Field(
        None, description="Only messages of this importance."
    )
    thread_id: str | None = Field(None, description="Only messages of this thread.")
    limit: int = Field(50, ge=1, le=1000, description="At most this many.")


FETCH_INBOX = Operation(
    "fetch_inbox",
    FetchInboxArgs,
    InboxPage,
    "work",
    "Fetch your inbox",
    """Your messages, unread first, then newest first (expired ones are gone). Check it when you
start, before you edit shared files, and whenever you wait. Pass `latest` back as `since` to get
only what is new. Mark what you handled with fleet_mark_messages.""",
    lambda call, a: call.fleet.coord.fetch_inbox(
        a.project,
        a.agent,
        unread_only=a.unread_only,
        since=a.since,
        importance=a.importance,
        thread_id=a.thread_id,
        limit=a.limit,
        caller=call.caller,
    ),
    read_only=True,
    as_agent=True,
    cli="mail inbox",
)


class MarkMessagesArgs(_AsAgent):
    message_ids: list[str] = Field(min_length=1, description="Messages of your inbox.")
    acknowledge: bool = Field(
        False, description="Acknowledge them (what ack_required asks for); this reads them too."
    )


MARK_MESSAGES = Operation(
    "mark_messages",
    MarkMessagesArgs,
    Marked,
    "work",
    "Mark messages read or acknowledged",
    """Mark messages of your inbox read, or acknowledged (acknowledge=true) when the sender
asked for it. Returns the ids whose state changed. NotFoundError for an id not in your inbox
(nothing is marked then).""",
    lambda call, a: call.fleet.coord.mark_messages(
        a.project, a.agent, a.message_ids, acknowledge=a.acknowledge, caller=call.caller
    ),
    idempotent=True,
    as_agent=True,
    cli="mail read",
)


class GetThreadArgs(_AsAgent):
    thread_id: str = Field(description="A thread id, or any message id of the thread.")
    limit: int = Field(200, ge=1, le=1000, description="At most this many, oldest first.")


GET_THREAD = Operation(
    "get_thread",
    GetThreadArgs,
    MessageList,
    "work",
    "Read a thread",
    "The messages of a thread that you sent or received, oldest first.",
    lambda call, a: call.fleet.coord.get_thread(
        a.project, a.agent, a.thread_id, limit=a.limit, caller=call.caller
    ),
    read_only=True,
    as_agent=True,
    cli="mail thread",
)


class SearchMessagesArgs(_AsAgent):
    query: str = Field(min_length=1, max_length=500, description="Words that must all occur.")
    limit: int = Field(20, ge=1, le=200, description="At most this many, best match first.")


SEARCH_MESSAGES = Operation(
    "search_messages",
    SearchMessagesArgs,
    MessageList,
    "work",
    "Search messages",
    "Full-text search over the subjects and bodies of the messages you sent or received.",
    lambda call, a: call.fleet.coord.search_messages(
        a.project, a.agent, a.query, limit=a.limit, caller=call.caller
    ),
    read_only=True,
    as_agent=True,
    cli="mail search",
)


# ── reservations ────────────────────────────────────────────────────────────────────────────


class ReservePathsArgs(_AsAgent):
    paths: Paths
    exclusive: bool = Field(True, description="Exclusive (you write) or shared (you read).")
    ttl_seconds: Ttl = 3600.0
    reason: str = Field("", max_length=2000, description="Why, for the other agents.")
    advisory: bool = Field(
        False, description="Grant it even when it overlaps others' (records the conflicts)."
    )


RESERVE_PATHS = Operation(
    "reserve_paths",
    ReservePathsArgs,
    Reserved,
    "work",
    "Reserve files",
    """Reserve path patterns before you edit them, all or none. While you hold an exclusive
reservation the fleet's workspace tools refuse other agents' writes there, and their hooks warn
them. ConflictError when another agent holds an overlapping reservation: the error names the
holder's callsign, its pattern and expiry; message the holder or wait. Renew before ttl_seconds
runs out; release when done.""",
    lambda call, a: call.fleet.coord.reserve_paths(
        a.project,
        a.agent,
        a.paths,
        exclusive=a.exclusive,
        ttl_seconds=a.ttl_seconds,
        reason=a.reason,
        advisory=a.advisory,
        caller=call.caller,
    ),
    as_agent=True,
    cli="reserve",
)


class RenewReservationsArgs(_AsAgent):
    reservation_ids: list[str] | None = Field(None, description="Which (default: all of yours).")
    ttl_seconds: Ttl = 3600.0


RENEW_RESERVATIONS = Operation(
    "renew_reservations",
    RenewReservationsArgs,
    ReservationList,
    "work",
    "Renew reservations",
    """Move the expiry of your reservations to now + ttl_seconds. LeaseLostError for one that
expired or was released: reserve again.""",
    lambda call, a: call.fleet.coord.renew_reservations(
        a.project,
        a.agent,
        reservation_ids=a.reservation_ids,
        ttl_seconds=a.ttl_seconds,
        caller=call.caller,
    ),
    idempotent=True,
    as_agent=True,
    cli="reserve --renew",
)


class ReleaseReservationsArgs(_AsAgent):
    reservation_ids: list[str] | None = Field(None, description="Which, by id.")
    paths: list[str] | None = Field(None, description="Which, by pattern as reserved.")


RELEASE_RESERVATIONS = Operation(
    "release_reservations",
    ReleaseReservationsArgs,
    ReservationList,
    "work",
    "Release reservations",
    """Release your reservations (by id, by pattern, or all when neither is given) as soon as
your edit is done, and tell whoever asked for the files.""",
    lambda call, a: call.fleet.coord.release_reservations(
        a.project, a.agent, reservation_ids=a.reservation_ids, paths=a.paths, caller=call.caller
    ),
    idempotent=True,
    as_agent=True,
    cli="release",
)


class ListReservationsArgs(Args):
    project: Project
    agent: str | None = Field(None, description="Only this agent's (a callsign).")


LIST_RESERVATIONS = Operation(
    "list_reservations",
    ListReservationsArgs,
    ReservationList,
    "read",
    "List reservations",
    "The project's active reservations: holder, pattern, exclusive or shared, reason, expiry.",
    lambda call, a: call.fleet.coord.list_reservations(
        a.project, agent=a.agent, caller=call.caller
    ),
    read_only=True,
    as_agent=True,
    cli="reservations",
)


class CheckPathsArgs(Args):
    project: Project
    paths: list[str] = Field(
        min_length=1, description="Paths you are about to write, relative to the project root."
    )
    agent: str | None = Field(None, description="Your callsign (your own reservations pass).")


CHECK_PATHS = Operation(
    "check_paths",
    CheckPathsArgs,
    PathCheck,
    "read",
    "Check paths before writing",
    """May these paths be written? ok=false lists each path another agent holds exclusively,
with the holder's callsign and the expiry: do not write it; message the holder.""",
    lambda call, a: call.fleet.coord.check_paths(
        a.project, a.paths, agent=a.agent, caller=call.caller
    ),
    read_only=True,
    as_agent=True,
    cli="reservations check",
)


# ── locks ───────────────────────────────────────────────────────────────────────────────────


class LockArgs(_AsAgent):
    name: str = Field(min_length=1, max_length=200, description="The lock's name.")


class AcquireLockArgs(LockArgs):
    ttl_seconds: Ttl = 300.0


ACQUIRE_LOCK = Operation(
    "acquire_lock",
    AcquireLockArgs,
    LockRecord,
    "work",
    "Acquire a lock",
    """Take a named mutex (e.g. 'migrations', 'deploy') for ttl_seconds. Returns its fencing
token: pass it to renew and release, and to anything the lock protects, which should refuse a
lower token than the last it saw. ConflictError naming the holder when it is held.""",
    lambda call, a: call.fleet.coord.acquire_lock(
        a.project, a.agent, a.name, ttl_seconds=a.ttl_seconds, caller=call.caller
    ),
    as_agent=True,
    cli="lock acquire",
)


class HeldLockArgs(LockArgs):
    fencing_token: int = Field(ge=1, description="Your token from fleet_acquire_lock.")


class RenewLockArgs(HeldLockArgs):
    ttl_seconds: Ttl = 300.0


RENEW_LOCK = Operation(
    "renew_lock",
    RenewLockArgs,
    LockRecord,
    "work",
    "Renew a lock",
    """Extend a lock you hold to now + ttl_seconds. LeaseLostError when your token is stale (the
lock expired, was released or taken again): stop what the lock protected.""",
    lambda call, a: call.fleet.coord.renew_lock(
        a.project,
        a.agent,
        a.name,
        a.fencing_token,
        ttl_seconds=a.ttl_seconds,
        caller=call.caller,
    ),
    as_agent=True,
    cli="lock renew",
)


RELEASE_LOCK = Operation(
    "release_lock",
    HeldLockArgs,
    LockRecord,
    "work",
    "Release a lock",
    "Release a lock you hold. LeaseLostError when your token is stale.",
    lambda call, a: call.fleet.coord.release_lock(
        a.project, a.agent, a.name, a.fencing_token, caller=call.caller
    ),
    as_agent=True,
    cli="lock release",
)


# ── checkpoints and cursors ─────────────────────────────────────────────────────────────────


class SaveCheckpointArgs(_AsAgent):
    summary: str = Field(
        min_length=1, description="What you have done and know, for your next context."
    )
    state: dict[str, Any] = Field(
        default_factory=dict, description="Structured state (over 64 KiB goes to the CAS)."
    )
    files: list[str] = Field(default_factory=list, description="Files you touched.")
    next_steps: list[str] = Field(default_factory=list, description="What comes next.")
    reason: Literal["manual", "context_compacted", "handoff"] = Field(
        "manual", description="context_compacted: saved right before your context is compacted."
    )


SAVE_CHECKPOINT = Operation(
    "save_checkpoint",
    SaveCheckpointArgs,
    CheckpointRecord,
    "work",
    "Save a context checkpoint",
    """Save what you need to continue: a summary, small structured state, files touched, next
steps. Do it before your context is compacted (reason=context_compacted) and at milestones; on
restart, fleet_latest_checkpoint gives it back.""",
    lambda call, a: call.fleet.coord.save_checkpoint(
        a.project,
        a.agent,
        a.summary,
        state=a.state,
        files=a.files,
        next_steps=a.next_steps,
        reason=a.reason,
        caller=call.caller,
    ),
    as_agent=True,
    cli="checkpoint save",
)


LATEST_CHECKPOINT = Operation(
    "latest_checkpoint",
    _AsAgent,
    CheckpointRecord,
    "work",
    "Fetch your latest checkpoint",
    """Your newest checkpoint in the project (after a restart or a compaction): summary, state,
files and next steps. NotFoundError if you never saved one.""",
    lambda call, a: call.fleet.coord.latest_checkpoint(a.project, a.agent, caller=call.caller),
    read_only=True,
    as_agent=True,
    cli="checkpoint show",
)


class CursorArgs(_AsAgent):
    name: str = Field(min_length=1, max_length=200, description="The cursor, e.g. 'events'.")


class MoveCursorArgs(CursorArgs):
    position: str = Field(
        min_length=1, max_length=200, description="An event seq or a message id you handled."
    )


MOVE_CURSOR = Operation(
    "move_cursor",
    MoveCursorArgs,
    CursorRecord,
    "work",
    "Move a cursor",
    "Remember how far you got (an event seq, a message id) under a name, to resume from it.",
    lambda call, a: call.fleet.coord.move_cursor(
        a.project, a.agent, a.name, a.position, caller=call.caller
    ),
    idempotent=True,
    as_agent=True,
    cli="checkpoint cursor",
)


GET_CURSOR = Operation(
    "get_cursor",
    CursorArgs,
    CursorRecord,
    "work",
    "Read a cursor",
    "Where a named cursor of yours stands (position null: never set).",
    lambda call, a: call.fleet.coord.get_cursor(a.project, a.agent, a.name, caller=call.caller),
    read_only=True,
    as_agent=True,
    cli="checkpoint cursor",
)


COORDINATION_OPERATIONS: tuple[Operation[Any, Any], ...] = (
    REGISTER_AGENT,
    DEREGISTER_AGENT,
    LIST_AGENTS,
    SEND_MESSAGE,
    FETCH_INBOX,
    MARK_MESSAGES,
    GET_THREAD,
    SEARCH_MESSAGES,
    RESERVE_PATHS,
    RENEW_RESERVATIONS,
    RELEASE_RESERVATIONS,
    LIST_RESERVATIONS,
    CHECK_PATHS,
    ACQUIRE_LOCK,
    RENEW_LOCK,
    RELEASE_LOCK,
    SAVE_CHECKPOINT,
    LATEST_CHECKPOINT,
    MOVE_CURSOR,
    GET_CURSOR,
)
"""The coordination operations, in the order the docs list them."""
