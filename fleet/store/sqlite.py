"""SQLite backend: the embedded default (``sqlite:///path.db``) and the in-memory store
(``sqlite://``) used by tests and ``fleetforge.testing``.

One connection per store, guarded by a lock; WAL journal; ``BEGIN IMMEDIATE`` for writes, so
writers are serialized and commit order equals ``seq`` order; a busy timeout so writers in other
processes wait instead of failing. ``synchronous`` defaults to NORMAL (durable against a crashed
process; the last transactions may be lost on power failure); ``?synchronous=full`` changes it.
Concurrent units of one process share a transaction (group commit, see ``_group.py``), each in
a savepoint of its own (:meth:`_SqliteTx.savepoint`), on this one connection.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from fleetforge.errors import ConflictError, StoreError, UsageError
from fleetforge.fleet.store._base import EventRow, json_loads
from fleetforge.fleet.store._checkpoint import BACKSTOP_PAGES, Checkpointer
from fleetforge.fleet.store.migrations import check_version

__all__ = ["SqliteBackend"]

_SYNCHRONOUS = {"off", "normal", "full", "extra"}
_INSERT_CHUNK = 500  # rows per INSERT: 5 parameters each, well under SQLite's 32,766


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection, url: str) -> None:
        self._conn = conn
        self._url = url
        self._lost = False

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._conn.execute(sql, params or {})

    def fetchone(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(sql, params or {}).fetchone()
        return row

    def fetchall(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params or {}).fetchall()

    def columns(self, sql: str) -> list[str]:
        return [d[0] for d in self._conn.execute(sql).description]

    def load_json(self, value: Any) -> Any:
        return json_loads(value) if isinstance(value, str) else value

    def for_update(self, sql: str, *, skip_locked: bool = False) -> str:
        return sql  # writers hold the database lock (BEGIN IMMEDIATE)

    def lock(self, name: str) -> None:
        pass

    def prefer_index_order(self) -> None:
        pass

    def fetchall_positional(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    def last_rowid(self) -> int:
        row = self._conn.execute("SELECT last_insert_rowid()").fetchone()
        return int(row[0])

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """One unit's part of a group transaction (see ``_group.py``): rolled back alone when
        its body raises. Runs in the unit's own thread, so driver errors are translated here."""
        with _translated(self._url):
            self._conn.execute("SAVEPOINT fleetforge_unit")
            try:
                yield
            except BaseException:
                try:
                    self._conn.execute("ROLLBACK TO fleetforge_unit")
                    self._conn.execute("RELEASE fleetforge_unit")
                except sqlite3.Error:
                    self._lost = True  # its writes may remain: the group must not commit
                raise
            self._conn.execute("RELEASE fleetforge_unit")

    def alive(self) -> bool:
        """Whether the transaction is still open and holds nothing but whole units (SQLite
        rolls a transaction back by itself after some errors: a full disk, an I/O error)."""
        return self._conn.in_transaction and not self._lost


class SqliteBackend:
    """SQLite behind the :class:`~fleetforge.fleet.store._base.Backend` contract."""

    name = "sqlite"

    def __init__(self, path: str | None, options: Mapping[str, str] | None = None) -> None:
        options = dict(options or {})
        self.path = path
        self.url = f"sqlite:///{path}" if path else "sqlite://"
        self.synchronous = options.pop("synchronous", "normal").lower()
        if self.synchronous not in _SYNCHRONOUS:
            raise UsageError(f"synchronous must be one of {sorted(_SYNCHRONOUS)}")
        busy_ms = int(options.pop("busy_timeout_ms", "30000"))
        if options:
            raise UsageError(f"unknown SQLite store options: {', '.join(sorted(options))}")
        self._lock = threading.RLock()
        # Switching a new file to WAL needs exclusive access, and SQLite refuses it at once
        # (without its busy handler) while another process is creating the same store: retry.
        deadline = time.monotonic() + busy_ms / 1000
        pause = 0.01
        while True:
            try:
                self._conn = self._connect(path, busy_ms)
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StoreError(f"cannot open SQLite store {self.url}: {exc}") from exc
                if time.monotonic() > deadline:
                    raise StoreError(f"cannot open SQLite store {self.url}: {exc}") from exc
                time.sleep(pause)
                pause = min(pause * 2, 0.2)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open SQLite store {self.url}: {exc}") from exc
        self._checkpointer = Checkpointer(path) if path else None

    def _connect(self, path: str | None, busy_ms: int) -> sqlite3.Connection:
        conn = sqlite3.connect(
            path or ":memory:",
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,
            timeout=busy_ms / 1000,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if path:
                conn.execute("PRAGMA journal_mode = WAL")
                # Checkpoints run in a thread of their own (._checkpoint): the writer's own
                # automatic checkpoint is only a backstop, far above SQLite's 1,000 pages. The
                # WAL file is cut back to 64 MiB after a checkpoint.
                conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
                conn.execute(f"PRAGMA journal_size_limit = {64 * 1024 * 1024}")
            conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache (default 2 MiB)
            # Statement journals in memory: an UPDATE that fires a trigger (the scheduling
            # counters), inside a transaction with savepoints (batch items, group commit),
            # journals its changes so it can be undone alone; in a temp file that cost ~160 us
            # per step completion, over half of a batched task's SQL time.
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            self._conn = conn
            self._migrate()
        except BaseException:
            conn.close()
            raise
        return conn

    # ── transactions ─────────────────────────────────────────────────────────────────────────

    @contextmanager
    def write(self, *, exclusive: bool = False) -> Iterator[_SqliteTx]:
        with self._lock, _translated(self.url):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(self._conn, self.url)
            except BaseException:
                if self._conn.in_transaction:  # SQLite may have rolled back already
                    self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                if self._conn.in_transaction:  # a COMMIT that failed leaves it open
                    self._conn.execute("ROLLBACK")
                raise
        if self._checkpointer is not None:
            self._checkpointer.committed()

    @contextmanager
    def read(self) -> Iterator[_SqliteTx]:
        with self._lock, _translated(self.url):
            self._conn.execute("BEGIN")
            try:
                yield _SqliteTx(self._conn, self.url)
            finally:
                self._conn.execute("COMMIT")

    # ── dialect ──────────────────────────────────────────────────────────────────────────────

    def insert_events(self, tx: Any, rows: Sequence[EventRow]) -> None:
        # One multi-row INSERT ... RETURNING per 500 rows (a unit's events go in together).
        # Writers are serialized (BEGIN IMMEDIATE), so one statement's rows get consecutive
        # seqs in VALUES order; RETURNING's own order is unspecified, hence the sort.
        for start in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[start : start + _INSERT_CHUNK]
            values = ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk))
            params: list[Any] = []
            for row in chunk:
                params += (row.run_id or "", row.event_id, row.type, row.at, row.data_json())
            seqs = sorted(
                int(r[0])
                for r in tx.fetchall_positional(
                    "INSERT INTO events (run_id, event_id, type, at, data) VALUES "
                    f"{values} RETURNING seq",
                    params,
                )
            )
            if seqs != list(range(seqs[0], seqs[0] + len(chunk))):
                raise StoreError("SQLite returned sequence numbers that are not consecutive")
            for row, seq in zip(chunk, seqs, strict=True):
                row.seq = seq

    def horizon(self) -> None:
        return None  # writers are serialized: commit order is seq order

    def decode_row(self, row: tuple[Any, ...]) -> EventRow:
        seq, event_id, run_id, type_, at, data = row
        return EventRow(seq, event_id, run_id or None, type_, at, json_loads(data))

    def in_list(self, column: str, values: Sequence[str], params: dict[str, Any]) -> str:
        names = []
        for i, value in enumerate(values):
            params[f"{column}_{i}"] = value
            names.append(f":{column}_{i}")
        return f"{column} IN ({', '.join(names)})"

    def wait_for_events(self, timeout: float) -> None:
        # No notifications in SQLite: callers poll, pausing at most 50 ms at a time.
        time.sleep(min(timeout, 0.05))

    @contextmanager
    def scratch(self) -> Iterator[SqliteBackend]:
        backend = SqliteBackend(None)
        try:
            yield backend
        finally:
            backend.close()

    def schema_version(self) -> int:
        with self.read() as tx:
            row = tx.fetchone("SELECT COALESCE(MAX(version), 0) FROM fleetforge_migrations")
        return int(row[0]) if row else 0

    def close(self) -> None:
        checkpointer, self._checkpointer = getattr(self, "_checkpointer", None), None
        if checkpointer is not None:
            checkpointer.close()
        with self._lock:
            self._conn.close()

    # ── migrations ───────────────────────────────────────────────────────────────────────────

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS fleetforge_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        conn.execute("BEGIN IMMEDIATE")  # another process may be migrating: wait for it
        try:
            current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM fleetforge_migrations")
            for migration in check_version(self.name, int(current.fetchone()[0])):
                for statement in split_statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO fleetforge_migrations "
                    "VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ'))",
                    (migration.version, migration.name),
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def split_statements(script: str) -> list[str]:
    """Split an SQL script into statements (triggers keep their inner semicolons)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buffer.splitlines()
    ):
        statements.append(buffer.strip())
    return statements


@contextmanager
def _translated(url: str) -> Iterator[None]:
    """Driver errors become FleetForgeErrors at the boundary."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise ConflictError(f"store {url}: {exc}") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"store {url}: {exc}") from exc
