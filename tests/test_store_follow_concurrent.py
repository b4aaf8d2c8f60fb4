"""Followers never skip an event while many writers append at once (issue 20), on both stores.

PostgreSQL appends no longer take turns: a sequence number is drawn at INSERT and becomes
visible at COMMIT, so writers commit out of ``seq`` order all the time. Readers stop at the
commit horizon (fleet/store/postgres.py). Writers here hold some commits open on purpose, after
their INSERT has drawn its numbers, so that lower numbers regularly commit after higher ones:
a reader that read past the horizon would miss those (this test fails then; it was checked
against a reader without the horizon).

``make stress`` runs the same check at a larger size (``python -m tests.stress``).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from fleetforge.contracts.events import RunEvent
from fleetforge.fleet.store import EventStore, Unit, open_store
from tests.factories import event

WRITERS = 8


@dataclass
class Followed:
    """What the readers saw, and what the table holds at the end."""

    follow: list[int] = field(default_factory=list)  # follow_rows
    pages: list[int] = field(default_factory=list)  # query_rows(after=cursor, limit=7) paging
    table: list[int] = field(default_factory=list)  # SELECT seq FROM events, at the end
    appended: int = 0


def _write(url: str, writer: int, transactions: int, failures: list[BaseException]) -> int:
    """``transactions`` appends of 1-3 events on a connection of its own; about one in three
    holds its commit open for up to 2 ms after the INSERT has drawn its sequence numbers."""
    rng = random.Random(writer)
    appended = 0
    try:
        with open_store(url) as store:
            for i in range(transactions):
                events = [_event(writer, f"{i}.{n}") for n in range(rng.randint(1, 3))]
                hold, delay = rng.random() < 0.35, rng.uniform(0.0, 0.002)
                with store.transaction() as unit:
                    unit.append(events)
                    if hold:
                        _hold_after_insert(unit)
                        time.sleep(delay)  # ... and commit after others that drew later seqs
                appended += len(events)
    except BaseException as exc:  # reported by the test, not lost in a thread
        failures.append(exc)
    return appended


def _event(writer: int, reason: str) -> RunEvent:
    return event("worker_offline", None, worker_id=f"w{writer}", reason=reason)


def _hold_after_insert(unit: Unit) -> None:
    """Insert the unit's events now and make sure the database ran the INSERT (a read sends
    PostgreSQL's pipeline): their seqs are drawn, and the transaction is still open."""
    unit.flush()
    unit.tx.fetchone("SELECT 1")


def follow_while_writing(url: str, *, writers: int = WRITERS, transactions: int = 40) -> Followed:
    """Run ``writers`` writer threads (each its own store and connections) and two readers at
    once: ``follow_rows`` and a pager that moves its cursor to the last seq of each page."""
    seen = Followed()
    failures: list[BaseException] = []
    stop = threading.Event()
    progress = threading.Condition()  # a reader saw more

    def saw(into: list[int], seqs: list[int]) -> None:
        with progress:
            into += seqs
            progress.notify_all()

    def follower(store: EventStore) -> None:
        try:
            for row in store.follow_rows(stop=stop, poll_interval=0.05, batch=50):
                saw(seen.follow, [row.seq])
        except BaseException as exc:
            failures.append(exc)

    def pager(store: EventStore) -> None:
        cursor = 0
        try:
            while not stop.is_set():
                page = store.query_rows(after=cursor, limit=7)
                saw(seen.pages, [row.seq for row in page])
                if page:
                    cursor = page[-1].seq
                else:
                    store.backend.wait_for_events(0.05)
        except BaseException as exc:
            failures.append(exc)

    counts: list[int] = []
    with open_store(url) as follow_store, open_store(url) as page_store:
        readers = [
            threading.Thread(target=follower, args=(follow_store,)),
            threading.Thread(target=pager, args=(page_store,)),
        ]
        for thread in readers:
            thread.start()
        threads = [
            threading.Thread(
                target=lambda w=w: counts.append(_write(url, w, transactions, failures))
            )
            for w in range(writers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        with follow_store.backend.read() as tx:
            seen.table = [int(r[0]) for r in tx.fetchall("SELECT seq FROM events ORDER BY seq")]
        last = seen.table[-1] if seen.table else 0

        def caught_up() -> bool:
            return all(seqs and seqs[-1] >= last for seqs in (seen.follow, seen.pages))

        deadline = time.monotonic() + 60  # only a reader that skipped the last event waits it out
        with progress:
            while not caught_up() and not failures and time.monotonic() < deadline:
                progress.wait(timeout=deadline - time.monotonic())
        stop.set()
        for thread in readers:
            thread.join(timeout=30)
    if failures:
        raise failures[0]
    seen.appended = sum(counts)
    return seen


def check(seen: Followed) -> None:
    """The guarantee: each reader saw exactly the table's seqs, in strictly increasing order."""
    assert seen.appended == len(seen.table) > 0
    for name, seqs in (("follow_rows", seen.follow), ("query_rows pages", seen.pages)):
        missing = sorted(set(seen.table) - set(seqs))
        assert not missing, f"{name} skipped {len(missing)} events: {missing[:20]}"
        assert seqs == seen.table, f"{name}: not the table's seqs in strictly increasing order"


def test_followers_see_every_event_of_concurrent_writers(store_url: str) -> None:
    check(follow_while_writing(store_url, transactions=40))


def test_the_sequence_is_not_cached_per_session(pg_url: str) -> None:
    """The horizon's proof needs each seq drawn after the horizon to be above it: a sequence
    cached per session (CACHE > 1) would hand a lower number out later."""
    with open_store(pg_url) as store, store.backend.read() as tx:
        row = tx.fetchone(
            "SELECT cache_size FROM pg_sequences "
            "WHERE sequencename = pg_get_serial_sequence('events', 'seq')::regclass::text"
        )
    assert row == (1,)


def test_a_reader_waits_for_an_append_in_flight(pg_url: str) -> None:
    """A seq drawn but not yet committed holds readers back: they wait for that commit rather
    than return the later events that already committed past it."""
    import psycopg

    early = _event(0, "early")
    returned: list[list[int]] = []
    with open_store(pg_url) as store, psycopg.connect(pg_url, autocommit=True) as watch:
        reader = threading.Thread(
            target=lambda: returned.append([r.seq for r in store.query_rows(after=0)])
        )
        with store.transaction() as unit:
            unit.append([early])
            _hold_after_insert(unit)  # early's seq is drawn, not committed
            [late] = store.append(_event(1, "late"))  # another connection: commits past it
            reader.start()
            _wait_for_advisory_waiter(watch, reader)  # it waits for this transaction
        reader.join(timeout=30)
    assert early.seq is not None
    assert late.seq is not None
    assert early.seq < late.seq
    assert returned == [[early.seq, late.seq]]


def _wait_for_advisory_waiter(conn: object, reader: threading.Thread) -> None:
    """Until the reader waits for an advisory lock (or, with no horizon, has returned)."""
    deadline = time.monotonic() + 30
    while reader.is_alive() and time.monotonic() < deadline:
        row = conn.execute(  # type: ignore[attr-defined]
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
        if row[0]:
            return
        conn.execute("SELECT pg_sleep(0.005)")  # type: ignore[attr-defined]
    assert not reader.is_alive(), "the reader neither returned nor waited for the append"


def test_threads_share_horizon_reads_that_started_after_they_asked() -> None:
    """One process's threads share horizon reads (one exclusive-lock request at a time), but
    each gets the value of a read that started after it asked: one that started earlier may
    miss what the thread itself committed just before."""
    from fleetforge.fleet.store.postgres import _Horizon

    horizon = _Horizon()
    started = [0]
    lock = threading.Lock()
    late: list[tuple[int, int]] = []
    running = [0, 0]  # reads in progress now, and the most at once

    def fetch() -> int:
        with lock:
            started[0] += 1
            number = started[0]
            running[0] += 1
            running[1] = max(running)
        time.sleep(0.001)
        with lock:
            running[0] -= 1
        return number  # a read's value: its own start number

    def ask() -> None:
        for _ in range(50):
            with lock:
                before = started[0]
            value = horizon.get(fetch)
            if value <= before:
                late.append((before, value))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert late == []
    assert running[1] == 1
    assert started[0] <= 8 * 50
