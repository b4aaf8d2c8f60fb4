"""Versioned schema migrations: ``sql/<backend>/migrations/NNNN_name.sql``, applied in order.

Each store records the versions it applied in ``fleetforge_migrations``. Opening a database whose
newest version is beyond the newest file this library ships fails with
:class:`~fleetforge.errors.SchemaVersionError`, instead of running on a schema it does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fleetforge.errors import SchemaVersionError

__all__ = ["Migration", "check_version", "latest_version", "migrations"]

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def migrations(backend: str) -> tuple[Migration, ...]:
    """Every migration of a backend (``sqlite`` or ``postgres``), oldest first."""
    folder = resources.files("fleetforge.fleet").joinpath("sql", backend, "migrations")
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{backend} migrations are not numbered 1..n: {versions}")
    return tuple(found)


def latest_version(backend: str) -> int:
    """The newest schema version this library knows for a backend."""
    return len(migrations(backend))


def check_version(backend: str, current: int) -> list[Migration]:
    """The migrations still to apply to a database at ``current``; raise if it is newer."""
    latest = latest_version(backend)
    if current > latest:
        raise SchemaVersionError(
            f"the database is at schema version {current}, newer than this FleetForge knows "
            f"({latest}); upgrade fleetforge to open it",
            current=current,
            known=latest,
        )
    return list(migrations(backend)[current:])
