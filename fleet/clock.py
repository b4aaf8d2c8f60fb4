"""Time, as DESIGN "Time" decides: lease expiry, backoff and budgets read a clock object.

- :class:`SystemClock` — the process clock (SQLite stores);
- :class:`DatabaseClock` — PostgreSQL's clock, so many servers agree on lease expiry;
- :class:`ManualClock` — for tests: time moves only when the test says so (no sleeps).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fleetforge.fleet.store import EventStore

__all__ = ["Clock", "DatabaseClock", "ManualClock", "SystemClock", "clock_for"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    """The process clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class DatabaseClock:
    """The database server's clock, so every server of a fleet agrees on lease expiry.

    Asking the database on every call would cost a round trip, so the clock measures the
    offset between the database's ``clock_timestamp()`` and the local clock (halving the round
    trip) at most every ``resync_seconds`` and adds it to the local time in between.
    """

    def __init__(self, store: EventStore, *, resync_seconds: float = 10.0) -> None:
        self._store = store
        self._resync = resync_seconds
        self._offset = timedelta(0)
        self._synced_at: float | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            mono = time.monotonic()
            if self._synced_at is None or mono - self._synced_at > self._resync:
                self._sync()
                self._synced_at = mono
            return datetime.now(UTC) + self._offset

    def _sync(self) -> None:
        before = datetime.now(UTC)
        with self._store.backend.read() as tx:
            row = tx.fetchone("SELECT clock_timestamp()")
        after = datetime.now(UTC)
        assert row is not None
        server: datetime = row[0]
        self._offset = server.astimezone(UTC) - (before + (after - before) / 2)


class ManualClock:
    """A clock that stands still until :meth:`advance` or :meth:`set` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


def clock_for(store: EventStore) -> Clock:
    """The clock DESIGN.md assigns to a store: the database's on PostgreSQL, else the process's."""
    return DatabaseClock(store) if store.backend.name == "postgres" else SystemClock()
