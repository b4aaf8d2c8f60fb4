"""The event store: an append-only log with projections, written once for every backend."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleetforge._jsondomain import EVENT_DEPTH_SLACK, MAX_DEPTH, check_json_value
from fleetforge.contracts.events import RunEvent, parse_event
from fleetforge.errors import UsageError
from fleetforge.fleet.projections import DEFAULT_PROJECTIONS, Projection
from fleetforge.fleet.store._base import Backend, EventRow, Tx, iso, storage_json
from fleetforge.fleet.store._group import DEFAULT_GROUP_MAX, GroupCommit
from fleetforge.redaction import contains_secret, scrub

__all__ = ["EventStore", "StoreInfo", "Unit"]

_COLUMNS = "seq, event_id, run_id, type, at, data"
GROUP_COMMIT_BY_DEFAULT = frozenset({"sqlite"})  # see docs/contracts.md, "Group commit"
_EVENT_DEPTH = MAX_DEPTH + EVENT_DEPTH_SLACK


@dataclass(frozen=True)
class StoreInfo:
    """What ``fleetforge db info`` shows."""

    url: str
    backend: str
    schema_version: int
    events: int
    latest_seq: int
    rows: dict[str, int]


class EventStore:
    """Append-only events plus the projections that they update in the same transaction.

    Open one with :func:`fleetforge.fleet.store.open_store`. Thread-safe; use it as a context
    manager or call :meth:`close`.
    """

    def __init__(
        self,
        backend: Backend,
        projections: Sequence[Projection] | None = None,
        *,
        group_commit: bool | None = None,
        group_max: int = DEFAULT_GROUP_MAX,
    ) -> None:
        self.backend = backend
        if group_commit is None:
            group_commit = backend.name in GROUP_COMMIT_BY_DEFAULT
        # concurrent units share a transaction (see _group.py); rebuild() never joins one
        self.group = GroupCommit(backend, max_units=group_max) if group_commit else None
        self._write: Callable[[], AbstractContextManager[Tx]] = (
            self.group.unit if self.group is not None else backend.write
        )
        self.projections: tuple[Projection, ...] = tuple(
            DEFAULT_PROJECTIONS if projections is None else projections
        )
        self._by_type: dict[str, list[Projection]] = {}
        for projection in self.projections:
            for event_type in projection.handles:
                self._by_type.setdefault(event_type, []).append(projection)

    # ── lifecycle ────────────────────────────────────────────────────────────────────────────

    @property
    def url(self) -> str:
        return self.backend.url

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventStore({self.url!r})"

    # ── writing ──────────────────────────────────────────────────────────────────────────────

    def append(self, events: RunEvent | Sequence[RunEvent]) -> list[RunEvent]:
        """Append one event or a batch atomically; return them with their ``seq``.

        Events built by the engine are pydantic models and are not re-validated (DESIGN
        "Validation"); :meth:`append_json` takes events from outside and validates them.
        """
        batch = [events] if isinstance(events, RunEvent) else list(events)
        rows = [_row(event) for event in batch]
        self.append_rows(rows)
        return [e.model_copy(update={"seq": r.seq}) for e, r in zip(batch, rows, strict=True)]

    def append_json(self, events: Iterable[dict[str, Any]]) -> int:
        """Validate JSON events (the JSON value domain, then ``run_event``) and append them in
        one transaction."""
        from fleetforge import schemas

        rows = []
        for event in events:
            event = check_json_value(event, max_depth=_EVENT_DEPTH, max_bytes=None, what="event")
            schemas.validate("run_event", event)
            rows.append(_row(parse_event(event)))
        self.append_rows(rows)
        return len(rows)

    @contextmanager
    def transaction(self) -> Iterator[Unit]:
        """One write unit: read projection state, then append events, atomically.

        Projections are applied as events are appended (later reads in the unit see them); the
        event rows themselves are inserted together when the unit ends, in one statement, after
        every row lock the unit took (see postgres.py); their ``seq`` is set once it commits.

        With group commit (the default on SQLite) units that run at the same time share one
        transaction, each in its own savepoint; the ``with`` block returns only once the
        transaction has committed, and raises if it did not. A unit that raises is undone
        alone. Callbacks given to :meth:`Unit.after_commit` run after the commit, in order.
        """
        with self._write() as tx:
            unit = Unit(self, tx)
            yield unit
            unit.end()
        unit.settle()
        for callback in unit.committed:
            callback()

    def append_rows(self, rows: Sequence[EventRow]) -> None:
        """Apply projections and insert rows (their ``seq`` is set), in one transaction."""
        if not rows:
            return
        with self._write() as tx:
            for row in rows:
                self.project(tx, row)
            self.backend.insert_events(tx, rows)  # last, as a unit does (see transaction)

    def project(self, tx: Tx, row: EventRow) -> None:
        """Apply one stored event to every projection that handles its type (inside ``tx``)."""
        for projection in self._by_type.get(row.type, ()):
            projection.apply(tx, row)

    # ── reading ──────────────────────────────────────────────────────────────────────────────

    def query(
        self,
        *,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[RunEvent]:
        """Events in ``seq`` order: of one run, of some types, from ``since`` (inclusive) to
        ``until`` (exclusive), after the cursor ``after``, at most ``limit``."""
        rows = self.query_rows(
            run_id=run_id, types=types, since=since, until=until, after=after, limit=limit
        )
        return [parse_event(row.to_json()) for row in rows]

    def query_rows(
        self,
        *,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[EventRow]:
        """Like :meth:`query`, without building models (for export, replay and followers).

        Only events below the backend's horizon (:meth:`Backend.horizon`) are returned, so the
        ``seq`` of the last one is a cursor that skips nothing: no event with a lower ``seq``
        can commit later. Every event committed before the call is below it."""
        if limit < 1:
            raise UsageError(f"limit must be at least 1, got {limit}")
        params: dict[str, Any] = {"after": after, "limit": limit}
        where = ["seq > :after"]
        horizon = self.backend.horizon()
        if horizon is not None:
            if horizon <= after:
                return []
            where.append("seq <= :horizon")
            params["horizon"] = horizon
        if run_id is not None:
            where.append("run_id = :run_id")
            params["run_id"] = run_id
        if types:
            where.append(self.backend.in_list("type", types, params))
        if since is not None:
            where.append("at >= :since")
            params["since"] = iso(since)
        if until is not None:
            where.append("at < :until")
            params["until"] = iso(until)
        sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq LIMIT :limit"
        with self.backend.read() as tx:
            return [self.backend.decode_row(r) for r in tx.fetchall(sql, params)]

    def latest(self, *, run_id: str | None = None) -> RunEvent | None:
        """The newest event (of one run) below the horizon (so its ``seq`` is a safe cursor),
        or None."""
        params: dict[str, Any] = {"run_id": run_id} if run_id else {}
        where = "WHERE run_id = :run_id" if run_id else ""
        horizon = self.backend.horizon()
        if horizon is not None:
            where = f"{where} AND seq <= :horizon" if where else "WHERE seq <= :horizon"
            params["horizon"] = horizon
        sql = f"SELECT {_COLUMNS} FROM events {where} ORDER BY seq DESC LIMIT 1"
        with self.backend.read() as tx:
            row = tx.fetchone(sql, params)
        return None if row is None else parse_event(self.backend.decode_row(row).to_json())

    def count(self, *, run_id: str | None = None, types: Sequence[str] | None = None) -> int:
        """How many events (of one run, of some types)."""
        params: dict[str, Any] = {}
        where = ["1 = 1"]
        if run_id is not None:
            where.append("run_id = :run_id")
            params["run_id"] = run_id
        if types:
            where.append(self.backend.in_list("type", types, params))
        with self.backend.read() as tx:
            row = tx.fetchone(f"SELECT COUNT(*) FROM events WHERE {' AND '.join(where)}", params)
        return int(row[0]) if row else 0

    def iter_rows(self, *, after: int = 0, batch: int = 5000) -> Iterator[EventRow]:
        """Every event after ``after`` in ``seq`` order, read in batches."""
        while True:
            rows = self.query_rows(after=after, limit=batch)
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].seq

    def follow(
        self,
        *,
        after: int = 0,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        stop: threading.Event | None = None,
        poll_interval: float = 0.5,
        batch: int = 500,
    ) -> Iterator[RunEvent]:
        """Yield events after the cursor ``after`` as they commit, until ``stop`` is set.

        Never misses an event, and yields them in strictly increasing ``seq`` order: each read
        stops at the backend's horizon (:meth:`query_rows`), below which no event can still
        commit (on SQLite writers are serialized; on PostgreSQL a horizon read waits for the
        appends in flight, see postgres.py). Between reads it waits for a notification
        (PostgreSQL LISTEN) or polls (SQLite), at most ``poll_interval`` seconds.
        """
        rows = self.follow_rows(after=after, run_id=run_id, types=types, stop=stop,
                                poll_interval=poll_interval, batch=batch)  # fmt: skip
        for row in rows:
            yield parse_event(row.to_json())

    def follow_rows(
        self,
        *,
        after: int = 0,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        stop: threading.Event | None = None,
        poll_interval: float = 0.5,
        batch: int = 500,
    ) -> Iterator[EventRow]:
        """Like :meth:`follow`, without building models (what ``fleetforge events --follow``
        prints: the stored JSON, whatever it holds)."""
        stop = stop or threading.Event()
        cursor = after
        while not stop.is_set():
            rows = self.query_rows(after=cursor, limit=batch)
            for row in rows:
                cursor = row.seq
                if (run_id is None or row.run_id == run_id) and (not types or row.type in types):
                    yield row
            if len(rows) < batch:
                self.backend.wait_for_events(poll_interval)

    # ── projections ──────────────────────────────────────────────────────────────────────────

    def table_rows(self, table: str) -> list[tuple[Any, ...]]:
        """Every row of a projection table, in primary-key order."""
        key = self._table_key(table)
        with self.backend.read() as tx:
            return tx.fetchall(f"SELECT * FROM {table} ORDER BY {', '.join(key)}")

    def table_columns(self, table: str) -> list[str]:
        """Column names of a projection table, in ``table_rows`` order."""
        self._table_key(table)
        with self.backend.read() as tx:
            return tx.columns(f"SELECT * FROM {table} WHERE 1 = 0")

    def _table_key(self, table: str) -> tuple[str, ...]:
        for projection in self.projections:
            if table in projection.tables:
                return projection.tables[table]
        raise UsageError(f"'{table}' is not a projection table")

    def rebuild(self, *, batch: int = 5000) -> int:
        """Rebuild every projection from the events alone, in one transaction; return the count."""
        done = 0
        with self.backend.write(exclusive=True) as tx:
            for projection in self.projections:
                for table in projection.tables:
                    tx.execute(f"DELETE FROM {table}")
            after = 0
            while True:
                rows = [
                    self.backend.decode_row(r)
                    for r in tx.fetchall(
                        f"SELECT {_COLUMNS} FROM events WHERE seq > :after ORDER BY seq "
                        "LIMIT :limit",
                        {"after": after, "limit": batch},
                    )
                ]
                for row in rows:
                    self.project(tx, row)
                done += len(rows)
                if len(rows) < batch:
                    return done
                after = rows[-1].seq

    def info(self) -> StoreInfo:
        """Store URL, schema version, event count and projection row counts."""
        with self.backend.read() as tx:
            row = tx.fetchone("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events")
            counts = {
                table: int((tx.fetchone(f"SELECT COUNT(*) FROM {table}") or (0,))[0])
                for projection in self.projections
                for table in projection.tables
            }
        events, latest = (int(row[0]), int(row[1])) if row else (0, 0)
        return StoreInfo(
            self.url, self.backend.name, self.backend.schema_version(), events, latest, counts
        )


class Unit:
    """An open write unit of a store: reads see the projections of the events appended so far
    (and of the units before it in its group). ``memo`` is the caller's scratch space for the
    length of the unit; it goes with the unit when the unit is undone, and a savepoint that rolls
    back clears it. ``deferred`` is scratch space that a savepoint's rollback keeps (work the
    caller does once at the end of the unit, for all its steps).

    What outlives the unit (a cache in the service) must not be filled from the unit's own
    writes unless they are immutable and keyed by ids the unit created: the unit may still
    be undone after its body returned (its group's COMMIT failing). Fill such caches in an
    :meth:`after_commit` callback."""

    def __init__(self, store: EventStore, tx: Tx) -> None:
        self.store = store
        self.tx = tx
        self.memo: dict[Any, Any] = {}
        self.deferred: dict[Any, Any] = {}
        self.committed: list[Callable[[], None]] = []
        self.ending: list[Callable[[], None]] = []
        self._pending: list[tuple[RunEvent | None, EventRow]] = []
        self._inserted: list[tuple[RunEvent | None, EventRow]] = []
        self._savepoints = 0

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the unit has committed (never if it is rolled back)."""
        self.committed.append(callback)

    def before_end(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the unit's body is done, still inside the unit (it may read and
        append): work decided by several steps of the unit, done once for all of them."""
        self.ending.append(callback)

    def end(self) -> None:
        """The body is done: run the :meth:`before_end` callbacks, then :meth:`flush`."""
        while self.ending:
            self.ending.pop(0)()
        self.flush()

    def append(self, events: Sequence[RunEvent]) -> list[RunEvent]:
        """Apply the events' projections now and insert the events when the unit ends (one
        statement for all); each event's ``seq`` is set on the given model once it commits."""
        for event in events:
            row = _row(event)
            self.store.project(self.tx, row)
            self._pending.append((event, row))
        return list(events)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A step of the unit that is all or nothing: when the block raises, what it wrote
        (projection rows, events to insert) is undone and the unit goes on without it."""
        self._savepoints += 1
        name = f"fleetforge_item_{self._savepoints}"
        mark = len(self._pending)
        self.tx.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            recover = getattr(self.tx, "recover", None)  # PostgreSQL's pipeline, after an error
            if recover is not None:
                recover()
            self.tx.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self.tx.execute(f"RELEASE SAVEPOINT {name}")
            del self._pending[mark:]
            self.memo.clear()  # reads cached in the block may be of undone writes
            raise
        self.tx.execute(f"RELEASE SAVEPOINT {name}")

    def append_rows(self, rows: Sequence[EventRow]) -> None:
        """Like :meth:`append`, for events already in their stored form (the engine's: see
        :mod:`fleetforge.fleet._events`); each row's ``seq`` is set once the unit has committed."""
        for row in rows:
            self.store.project(self.tx, row)
            self._pending.append((None, row))

    def flush(self) -> None:
        """Insert the appended events (in append order); :meth:`settle` sets their ``seq``."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self.store.backend.insert_events(self.tx, [row for _, row in pending])
        self._inserted += pending

    def settle(self) -> None:
        """Once the transaction has committed: set each inserted event's ``seq`` (rows given
        to :meth:`append_rows` have theirs set by the backend)."""
        for event, row in self._inserted:
            if event is not None:
                event.seq = row.seq
        self._inserted = []


def _row(event: RunEvent) -> EventRow:
    """The stored form of an event: its data as JSON, with secrets masked (one regex pass over
    the text; see :mod:`fleetforge.redaction`) before any projection or the log sees it."""
    data = event.model_dump(mode="json", include={"data"})["data"]
    text = storage_json(data)
    if contains_secret(text):
        data = scrub(data)
        text = storage_json(data)
    return EventRow(0, event.event_id, event.run_id, event.type, iso(event.at), data, text)
