"""Fresh stores for a benchmark's cells: SQLite files in a temp folder and, when PostgreSQL's
server programs are installed, a database each on one durable throwaway server."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fleetforge.testing.postgres import find_postgres_bin, postgres_server


@contextmanager
def fresh_stores(prefix: str, notes: list[str]) -> Iterator[dict[str, Callable[[], str]]]:
    """``{"sqlite": fresh, "postgres": fresh}``: each call of ``fresh`` gives a new store URL
    (``postgres`` missing, and a line in ``notes``, without the server programs)."""
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(1000))
        stores: dict[str, Callable[[], str]] = {
            "sqlite": lambda: f"sqlite:///{tmp}/{prefix}{next(counter)}.db"
        }
        bindir = find_postgres_bin()
        if bindir is None:
            notes.append("PostgreSQL server programs not found: no PostgreSQL figures")
            yield stores
            return
        with postgres_server(bindir, durable=True) as admin:
            import psycopg

            def fresh() -> str:
                name = f"fleet_{prefix}_{next(counter)}"
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
                return admin.rpartition("/")[0] + f"/{name}"

            stores["postgres"] = fresh
            yield stores
