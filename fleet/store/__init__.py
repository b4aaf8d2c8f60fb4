"""The event store: append-only events, projections, replay — on SQLite or PostgreSQL.

    >>> from fleetforge.fleet.store import open_store
    >>> with open_store("sqlite://") as store:           # in memory
    ...     store.count()
    0

One URL picks the backend, in SQLAlchemy's forms: ``sqlite:///relative.db``,
``sqlite:////absolute.db``, ``sqlite://`` (in memory), ``postgresql://user:pass@host:port/db``.
Query parameters tune a backend: ``?synchronous=full`` (SQLite), ``?pool_size=8`` or any libpq
parameter such as ``?host=/run/postgresql`` (PostgreSQL); and the store on either backend:
``?group_commit=on|off`` (concurrent write units share one transaction; on by default on SQLite)
and ``?group_max=16`` (at most that many units per transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleetforge.errors import NotFoundError, UsageError
from fleetforge.fleet.projections import Projection
from fleetforge.fleet.settings import fleet_home, parse_store_url
from fleetforge.fleet.store._base import Backend, EventRow, Tx
from fleetforge.fleet.store._group import DEFAULT_GROUP_MAX
from fleetforge.fleet.store._store import EventStore, StoreInfo, Unit
from fleetforge.redaction import mask_url, register_url

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


def open_backend(url: str, *, create: bool = True) -> Backend:
    """Open (and migrate) the database a store URL names. Its password is a secret of this
    process from now on (masked in events, errors and logs).

    A SQLite file is created when missing, but not its folder: a folder that does not exist
    is a UsageError (a typo in ``--store`` should not leave directories behind), except
    ``$FLEETFORGE_HOME``, the default store's, which is created. With ``create=False`` (a
    command that only reads, or acts on a run that must exist) a missing SQLite file is a
    NotFoundError and nothing is created."""
    register_url(url)
    parsed = parse_store_url(url)
    options = dict(parsed.options)
    _group_options(options)  # the store's, not the backend's
    if parsed.backend == "sqlite":
        from fleetforge.fleet.store.sqlite import SqliteBackend

        if parsed.path:
            _check_sqlite_path(url, Path(parsed.path), create=create)
        return SqliteBackend(parsed.path, options)
    from fleetforge.fleet.store.postgres import PostgresBackend

    assert parsed.dsn is not None
    return PostgresBackend(parsed.dsn, options)


def open_store(
    url: str, *, projections: Sequence[Projection] | None = None, create: bool = True
) -> EventStore:
    """Open the store a URL names, applying pending migrations (``create``: see
    :func:`open_backend`)."""
    group_commit, group_max = _group_options(dict(parse_store_url(url).options))
    backend = open_backend(url, create=create)
    return EventStore(backend, projections, group_commit=group_commit, group_max=group_max)


_SWITCH = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


def _group_options(options: dict[str, str]) -> tuple[bool | None, int]:
    """Take ``group_commit`` and ``group_max`` out of a URL's options (None: the backend's
    default)."""
    switch = options.pop("group_commit", None)
    if switch is not None and switch.lower() not in _SWITCH:
        raise UsageError(f"store option group_commit must be on or off, got {switch!r}")
    size = options.pop("group_max", str(DEFAULT_GROUP_MAX))
    if not size.isdigit() or int(size) < 1:
        raise UsageError(f"store option group_max must be a positive integer, got {size!r}")
    return (None if switch is None else _SWITCH[switch.lower()]), int(size)


def _check_sqlite_path(url: str, path: Path, *, create: bool) -> None:
    if path.exists():
        return
    shown = mask_url(url)
    if not create:
        raise NotFoundError(
            f"no fleet store at {shown}: nothing was recorded there yet (run from the folder "
            "you submitted from, or pass --store or FLEETFORGE_STORE)",
            store=shown,
        )
    folder = path.parent
    if folder.is_dir():
        return
    if folder.resolve() == fleet_home().resolve():
        folder.mkdir(parents=True, exist_ok=True)
        return
    raise UsageError(
        f"store {shown}: the folder {folder} does not exist (create it first, or pick "
        "another --store)",
        store=shown,
    )
