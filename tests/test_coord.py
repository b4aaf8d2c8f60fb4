"""Coordination (issue 22) on both stores: agents, messages, reservations, locks, checkpoints,
cursors, project isolation, bad input, and replay == projections after all of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetforge import schemas
from fleetforge.contracts.events import parse_event
from fleetforge.errors import (
    ConflictError,
    ContractError,
    ForbiddenError,
    LeaseLostError,
    NotFoundError,
)
from fleetforge.fleet.access import Caller
from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.coord import Coordination
from fleetforge.fleet.projections.coordination import CoordinationProjection
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore

P = "demo"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def coord(store: EventStore, clock: ManualClock, tmp_path: Path) -> Coordination:
    fleet = SyncFleetService(store, clock=clock, artifacts=ArtifactStore(tmp_path / "cas"))
    return fleet.coord


def _pair(coord: Coordination) -> tuple[str, str]:
    coord.register_agent(P, callsign="Alpha", program="claude-code", model="m", task="api")
    coord.register_agent(P, callsign="Bravo", program="cursor")
    return "Alpha", "Bravo"


# ── agents ───────────────────────────────────────────────────────────────────────────────────


def test_agents_register_with_callsigns_and_come_back(
    coord: Coordination, store: EventStore
) -> None:
    alpha = coord.register_agent(P, callsign="Alpha", program="claude-code")
    generated = coord.register_agent(P)
    assert generated.callsign != "Alpha"
    assert generated.callsign[0].isupper()
    again = coord.register_agent(P, callsign="Alpha", task="now the tests")
    assert again.agent_id == alpha.agent_id
    assert again.task == "now the tests"
    assert [a.callsign for a in coord.list_agents(P).agents] == sorted(
        ["Alpha", generated.callsign]
    )
    # an agent is a worker identity: the same record tokens bind to
    workers = {w.spec.worker_id: w.spec for w in SyncFleetService(store).list_workers()}
    assert workers[alpha.agent_id].labels == {"project": P, "callsign": "Alpha"}
    # a token bound to another worker cannot take a callsign that is held
    other = Caller.token("tok_1", "other", ["work"], worker_id="agt_other")
    with pytest.raises(ConflictError, match="taken"):
        coord.register_agent(P, callsign="Alpha", caller=other)
    gone = coord.deregister_agent(P, "Alpha")
    assert gone.status == "deregistered"
    with pytest.raises(NotFoundError, match="register it first"):
        coord.fetch_inbox(P, "Alpha")
    assert verify(store) == []


def test_agent_status_follows_the_test_clock(coord: Coordination, clock: ManualClock) -> None:
    coord.register_agent(P, callsign="Alpha")
    assert coord.get_agent(P, "Alpha").status == "active"
    clock.advance(301)
    assert coord.get_agent(P, "Alpha").status == "idle"


# ── messages ─────────────────────────────────────────────────────────────────────────────────


def test_delivery_to_many_recipients_is_exactly_once_per_inbox(
    coord: Coordination, store: EventStore
) -> None:
    names = [f"Agent{i}" for i in range(12)]
    for name in names:
        coord.register_agent(P, callsign=name)
    to = names[1:] + names[1:4]  # repeats are delivered once
    sent = coord.send_message(P, "Agent0", to, "standup", "what are you on?")
    everyone = coord.send_message(P, "Agent0", ["*"], "all hands", "**now**", importance="urgent")
    assert coord.fetch_inbox(P, "Agent0").messages == []  # the sender is not a recipient of '*'
    for name in names[1:]:
        page = coord.fetch_inbox(P, name)
        assert [m.message_id for m in page.messages] == [everyone.message_id, sent.message_id]
    with store.backend.read() as tx:
        rows = tx.fetchall("SELECT agent_id, message_id, COUNT(*) FROM coord_inbox "
                           "GROUP BY agent_id, message_id")  # fmt: skip
    assert len(rows) == 2 * 11
    assert all(r[2] == 1 for r in rows)


def test_inbox_unread_first_filters_read_ack_and_ttl(
    coord: Coordination, clock: ManualClock, store: EventStore
) -> None:
    alpha, bravo = _pair(coord)
    first = coord.send_message(P, alpha, [bravo], "one", "1", ack_required=True)
    clock.advance(1)
    second = coord.send_message(P, alpha, [bravo], "two", "2", importance="high")
    clock.advance(1)
    short = coord.send_message(P, alpha, [bravo], "three", "3", ttl_seconds=10)
    assert coord.mark_messages(P, bravo, [second.message_id]).message_ids == [second.message_id]
    assert coord.mark_messages(P, bravo, [second.message_id]).message_ids == []  # no new event
    page = coord.fetch_inbox(P, bravo)
    assert [m.subject for m in page.messages] == ["three", "one", "two"]  # unread first
    assert page.unread == 2
    assert page.latest == short.message_id
    assert [m.subject for m in coord.fetch_inbox(P, bravo, unread_only=True).messages] == [
        "three", "one"]  # fmt: skip
    assert [m.subject for m in coord.fetch_inbox(P, bravo, importance="high").messages] == ["two"]
    assert [m.subject for m in coord.fetch_inbox(P, bravo, since=second.message_id).messages] == [
        "three"]  # fmt: skip
    acked = coord.mark_messages(P, bravo, [first.message_id], acknowledge=True)
    assert acked.message_ids == [first.message_id]
    [one] = [m for m in coord.fetch_inbox(P, bravo).messages if m.subject == "one"]
    assert one.read_at is not None
    assert one.acked_at is not None
    clock.advance(10)  # the TTL passed: it leaves the inbox, stays in the log
    assert "three" not in [m.subject for m in coord.fetch_inbox(P, bravo).messages]
    assert store.count(types=["message_sent"]) == 3
    with pytest.raises(NotFoundError, match=r"not in this inbox|inbox of"):
        coord.mark_messages(P, alpha, [first.message_id])


def test_a_reply_can_bring_the_senders_inbox_in_the_same_call(
    coord: Coordination, clock: ManualClock
) -> None:
    alpha, bravo = _pair(coord)
    question = coord.send_message(P, bravo, [alpha], "q", "may I?")
    clock.advance(1)
    plain = coord.send_message(P, alpha, [bravo], "a", "no inbox asked")
    assert plain.inbox is None
    reply = coord.send_message(P, alpha, [bravo], "re: q", "yes", reply_to=question.message_id,
                               inbox=10)  # fmt: skip
    assert reply.inbox is not None
    assert [m.message_id for m in reply.inbox.messages] == [question.message_id]
    assert reply.inbox == coord.fetch_inbox(P, alpha, limit=10)  # the same page fetch_inbox gives
    clock.advance(1)
    newer = coord.send_message(P, bravo, [alpha], "q2", "and this?")
    again = coord.send_message(P, alpha, [bravo], "b", "b", inbox=10,
                               inbox_since=reply.inbox.latest)  # fmt: skip
    assert again.inbox is not None
    assert [m.message_id for m in again.inbox.messages] == [newer.message_id]
    with pytest.raises(ContractError, match="inbox") as bad:
        coord.send_message(P, alpha, [bravo], "c", "c", inbox=1001)
    assert bad.value.details[0].pointer == "/inbox"
    sent = len(coord.fetch_inbox(P, bravo).messages)
    with pytest.raises(ContractError) as nul:  # PostgreSQL's text cannot hold NUL: refused first
        coord.send_message(P, alpha, [bravo], "d", "d", inbox=5, inbox_since="msg_\x00")
    assert nul.value.details[0].pointer == "/inbox_since"
    with pytest.raises(ContractError) as nul:
        coord.fetch_inbox(P, bravo, since="msg_\x00")
    assert nul.value.details[0].pointer == "/since"
    assert len(coord.fetch_inbox(P, bravo).messages) == sent  # nothing was sent


def test_threads_and_full_text_search(coord: Coordination) -> None:
    alpha, bravo = _pair(coord)
    coord.register_agent(P, callsign="Charlie")
    ask = coord.send_message(P, alpha, [bravo], "Refactor parser", "The tokenizer is slow")
    reply = coord.send_message(P, bravo, [alpha], "Re: parser", "I will profile the tokenizer",
                               reply_to=ask.message_id)  # fmt: skip
    coord.send_message(P, alpha, ["Charlie"], "lunch", "tokenizer pizza?")
    assert reply.thread_id == ask.message_id
    thread = coord.get_thread(P, alpha, reply.message_id)
    assert [m.message_id for m in thread.messages] == [ask.message_id, reply.message_id]
    found = coord.search_messages(P, bravo, "tokenizer")
    assert {m.message_id for m in found.messages} == {ask.message_id, reply.message_id}
    assert [m.subject for m in coord.search_messages(P, "Charlie", "tokenizer pizza").messages] \
        == ["lunch"]  # fmt: skip
    assert coord.search_messages(P, "Charlie", 'parser" OR *').messages == []  # no FTS syntax
    with pytest.raises(NotFoundError):
        coord.get_thread(P, "Charlie", ask.message_id)  # not a participant


# ── reservations ─────────────────────────────────────────────────────────────────────────────


def test_a_conflicting_reservation_names_the_holder_and_writes_nothing(
    coord: Coordination, store: EventStore
) -> None:
    alpha, bravo = _pair(coord)
    held = coord.reserve_paths(P, alpha, ["src/app.py", "docs/"], reason="feature X")
    assert [r.pattern for r in held.granted] == ["src/app.py", "docs/**"]
    before = store.count()
    with pytest.raises(ConflictError, match=r"held by Alpha until 2026-01-01T01:00") as refused:
        coord.reserve_paths(P, bravo, ["tests/x.py", "src/*.py"])
    assert [d.pointer for d in refused.value.details] == ["/paths/1"]
    assert store.count() == before  # all or nothing
    assert coord.reserve_paths(P, bravo, ["src/*.md"]).granted  # provably disjoint
    shared = coord.reserve_paths(P, bravo, ["src/app.py"], exclusive=False, advisory=True)
    assert shared.granted[0].advisory
    assert shared.conflicts[0]["callsign"] == "Alpha"
    check = coord.check_paths(P, ["src/app.py", "docs/a/b.md", "README.md"], agent=bravo)
    assert not check.ok
    assert [(b.path, b.holder) for b in check.blocked] == [("src/app.py", "Alpha"),
                                                           ("docs/a/b.md", "Alpha")]  # fmt: skip
    assert coord.check_paths(P, ["src/app.py"], agent=alpha).ok  # its own
    released = coord.release_reservations(P, alpha, paths=["docs/"])
    assert [r.pattern for r in released.reservations] == ["docs/**"]
    assert coord.check_paths(P, ["docs/a/b.md"], agent=bravo).ok
    coord.release_reservations(P, alpha)
    assert coord.reserve_paths(P, bravo, ["src/**"]).granted
    assert verify(store) == []


def test_reservations_expire_and_renew_with_the_test_clock(
    coord: Coordination, clock: ManualClock, store: EventStore
) -> None:
    alpha, bravo = _pair(coord)
    [mine] = coord.reserve_paths(P, alpha, ["src/"], ttl_seconds=60).granted
    clock.advance(50)
    [renewed] = coord.renew_reservations(P, alpha, ttl_seconds=60).reservations
    assert renewed.expires_at > mine.expires_at
    clock.advance(50)
    with pytest.raises(ConflictError):
        coord.reserve_paths(P, bravo, ["src/a.py"])
    clock.advance(11)
    assert coord.check_paths(P, ["src/a.py"], agent=bravo).ok
    assert coord.list_reservations(P).reservations == []
    assert coord.reserve_paths(P, bravo, ["src/a.py"]).granted
    assert store.count(types=["reservation_expired"]) == 1  # the write that observed it
    with pytest.raises(LeaseLostError):
        coord.renew_reservations(P, alpha, reservation_ids=[mine.reservation_id])
    assert verify(store) == []


# ── locks ────────────────────────────────────────────────────────────────────────────────────


def test_lock_fencing_refuses_a_stale_holder(
    coord: Coordination, clock: ManualClock, store: EventStore
) -> None:
    alpha, bravo = _pair(coord)
    first = coord.acquire_lock(P, alpha, "deploy", ttl_seconds=30)
    assert first.fencing_token == 1
    with pytest.raises(ConflictError, match="held by Alpha"):
        coord.acquire_lock(P, bravo, "deploy")
    with pytest.raises(ConflictError, match="renew it instead"):
        coord.acquire_lock(P, alpha, "deploy")
    clock.advance(10)
    assert coord.renew_lock(P, alpha, "deploy", 1, ttl_seconds=30).expires_at > first.expires_at
    clock.advance(31)
    assert coord.get_lock(P, "deploy").status == "expired"
    second = coord.acquire_lock(P, bravo, "deploy")
    assert second.fencing_token == 2
    assert second.holder == "Bravo"
    for stale in (lambda: coord.release_lock(P, alpha, "deploy", 1),
                  lambda: coord.renew_lock(P, alpha, "deploy", 1),
                  lambda: coord.release_lock(P, bravo, "deploy", 1)):  # fmt: skip
        with pytest.raises(LeaseLostError, match="stale fencing token"):
            stale()
    assert coord.release_lock(P, bravo, "deploy", 2).status == "released"
    with pytest.raises(LeaseLostError):
        coord.release_lock(P, bravo, "deploy", 2)  # twice
    assert coord.acquire_lock(P, alpha, "deploy").fencing_token == 3
    assert store.count(types=["lock_expired"]) == 1
    assert verify(store) == []


# ── checkpoints and cursors ──────────────────────────────────────────────────────────────────


def test_checkpoints_survive_and_large_state_goes_to_the_cas(
    coord: Coordination, store: EventStore
) -> None:
    alpha, _ = _pair(coord)
    with pytest.raises(NotFoundError):
        coord.latest_checkpoint(P, alpha)
    coord.save_checkpoint(P, alpha, "small", state={"step": 1}, files=["a.py"])
    big = {"notes": "x" * 100_000}
    saved = coord.save_checkpoint(P, alpha, "before compaction", state=big,
                                  next_steps=["run tests"], reason="context_compacted")  # fmt: skip
    assert saved.state_digest is not None
    [row] = store.query_rows(types=["agent_checkpoint_saved"], after=0, limit=10)[1:]
    assert row.data["state"] == {}
    assert len(row.text or "") < 2000
    coord.register_agent(P, callsign=alpha)  # a restart
    latest = coord.latest_checkpoint(P, alpha)
    assert latest.summary == "before compaction"
    assert latest.state == big
    assert latest.next_steps == ["run tests"]
    assert latest.reason == "context_compacted"
    assert coord.get_cursor(P, alpha, "events").position is None
    coord.move_cursor(P, alpha, "events", "42")
    coord.move_cursor(P, alpha, "events", "57")
    assert coord.get_cursor(P, alpha, "events").position == "57"
    assert verify(store) == []


# ── projects ─────────────────────────────────────────────────────────────────────────────────


def test_projects_are_isolated(coord: Coordination) -> None:
    coord.register_agent("alpha-repo", callsign="Alpha")
    coord.register_agent("beta-repo", callsign="Bravo")
    coord.register_agent("beta-repo", callsign="Alpha")  # the same callsign in another project
    with pytest.raises(ContractError, match="unknown recipient 'Bravo'"):
        coord.send_message("alpha-repo", "Alpha", ["Bravo"], "hi", "there")
    coord.reserve_paths("beta-repo", "Bravo", ["src/**"])
    assert coord.check_paths("alpha-repo", ["src/app.py"], agent="Alpha").ok
    assert coord.reserve_paths("alpha-repo", "Alpha", ["src/app.py"]).granted
    coord.send_message("beta-repo", "Bravo", ["*"], "beta only", "secret plans")
    assert coord.fetch_inbox("alpha-repo", "Alpha").messages == []
    assert coord.search_messages("alpha-repo", "Alpha", "secret").messages == []
    assert [a.callsign for a in coord.list_agents("alpha-repo").agents] == ["Alpha"]
    limited = Caller.token("tok_1", "ci", ["work"], projects=["alpha-repo"])
    assert coord.list_agents("alpha-repo", caller=limited).agents
    with pytest.raises(ForbiddenError, match="limited to other projects"):
        coord.list_agents("beta-repo", caller=limited)
    with pytest.raises(ForbiddenError):
        coord.fetch_inbox("beta-repo", "Bravo", caller=limited)
    bound = Caller.token("tok_2", "bravo", ["work"], worker_id="agt_someone_else")
    with pytest.raises(ForbiddenError, match="not as agent 'Bravo'"):
        coord.fetch_inbox("beta-repo", "Bravo", caller=bound)


# ── bad input ────────────────────────────────────────────────────────────────────────────────

BAD: list[tuple[str, Callable[[Coordination], Any], str]] = [
    ("empty callsign", lambda c: c.register_agent(P, callsign=""), "/callsign"),
    ("bad project", lambda c: c.register_agent("../etc", callsign="X"), "/project"),
    ("unknown recipient", lambda c: c.send_message(P, "Alpha", ["Bravo", "Nobody"], "s", "b"),
     "/to/1"),
    ("no recipient", lambda c: c.send_message(P, "Alpha", [], "s", "b"), "/to"),
    ("body over the limit", lambda c: c.send_message(P, "Alpha", ["Bravo"], "s", "x" * 70_000),
     "/body"),
    ("empty subject", lambda c: c.send_message(P, "Alpha", ["Bravo"], " ", "b"), "/subject"),
    ("bad ttl", lambda c: c.send_message(P, "Alpha", ["Bravo"], "s", "b", ttl_seconds=0),
     "/ttl_seconds"),
    ("pattern escaping the root", lambda c: c.reserve_paths(P, "Alpha", ["src/../../etc"]),
     "/paths/0"),
    ("absolute pattern", lambda c: c.reserve_paths(P, "Alpha", ["ok.py", "/etc/passwd"]),
     "/paths/1"),
    ("backslash", lambda c: c.reserve_paths(P, "Alpha", ["..\\x"]), "/paths/0"),
    ("no pattern", lambda c: c.reserve_paths(P, "Alpha", []), "/paths"),
    ("checked path escaping", lambda c: c.check_paths(P, ["../x"]), "/paths/0"),
    ("empty lock name", lambda c: c.acquire_lock(P, "Alpha", ""), "/name"),
    ("empty summary", lambda c: c.save_checkpoint(P, "Alpha", ""), "/summary"),
    ("NaN in state", lambda c: c.save_checkpoint(P, "Alpha", "s", state={"x": float("nan")}),
     "/state/x"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "call", "pointer"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_with_its_pointer_and_nothing_written(
    coord: Coordination, store: EventStore, case: str, call: Callable[[Coordination], Any],
    pointer: str,
) -> None:  # fmt: skip
    _pair(coord)
    before = store.count()
    with pytest.raises(ContractError) as refused:
        call(coord)
    assert pointer in [d.pointer for d in refused.value.details], refused.value
    assert store.count() == before, case


# ── every coordination event is a valid run event; replay == projections ────────────────────


def test_every_coordination_event_is_valid_and_replay_reproduces_the_projections(
    coord: Coordination, clock: ManualClock, store: EventStore
) -> None:
    alpha, bravo = _pair(coord)
    m = coord.send_message(P, alpha, [bravo], "s", "b", ttl_seconds=100)
    coord.mark_messages(P, bravo, [m.message_id])
    coord.mark_messages(P, bravo, [m.message_id], acknowledge=True)
    [r] = coord.reserve_paths(P, alpha, ["a/"], ttl_seconds=10).granted
    coord.renew_reservations(P, alpha, ttl_seconds=10)
    coord.reserve_paths(P, bravo, ["b/"])
    coord.release_reservations(P, bravo)
    lock = coord.acquire_lock(P, alpha, "l", ttl_seconds=10)
    coord.renew_lock(P, alpha, "l", lock.fencing_token, ttl_seconds=10)
    coord.release_lock(P, alpha, "l", lock.fencing_token)
    coord.acquire_lock(P, alpha, "l", ttl_seconds=10)
    clock.advance(20)
    coord.acquire_lock(P, bravo, "l")
    coord.reserve_paths(P, bravo, ["a/x"])
    coord.save_checkpoint(P, alpha, "s", state={"k": [1, 2]})
    coord.move_cursor(P, alpha, "inbox", m.message_id)
    coord.deregister_agent(P, bravo)
    seen = set()
    for row in store.iter_rows():
        event = row.to_json()
        schemas.validate("run_event", event)
        assert parse_event(event).model_dump(mode="json")["data"] == row.data, row.type
        seen.add(row.type)
    assert CoordinationProjection.handles <= seen, CoordinationProjection.handles - seen
    assert r.reservation_id
    assert verify(store) == []
    store.rebuild()
    assert verify(store) == []
    assert [a.callsign for a in coord.list_agents(P).agents] == ["Alpha", "Bravo"]
