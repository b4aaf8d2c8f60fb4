"""Applying every migration gives exactly the schema in schema.sql, on each backend."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fleetforge.fleet._sql import read_sql
from fleetforge.fleet.store import open_store
from fleetforge.fleet.store.migrations import check_version, latest_version, migrations
from fleetforge.fleet.store.sqlite import split_statements


def _sqlite_shape(conn: sqlite3.Connection) -> dict[str, Any]:
    shape: dict[str, Any] = {}
    objects = conn.execute(
        "SELECT type, name, tbl_name FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' AND name != 'fleetforge_migrations' ORDER BY name"
    ).fetchall()
    for kind, name, table in objects:
        if kind == "table":
            shape[name] = conn.execute(f"PRAGMA table_xinfo({name})").fetchall()
        elif kind == "index":
            shape[name] = (table, conn.execute(f"PRAGMA index_xinfo({name})").fetchall())
        else:
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()
            shape[name] = (kind, table, " ".join(sql[0].split()))
    return shape


def test_sqlite_migrations_equal_schema(tmp_path: Path) -> None:
    migrated = tmp_path / "migrated.db"
    open_store(f"sqlite:///{migrated}").close()
    direct = sqlite3.connect(tmp_path / "direct.db")
    for statement in split_statements(read_sql("sqlite/schema.sql")):
        direct.execute(statement)
    assert _sqlite_shape(sqlite3.connect(migrated)) == _sqlite_shape(direct)


def test_sqlite_event_log_keeps_its_seqs_without_autoincrement(tmp_path: Path) -> None:
    """0007 rebuilds the event log on its rowid: the seqs a store had stay, new ones follow the
    highest, and the log stays append-only. (AUTOINCREMENT cost a page per write transaction.)"""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE fleetforge_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at TEXT NOT NULL)")  # fmt: skip
    for migration in migrations("sqlite")[:6]:
        for statement in split_statements(migration.sql):
            conn.execute(statement)
        conn.execute("INSERT INTO fleetforge_migrations VALUES (?, ?, '')",
                     (migration.version, migration.name))  # fmt: skip
    row = "INSERT INTO events (seq, run_id, event_id, type, at, data) VALUES (?, '', ?, '', '', '')"
    for seq in (1, 2, 7):
        conn.execute(row, (seq, f"e{seq}"))
    conn.close()

    open_store(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        tables = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        assert [name for name, sql in tables if "AUTOINCREMENT" in sql.upper()] == []
        assert [r[0] for r in conn.execute("SELECT seq FROM events ORDER BY seq")] == [1, 2, 7]
        conn.execute("INSERT INTO events (run_id, event_id, type, at, data) "
                     "VALUES ('', 'e8', 'x', '', '{}')")  # fmt: skip
        assert conn.execute("SELECT MAX(seq) FROM events").fetchone() == (8,)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM events WHERE seq = 8")
    finally:
        conn.close()


_PG_SHAPE = {
    "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default, "
    "is_identity FROM information_schema.columns WHERE table_schema = current_schema() "
    "AND table_name != 'fleetforge_migrations' ORDER BY 1, 2",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
    "AND tablename != 'fleetforge_migrations' ORDER BY 1",
    "triggers": "SELECT trigger_name, event_manipulation, action_statement FROM "
    "information_schema.triggers WHERE trigger_schema = current_schema() ORDER BY 1, 2",
    "constraints": "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE "
    "connamespace = current_schema()::regnamespace AND conname NOT LIKE 'fleetforge_migrations%' "
    "ORDER BY 1",
}


def test_postgres_migrations_equal_schema(pg_url: str, pg_admin_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url) as migrated:  # pg_url comes migrated from the template
        expected = {k: migrated.execute(q).fetchall() for k, q in _PG_SHAPE.items()}  # type: ignore[arg-type]
    base = pg_admin_url.rpartition("/")[0]
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS fleetforge_schema_check")
        admin.execute("CREATE DATABASE fleetforge_schema_check")
    try:
        with psycopg.connect(f"{base}/fleetforge_schema_check") as direct:
            direct.execute(read_sql("postgres/schema.sql"))  # type: ignore[arg-type]
            actual = {k: direct.execute(q).fetchall() for k, q in _PG_SHAPE.items()}  # type: ignore[arg-type]
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute("DROP DATABASE fleetforge_schema_check WITH (FORCE)")
    assert actual == expected


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_are_numbered_and_checked(backend: str) -> None:
    assert [m.version for m in migrations(backend)] == list(range(1, latest_version(backend) + 1))
    assert check_version(backend, 0) == list(migrations(backend))
    assert check_version(backend, latest_version(backend)) == []
