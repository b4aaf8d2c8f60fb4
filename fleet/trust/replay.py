"""The projection replay of offline verify: a bundle's events through the projections' own code
(their SQL and the schema's triggers) into a scratch in-memory SQLite, and the rows it makes.

The scratch database is a copy (SQLite's backup API) of a template built once per process
from ``sql/sqlite/schema.sql``, which every migration is mirrored in (a test compares them), so
a replay does not migrate a store each time. Only the projections that own a compared table
(one with a ``run_id`` column) run: the others keep fleet-wide rows (workers, tokens) that no
bundle holds. The scratch database is thrown away after the comparison, so it keeps no
rollback journal (a replay that fails stops at its first failure) and none of the service's
lookup indexes (:data:`LOOKUP_INDEXES`: an index never changes what a statement writes).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from functools import cache
from typing import Any

from fleetforge.fleet._sql import read_sql
from fleetforge.fleet.projections import DEFAULT_PROJECTIONS, Projection
from fleetforge.fleet.store._base import EventRow
from fleetforge.fleet.store.sqlite import _SqliteTx, split_statements

__all__ = ["LOOKUP_INDEXES", "Replay", "ReplayError"]

# Indexes that serve the service's own lookups (the leasing inbox and lease expiry, listings of
# runs, dead letters): the projections' statements do not filter on them.
LOOKUP_INDEXES = (
    "tasks_by_id",
    "tasks_inbox",
    "tasks_leases",
    "runs_by_status",
    "runs_by_idempotency_key",
    "steps_dead_letters",
)

_TEMPLATE_LOCK = threading.Lock()


@cache
def _template() -> sqlite3.Connection:
    """The empty schema, built once per process (copied under :data:`_TEMPLATE_LOCK`)."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    for statement in split_statements(read_sql("sqlite/schema.sql")):
        conn.execute(statement)
    for index in LOOKUP_INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {index}")
    return conn


class ReplayError(Exception):
    """An event the projections cannot apply (a forged one): which, and why."""

    def __init__(self, event: EventRow, reason: str) -> None:
        super().__init__(reason)
        self.event = event
        self.reason = reason


class Replay:
    """A scratch database the events of one run are replayed into; close it when done."""

    def __init__(self, projections: Sequence[Projection] = DEFAULT_PROJECTIONS) -> None:
        self.conn = sqlite3.connect(":memory:", isolation_level=None)
        with _TEMPLATE_LOCK:
            _template().backup(self.conn)
        # as the store's connections (fleet/store/sqlite.py), without a journal (module doc)
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("PRAGMA temp_store = MEMORY")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.tables: dict[str, tuple[str, ...]] = {}  # compared table -> its primary key
        running: list[Projection] = []
        for projection in projections:
            owned = {t: k for t, k in projection.tables.items() if "run_id" in self.columns(t)}
            if owned:
                self.tables |= owned
                running.append(projection)
        self._by_type: dict[str, list[Projection]] = {}
        for projection in running:
            for event_type in projection.handles:
                self._by_type.setdefault(event_type, []).append(projection)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def columns(self, table: str) -> list[str]:
        return [d[0] for d in self.conn.execute(f"SELECT * FROM {table} WHERE 1 = 0").description]

    def apply(self, events: Sequence[EventRow]) -> None:
        """Apply ``events`` in order, in one transaction (ReplayError at the first the
        projections refuse)."""
        tx = _SqliteTx(self.conn, "sqlite://")  # the store's own SQLite transaction semantics
        by_type = self._by_type
        self.conn.execute("BEGIN")
        for event in events:
            for projection in by_type.get(event.type, ()):
                try:
                    projection.apply(tx, event)
                except Exception as exc:  # a forged event the projections cannot take
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise ReplayError(event, reason) from None
        self.conn.execute("COMMIT")

    def rows(self, run_id: str, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """(columns, the run's rows of ``table`` as SQLite returns them, in key order)."""
        key = ", ".join(self.tables[table])
        cursor = self.conn.execute(
            f"SELECT * FROM {table} WHERE run_id = ? ORDER BY {key}", (run_id,)
        )
        return [d[0] for d in cursor.description], cursor.fetchall()
