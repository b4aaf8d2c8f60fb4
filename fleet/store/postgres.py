"""PostgreSQL backend (psycopg 3): for a fleet that outgrows one machine.

Many servers and workers share one database. Two things make the log safe to follow:

- **Commit order = sequence order.** A sequence hands out numbers at insert time, not commit
  time, so two concurrent appends can commit out of order and a reader that has seen ``seq`` 8
  could later find a newly committed 7. Every append therefore takes a transaction-scoped
  advisory lock just before it inserts: appends are serialized, so ``seq`` order is commit order
  and "events after N" never skips one. (This is how eventsourcing and Marten keep global
  order.) The lock is taken at the end of a unit of work — its events are inserted together
  when it ends — so writers do their reads and projection updates concurrently and queue only
  for the insert and the commit. What they share they lock as rows (``for_update``, the inbox
  with ``SKIP LOCKED``) or by name (``lock``); a writer holding a row lock commits, and so
  inserts its events, before the next holder can touch that row, so replay applies events to
  each row in the order the live writers did.
- **Followers wake on NOTIFY.** Each append sends ``NOTIFY fleetforge_events`` (delivered at
  commit); :meth:`PostgresBackend.wait_for_events` waits for it on a dedicated connection, so
  followers need not poll fast.

Driver errors become :class:`~fleetforge.errors.StoreError` (``ConflictError`` for unique
violations) with the driver's exception chained.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from functools import cache
from typing import Any

from fleetforge.errors import (
    AuthError,
    ConflictError,
    FleetForgeError,
    NotFoundError,
    StoreError,
    UnavailableError,
    UsageError,
)
from fleetforge.fleet.store._base import EventRow, iso
from fleetforge.fleet.store.migrations import check_version
from fleetforge.redaction import get_logger, mask_url

try:
    import psycopg
    from psycopg import sql as pgsql
    from psycopg.types.json import Jsonb
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'the PostgreSQL store needs psycopg: pip install "fleetforge[postgres]"'
    ) from exc

__all__ = ["PostgresBackend"]

log = get_logger("fleetforge.store")

_APPEND_LOCK = 0x466C_6565_7446_6F72  # "FleetFor": one advisory lock key for all appends
_MIGRATE_LOCK = _APPEND_LOCK + 1
_CHANNEL = "fleetforge_events"
_PIPELINE = psycopg.Pipeline.is_supported()  # libpq >= 14 (psycopg[binary] bundles one)
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@cache
def _pg(sql: str) -> str:
    """``:name`` parameters → psycopg's ``%(name)s``."""
    return _PARAM.sub(r"%(\1)s", sql)


class _PgTx:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._conn.execute(_pg(sql), params or None)

    def fetchone(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(_pg(sql), params or None).fetchone()
        return row

    def fetchall(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self._conn.execute(_pg(sql), params or None).fetchall()

    def columns(self, sql: str) -> list[str]:
        cursor = self._conn.execute(_pg(sql))
        return [d.name for d in cursor.description or ()]

    def load_json(self, value: Any) -> Any:
        return value  # jsonb arrives decoded

    def for_update(self, sql: str, *, skip_locked: bool = False) -> str:
        return sql.rstrip().rstrip(";") + (
            " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"
        )

    def lock(self, name: str) -> None:
        self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (name,))

    def prefer_index_order(self) -> None:
        # A young inbox has no statistics yet, and PostgreSQL's guess then is a bitmap scan
        # that reads every queued task and sorts them; the ordered index walk stops at LIMIT.
        self._conn.execute("SELECT set_config('enable_bitmapscan', 'off', true)")

    @property
    def connection(self) -> psycopg.Connection[Any]:
        return self._conn


def _as_is(text: str) -> str:
    """Jsonb's ``dumps`` for data already dumped (EventRow.data_json)."""
    return text


class PostgresBackend:
    """PostgreSQL behind the :class:`~fleetforge.fleet.store._base.Backend` contract."""

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        options: Mapping[str, str] | None = None,
        *,
        schema: str | None = None,
    ) -> None:
        options = dict(options or {})
        pool_size = int(options.pop("pool_size", "4"))
        self.schema = options.pop("schema", schema)
        # the rest are libpq parameters (sslmode, connect_timeout, host for a socket dir, ...)
        self.dsn = dsn.split("?", 1)[0]
        self.url = mask_url(dsn)
        kwargs: dict[str, Any] = dict(options)
        if self.schema:
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.schema):
                raise UsageError(f"schema name {self.schema!r}: use lowercase letters, digits, _")
            kwargs["options"] = f"-c search_path={self.schema}"
        self._kwargs = kwargs
        self._listener: psycopg.Connection[Any] | None = None
        self._listen_lock = threading.Lock()
        _probe(self.dsn, kwargs, self.url)
        try:
            self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                self.dsn,
                kwargs=kwargs,
                min_size=1,
                max_size=max(pool_size, 1),
                open=True,
                name="fleetforge",
            )
            self._pool.wait(timeout=30)
            self._migrate()
        except psycopg.Error as exc:
            self.close()
            raise StoreError(f"cannot open PostgreSQL store {self.url}: {exc}") from exc
        except Exception:
            self.close()
            raise

    # ── transactions ─────────────────────────────────────────────────────────────────────────

    @contextmanager
    def write(self, *, exclusive: bool = False) -> Iterator[_PgTx]:
        with _translated(self.url), self._pool.connection() as conn, conn.transaction():
            if exclusive:
                # writers update projection rows before they take the append lock: hold every
                # table so none of their updates lands on a row this transaction replaces
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
                tables = [
                    pgsql.Identifier(r[0])
                    for r in conn.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                        "AND tablename <> 'fleetforge_migrations' ORDER BY tablename"
                    ).fetchall()
                ]
                lock = pgsql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE")
                conn.execute(lock.format(pgsql.SQL(", ").join(tables)))
            # Pipeline mode: statements whose results nobody reads (the projections' updates, the
            # append lock) go out without waiting for the server; a read or the commit sends
            # the queue in the same flush. A write transaction is round-trip bound, and a
            # lease -> heartbeat -> receipt cycle has ~13 such statements. An error in one is
            # raised at the next read or at commit, still inside this transaction.
            with conn.pipeline() if _PIPELINE else nullcontext():
                yield _PgTx(conn)

    @contextmanager
    def read(self) -> Iterator[_PgTx]:
        with _translated(self.url), self._pool.connection() as conn, conn.transaction():
            yield _PgTx(conn)

    # ── dialect ──────────────────────────────────────────────────────────────────────────────

    def insert_events(self, tx: Any, rows: Sequence[EventRow]) -> None:
        conn: psycopg.Connection[Any] = tx.connection
        # the append lock, held to commit; the notification is delivered at commit
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s), pg_notify(%s, '')", (_APPEND_LOCK, _CHANNEL)
        )
        cursor = conn.execute(
            "INSERT INTO events (run_id, event_id, type, at, data) "
            "SELECT r, e, t, a, d FROM unnest("
            "%(run_ids)s::text[], %(event_ids)s::text[], %(types)s::text[], "
            "%(ats)s::timestamptz[], %(datas)s::jsonb[]) WITH ORDINALITY AS u(r, e, t, a, d, n) "
            "ORDER BY n RETURNING seq",
            {
                "run_ids": [row.run_id or "" for row in rows],
                "event_ids": [row.event_id for row in rows],
                "types": [row.type for row in rows],
                "ats": [row.at for row in rows],
                "datas": [Jsonb(row.data_json(), dumps=_as_is) for row in rows],
            },
        )
        seqs = [int(r[0]) for r in cursor.fetchall()]
        if len(seqs) != len(rows) or seqs != sorted(seqs):
            raise StoreError("PostgreSQL returned sequence numbers out of insert order")
        for row, seq in zip(rows, seqs, strict=True):
            row.seq = seq

    def decode_row(self, row: tuple[Any, ...]) -> EventRow:
        seq, event_id, run_id, type_, at, data = row
        when = iso(at) if isinstance(at, datetime) else at
        return EventRow(int(seq), event_id, run_id or None, type_, when, data)

    def in_list(self, column: str, values: Sequence[str], params: dict[str, Any]) -> str:
        params[f"{column}_list"] = list(values)
        return f"{column} = ANY(:{column}_list)"

    def wait_for_events(self, timeout: float) -> None:
        with self._listen_lock:
            if self._listener is None:
                self._listener = psycopg.connect(self.dsn, autocommit=True, **self._kwargs)
                self._listener.execute(f"LISTEN {_CHANNEL}")
            try:
                for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                    pass
            except psycopg.Error as exc:
                self._listener.close()
                self._listener = None
                raise StoreError(f"store {self.url}: lost the event notifications: {exc}") from exc

    @contextmanager
    def scratch(self) -> Iterator[PostgresBackend]:
        schema = f"fleetforge_verify_{secrets.token_hex(4)}"
        with self._pool.connection() as conn:
            conn.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(schema)))
        backend = PostgresBackend(self.dsn, {"pool_size": "1"}, schema=schema)
        try:
            yield backend
        finally:
            backend.close()
            with self._pool.connection() as conn:
                conn.execute(pgsql.SQL("DROP SCHEMA {} CASCADE").format(pgsql.Identifier(schema)))

    def schema_version(self) -> int:
        with self.read() as tx:
            row = tx.fetchone("SELECT COALESCE(MAX(version), 0) FROM fleetforge_migrations")
        return int(row[0]) if row else 0

    def close(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    # ── migrations ───────────────────────────────────────────────────────────────────────────

    def _migrate(self) -> None:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS fleetforge_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            row = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM fleetforge_migrations"
            ).fetchone()
            for migration in check_version(self.name, int(row[0]) if row else 0):
                conn.execute(migration.sql)
                conn.execute(
                    "INSERT INTO fleetforge_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )


_PROBE_ATTEMPTS = 3
_PROBE_TIMEOUT_S = 5  # libpq's connect_timeout, unless the URL gives one
_PERMANENT: tuple[tuple[str, type[FleetForgeError], str], ...] = (
    ("password authentication failed", AuthError, "check the user and password in the URL"),
    ("role", AuthError, "check the user name in the store URL"),
    ("does not exist", NotFoundError, "check the database name in the store URL, or create it"),
    ("no pg_hba.conf entry", AuthError, "the server's pg_hba.conf does not admit this client"),
    ("authentication", AuthError, "check the user and password in the store URL"),
    ("connection refused", UnavailableError, "is PostgreSQL running there? check host and port"),
    ("resolve host", UnavailableError, "check the host name in the store URL"),
    ("translate host name", UnavailableError, "check the host name in the store URL"),
    ("name or service not known", UnavailableError, "check the host name in the store URL"),
    ("no such file or directory", UnavailableError, "is PostgreSQL running? check ?host="),
)
_TRANSIENT = (
    "timeout expired",
    "closed the connection unexpectedly",
    "connection reset",
    "starting up",
    "shutting down",
    "too many clients",
    "in recovery mode",
)


def _probe(dsn: str, kwargs: Mapping[str, Any], url: str) -> None:
    """Open one connection before the pool does: a wrong URL fails at once with what is
    wrong (the pool would retry in the background for its whole wait, logging each failure).
    Timeouts and dropped connections are tried again, a second apart and more."""
    options = dict(kwargs)
    options.setdefault("connect_timeout", _PROBE_TIMEOUT_S)
    for attempt in range(1, _PROBE_ATTEMPTS + 1):
        try:
            psycopg.connect(dsn, autocommit=True, **options).close()
            return
        except psycopg.Error as exc:
            error, transient = _open_error(exc, url)
            if not transient or attempt == _PROBE_ATTEMPTS:
                if transient:
                    error = UnavailableError(f"{error.message} (gave up after {attempt} tries)")
                raise error from exc
            log.warning("%s; trying again in %ds (%d of %d)", error.message, attempt,
                        attempt + 1, _PROBE_ATTEMPTS)  # fmt: skip
            time.sleep(attempt)


def _open_error(exc: psycopg.Error, url: str) -> tuple[FleetForgeError, bool]:
    """The error that opening ``url`` failed with, and whether trying again may help."""
    text = " ".join((str(exc).strip().splitlines() or [""])[0].split())  # libpq adds hints
    reason = text.split("FATAL:", 1)[-1].strip() if "FATAL:" in text else text
    reason = reason.removeprefix("connection failed:").strip()
    lowered = reason.lower()
    if any(marker in lowered for marker in _TRANSIENT):
        return UnavailableError(f"cannot open PostgreSQL store {url}: {reason}"), True
    for marker, cls, hint in _PERMANENT:
        if marker in lowered:
            return cls(f"cannot open PostgreSQL store {url}: {reason} ({hint})"), False
    return StoreError(f"cannot open PostgreSQL store {url}: {reason}"), False


@contextmanager
def _translated(url: str) -> Iterator[None]:
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise ConflictError(f"store {url}: {exc.diag.message_primary or exc}") from exc
    except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
        # two writers waited on each other: the database rolled one back; running it again
        # succeeds (the service does, see fleet.service)
        raise StoreError(f"store {url}: {exc}", transient=True) from exc
    except psycopg.Error as exc:
        raise StoreError(f"store {url}: {exc}") from exc
