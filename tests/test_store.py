"""The event store suite: every test runs on SQLite and on PostgreSQL (the `store` fixture)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetforge.errors import ConflictError, SchemaVersionError, StoreError, UsageError
from fleetforge.fleet.replay import verify
from fleetforge.fleet.store import EventStore, open_store
from fleetforge.fleet.store.migrations import latest_version
from fleetforge.ids import new_id
from tests.factories import run_lifecycle

ROOT = Path(__file__).parents[1]


def raw_execute(url: str, statement: str) -> None:
    """Run SQL on the store's database through a plain driver connection."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            conn.execute(statement)
            conn.commit()
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]


# ── appending and reading ────────────────────────────────────────────────────────────────────


def test_append_assigns_increasing_sequence_numbers(store: EventStore) -> None:
    run_id = new_id("run")
    stored = store.append(run_lifecycle(run_id))
    seqs = [e.seq for e in stored]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert store.count() == len(stored)
    latest = store.latest()
    assert latest is not None
    assert latest.seq == seqs[-1]
    assert latest.type == "run_failed"


def test_events_come_back_as_they_went_in(store: EventStore) -> None:
    run_id = new_id("run")
    written = store.append(run_lifecycle(run_id))
    assert store.query(run_id=run_id) == written


def test_query_filters(store: EventStore) -> None:
    t0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
    a, b = new_id("run"), new_id("run")
    store.append(run_lifecycle(a, start=t0))
    store.append(run_lifecycle(b, start=t0 + timedelta(hours=1)))
    assert {e.run_id for e in store.query(run_id=a)} == {a}
    assert [e.type for e in store.query(run_id=a, types=["step_ready"])] == ["step_ready"] * 2
    assert store.count(types=["run_submitted", "run_failed"]) == 4
    assert store.count(run_id=b) == 9
    late = store.query(since=t0 + timedelta(minutes=30))
    assert {e.run_id for e in late} == {b}
    early = store.query(until=t0 + timedelta(minutes=30))
    assert {e.run_id for e in early} == {a}
    first_three = store.query(limit=3)
    assert [e.seq for e in store.query(after=first_three[-1].seq, limit=2)] == [
        e.seq for e in store.query(limit=5)[3:]
    ]
    latest_b = store.latest(run_id=b)
    assert latest_b is not None
    assert latest_b.run_id == b


def test_worker_events_have_no_run(store: EventStore) -> None:
    from tests.factories import event

    [stored] = store.append(event("worker_offline", None, worker_id="w1", reason="gone"))
    assert store.query(types=["worker_offline"]) == [stored]
    assert stored.run_id is None


def test_a_batch_is_all_or_nothing(store: EventStore) -> None:
    run_id = new_id("run")
    events = run_lifecycle(run_id)
    events.append(events[0])  # the same event id twice
    with pytest.raises(ConflictError):
        store.append(events)
    assert store.count() == 0
    assert store.table_rows("runs") == []


def test_limit_must_be_positive(store: EventStore) -> None:
    with pytest.raises(UsageError):
        store.query(limit=0)


def test_updates_and_deletes_are_refused_by_the_database(store: EventStore) -> None:
    store.append(run_lifecycle(new_id("run")))
    for statement in ("UPDATE events SET type = 'x'", "DELETE FROM events"):
        with pytest.raises(Exception, match="append-only"):
            raw_execute(store.url if store.backend.name == "sqlite" else _dsn(store), statement)
    assert store.count() == 9


def _dsn(store: EventStore) -> str:
    return str(store.backend.dsn)  # type: ignore[attr-defined]


# ── projections and replay ───────────────────────────────────────────────────────────────────


def test_runs_and_steps_projection(store: EventStore) -> None:
    run_id = new_id("run")
    store.append(run_lifecycle(run_id))
    columns = store.table_columns("runs")
    [run] = [dict(zip(columns, r, strict=True)) for r in store.table_rows("runs")]
    assert run["status"] == "failed"
    assert run["error"] == "step b failed"
    assert run["idempotency_key"] == "k1"
    assert run["started_at"] is not None
    assert run["finished_at"] is not None
    steps = {r[1]: r for r in store.table_rows("steps")}
    columns = store.table_columns("steps")
    a = dict(zip(columns, steps["a"], strict=True))
    b = dict(zip(columns, steps["b"], strict=True))
    assert (a["status"], a["attempt"]) == ("completed", 1)
    assert _json(a["output"]) == {"echo": "hi"}
    assert _json(a["task_ids"]) == [f"{run_id}_a"]
    assert (b["status"], b["failure_kind"], b["error"]) == ("failed", "agent_error", "boom")


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def test_rebuild_reproduces_the_projections(store: EventStore) -> None:
    for _ in range(3):
        store.append(run_lifecycle(new_id("run")))
    before = {t: store.table_rows(t) for t in ("runs", "steps", "artifacts")}
    assert store.rebuild() == 27
    assert {t: store.table_rows(t) for t in before} == before
    assert verify(store) == []


def test_verify_reports_a_tampered_projection(store: EventStore) -> None:
    run_id = new_id("run")
    store.append(run_lifecycle(run_id))
    url = store.url if store.backend.name == "sqlite" else _dsn(store)
    raw_execute(url, f"UPDATE runs SET status = 'completed' WHERE run_id = '{run_id}'")
    raw_execute(url, "DELETE FROM steps WHERE step_id = 'a'")
    differences = verify(store)
    assert [(d.table, d.key) for d in differences] == [
        ("runs", (run_id,)),
        ("steps", (run_id, "a")),
    ]
    assert "status: store='completed' replay='failed'" in str(differences[0])
    assert "missing from the store" in str(differences[1])


# ── migrations ───────────────────────────────────────────────────────────────────────────────


def test_schema_version_is_recorded(store: EventStore) -> None:
    latest = latest_version(store.backend.name)
    assert latest >= 2
    assert store.info().schema_version == latest
    assert store.backend.schema_version() == latest


def test_a_newer_database_is_refused(store_url: str) -> None:
    open_store(store_url).close()
    url = store_url
    if url.startswith("sqlite"):
        raw_execute(url, "INSERT INTO fleetforge_migrations VALUES (99, 'future', 'now')")
    else:
        raw_execute(url, "INSERT INTO fleetforge_migrations (version, name) VALUES (99, 'future')")
    with pytest.raises(SchemaVersionError, match="schema version 99, newer than"):
        open_store(url)


def test_reopening_applies_nothing_twice(store_url: str) -> None:
    with open_store(store_url) as first:
        first.append(run_lifecycle(new_id("run")))
    with open_store(store_url) as second:
        assert second.count() == 9
        assert second.info().schema_version == latest_version(second.backend.name)


# ── following ────────────────────────────────────────────────────────────────────────────────


def test_follow_yields_events_as_they_commit(store: EventStore) -> None:
    store.append(run_lifecycle(new_id("run")))
    stop = threading.Event()
    seen: list[int] = []

    def follow() -> None:
        for event in store.follow(after=3, stop=stop, poll_interval=0.05):
            assert event.seq is not None
            seen.append(event.seq)
            if len(seen) == 6 + 9:
                stop.set()

    thread = threading.Thread(target=follow)
    thread.start()
    store.append(run_lifecycle(new_id("run")))
    thread.join(timeout=30)
    stop.set()
    assert not thread.is_alive()
    assert seen == list(range(4, 19))


def test_follow_filters_by_run(store: EventStore) -> None:
    a, b = new_id("run"), new_id("run")
    store.append(run_lifecycle(a) + run_lifecycle(b))
    stop = threading.Event()
    found = []
    for event in store.follow(run_id=b, stop=stop):
        found.append(event)
        if len(found) == 9:
            stop.set()
    assert {e.run_id for e in found} == {b}


@pytest.mark.slow
def test_concurrent_writers_lose_nothing_and_a_follower_sees_all(store: EventStore) -> None:
    """4 processes x 1,000 appends; a follower started before them sees all 4,000 in order."""
    url = store.url if store.backend.name == "sqlite" else _dsn(store)
    writers, per_writer = 4, 1000
    stop = threading.Event()
    followed: list[Any] = []

    def follow() -> None:
        for event in store.follow(stop=stop, poll_interval=0.05):
            followed.append(event)
            if len(followed) == writers * per_writer:
                stop.set()

    thread = threading.Thread(target=follow)
    thread.start()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store_writers", "appends", url, str(w), str(per_writer)],
            cwd=ROOT,
        )
        for w in range(writers)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0] * writers
    thread.join(timeout=120)
    stop.set()
    assert not thread.is_alive()

    stored = list(store.iter_rows())
    assert len(stored) == writers * per_writer
    assert len({r.event_id for r in stored}) == len(stored)  # no duplicate
    assert [e.seq for e in followed] == [r.seq for r in stored]  # the follower saw all, in order
    for w in range(writers):  # each writer's own order is kept
        mine = [int(r.data["reason"]) for r in stored if r.data["worker_id"] == f"w{w}"]
        assert mine == list(range(per_writer))


@pytest.mark.slow
def test_a_killed_writer_leaves_no_partial_transaction(store: EventStore) -> None:
    url = store.url if store.backend.name == "sqlite" else _dsn(store)
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.store_writers", "forever", url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        for _ in range(20):  # let it commit some transactions, then kill it mid-stream
            assert proc.stdout.readline() == "tx\n"
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    with open_store(url) as reopened:
        rows = list(reopened.iter_rows())
        per_run: dict[str | None, int] = {}
        for row in rows:
            per_run[row.run_id] = per_run.get(row.run_id, 0) + 1
        assert len(rows) >= 60
        assert set(per_run.values()) == {5}  # every transaction whole, none partial
        assert len(reopened.table_rows("runs")) == len(per_run)
        assert verify(reopened) == []


# ── errors at the boundary ───────────────────────────────────────────────────────────────────


def test_driver_errors_become_store_errors(store: EventStore) -> None:
    with pytest.raises(StoreError) as info, store.backend.read() as tx:
        tx.execute("SELECT * FROM no_such_table")
    assert info.value.__cause__ is not None
