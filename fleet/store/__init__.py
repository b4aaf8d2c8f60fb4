"""The event store: append-only events, projections, replay — on SQLite or PostgreSQL.

    >>> from fleetforge.fleet.store import open_store
    >>> with open_store("sqlite://") as store:           # in memory
    ...     store.count()
    0

One URL picks the backend, in SQLAlchemy's forms: ``sqlite:///relative.db``,
``sqlite:////absolute.db``, ``sqlite://`` (in memory), ``postgresql://user:pass@host:port/db``.
Query parameters tune a backend: ``?synchronous=full`` (SQLite), ``?pool_size=8`` or any libpq
parameter such as ``?host=/run/postgresql`` (PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetforge.fleet.projections import Projection
from fleetforge.fleet.settings import parse_store_url
from fleetforge.fleet.store._base import Backend, EventRow, Tx
from fleetforge.fleet.store._store import EventStore, StoreInfo, Unit
from fleetforge.redaction import register_url

__all__ = [
    "Backend",
    "EventRow",
    "EventStore",
    "StoreInfo",
    "Tx",
    "Unit",
    "open_backend",
    "open_store",
]


def open_backend(url: str) -> Backend:
    """Open (and migrate) the database a store URL names. Its password is a secret of this
    process from now on (masked in events, errors and logs)."""
    register_url(url)
    parsed = parse_store_url(url)
    if parsed.backend == "sqlite":
        from fleetforge.fleet.store.sqlite import SqliteBackend

        return SqliteBackend(parsed.path, parsed.options)
    from fleetforge.fleet.store.postgres import PostgresBackend

    assert parsed.dsn is not None
    return PostgresBackend(parsed.dsn, parsed.options)


def open_store(url: str, *, projections: Sequence[Projection] | None = None) -> EventStore:
    """Open the store a URL names, applying pending migrations."""
    return EventStore(open_backend(url), projections)
