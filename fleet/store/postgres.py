"""PostgreSQL backend (psycopg 3): for a fleet that outgrows one machine.

Many servers and workers share one database, and their commits must not queue behind each other:
PostgreSQL groups concurrent commits into one WAL flush only when nothing serializes them.

**Appends share a lock; followers read below a commit horizon.** A sequence hands out numbers
at insert time, not at commit time, so two appends can commit out of ``seq`` order, and a
reader that has seen 8 could later find a newly committed 7. Rather than serialize every
commit (one lock for all appends, held to commit: what this backend did until issue 20), an
append takes the advisory lock ``_APPEND_LOCK`` in *shared* mode in the statement before its
INSERT, and holds it to its commit; appends never wait for each other. A reader that needs to
know how far the log is final takes the same lock in *exclusive* mode, in a short transaction of
its own (:meth:`PostgresBackend.horizon`): it waits only for the appends in flight to finish,
reads ``max(seq)`` = H, and ends. Rows with ``seq <= H`` are then final, which is why
``query_rows`` (hence ``follow``, export, and the service's long poll) returns only them:

1. every ``seq`` is drawn (``nextval``, inside the INSERT) by a transaction that already holds
   the shared lock, because the lock statement runs before the INSERT;
2. when the horizon reader holds the exclusive lock, no transaction holds the shared one, so
   every ``seq`` drawn so far belongs to a transaction that has committed or rolled back, and
   none is drawn until the reader releases the lock — so H (read in a snapshot taken after the
   lock was granted) is the highest ``seq`` drawn so far that committed;
3. the sequence is not cached per session (``CACHE 1``, the identity column's default), so
   every ``seq`` drawn later is greater than H.

Hence no row with ``seq <= H`` can appear later, and a cursor at H skips nothing. (An xid +
``pg_snapshot_xmin`` watermark was the alternative; xid order is not ``seq`` order — a
transaction can draw a lower ``seq`` under a higher xid — so ``seq > cursor AND xid < xmin``
*can* skip an event, and fixing that needs a column and a migration.) While a horizon reader
waits, new appends queue behind it, for as long as the appends already in flight take to
commit: each append's lock, INSERT and COMMIT travel in one pipeline flush, so no client round
trip is ever inside that wait. Threads of one process share horizon reads
(:class:`_Horizon`). ``rebuild`` (``write(exclusive=True)``) takes the lock exclusively and
holds it, so it still excludes every append.

**Row locks keep replay in order.** What writers share they lock as rows (``for_update``, the
inbox with ``SKIP LOCKED``) or by name (``lock``). A unit of work inserts its events at its end,
after every row lock it took, so the writer that holds a row draws its ``seq`` while holding it,
and the next holder of that row draws a greater one: replay applies events to each row in the
order the live writers did.

**Followers wake on NOTIFY, sent after the commit.** A transaction that notifies takes a
cluster-wide lock at commit and holds it through its WAL flush (PostgreSQL serializes notifying
commits so the queue is in commit order), which would serialize every append again. So the
data transaction does not notify: right after its COMMIT, in the same pipeline flush, one
statement of its own (autocommit) sets ``synchronous_commit = off`` for itself and sends
``NOTIFY fleetforge_events``; it holds that lock for microseconds, and a listener it wakes finds
the data committed. (Should it fail, the data stays committed and the writer is told so in the
log, not with an error.)
:meth:`PostgresBackend.wait_for_events` waits for it on a dedicated connection.

**Round trips.** Connections are in autocommit mode and a write transaction is written out as
``BEGIN`` ... ``COMMIT`` in psycopg's pipeline mode: only a read inside the transaction waits for
the server, and everything after the last read — projection updates, the append lock, the
INSERT, COMMIT and the notification — goes in one flush; the INSERT's ``RETURNING seq`` is
read after the commit. A read is a statement in autocommit (each statement sees the commits
before it, as under READ COMMITTED), with no BEGIN/COMMIT round trips around it.

Driver errors become :class:`~fleetforge.errors.StoreError` (``ConflictError`` for unique
violations) with the driver's exception chained.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
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

_APPEND_LOCK = 0x466C_6565_7446_6F72  # "FleetFor": shared by appends, exclusive for a horizon
_MIGRATE_LOCK = _APPEND_LOCK + 1
_CHANNEL = "fleetforge_events"
# One parameter for a unit's events: a JSON array of [run_id, event_id, type, at, data] (the data
# spliced in as the text the store already made). Measured against unnest() of five arrays and
# binary COPY in docs/store.md: the least client CPU, and no round trip of its own.
_INSERT = (
    "INSERT INTO events (run_id, event_id, type, at, data) "
    "SELECT e->>0, e->>1, e->>2, (e->>3)::timestamptz, e->4 "
    "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY n RETURNING seq"
)
# After the data's COMMIT, in the same flush: a notifying commit holds a cluster-wide lock through
# its WAL flush, so the notification is a transaction of its own (one statement in autocommit)
# that does not wait for one.
_NOTIFY = "SELECT set_config('synchronous_commit', 'off', true), pg_notify('" + _CHANNEL + "', '')"
_PIPELINE = psycopg.Pipeline.is_supported()  # libpq >= 14 (psycopg[binary] bundles one)
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@cache
def _pg(sql: str) -> str:
    """``:name`` parameters → psycopg's ``%(name)s``."""
    return _PARAM.sub(r"%(\1)s", sql)


class _PgTx:
    def __init__(self, conn: psycopg.Connection[Any], url: str) -> None:
        self._conn = conn
        self._url = url
        self.pipeline: psycopg.Pipeline | None = None  # a write's, set by write()
        # INSERTs whose RETURNING seq is read after the commit (same flush), with their rows
        self.inserted: list[tuple[psycopg.Cursor[Any], Sequence[EventRow]]] = []

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

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """One unit's part of a group transaction (see ``_group.py``): rolled back alone when
        its body raises, with the INSERTs it queued forgotten (their seqs are read after the
        group's COMMIT). Its end waits for the server, so an error of a statement the body
        queued is raised here, in the unit that made it, not in the next unit's body; driver
        errors are translated here too (this runs in the unit's own thread)."""
        conn, mark = self._conn, len(self.inserted)
        with _translated(self._url):
            conn.execute("SAVEPOINT fleetforge_unit", prepare=False)
            try:
                yield
                conn.execute("RELEASE SAVEPOINT fleetforge_unit", prepare=False)
                self._sync()
            except BaseException:
                del self.inserted[mark:]
                # after an error the pipeline skips what was queued up to the sync that
                # reported it (the RELEASE, and any savepoint of the body's), so this
                # savepoint is still there to roll back to once the pipeline is through
                self.recover()
                conn.execute("ROLLBACK TO SAVEPOINT fleetforge_unit", prepare=False)
                conn.execute("RELEASE SAVEPOINT fleetforge_unit", prepare=False)
                self._sync()
                raise

    def recover(self) -> None:
        """After an error: let the pipeline skip what it still holds (it does, up to the next
        sync, once a statement failed), so a ROLLBACK TO queued next runs. The transaction
        itself stays failed until then."""
        if self.pipeline is not None:
            with suppress(psycopg.Error):
                self.pipeline.sync()

    def _sync(self) -> None:
        """Wait for the statements queued in the pipeline (there is none without one)."""
        if self.pipeline is not None:
            self.pipeline.sync()

    def alive(self) -> bool:
        """Whether the transaction is still open and usable (not failed, not lost)."""
        return self._conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS

    @property
    def connection(self) -> psycopg.Connection[Any]:
        return self._conn


def _as_is(text: str) -> str:
    """Jsonb's ``dumps`` for JSON text already made."""
    return text


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _events_json(rows: Sequence[EventRow]) -> str:
    """The rows as one JSON array of ``[run_id, event_id, type, at, data]``; ``data`` is the
    text the row already holds (:meth:`EventRow.data_json`), not dumped again."""
    parts = [
        _dumps((row.run_id or "", row.event_id, row.type, row.at))[:-1]
        + ","
        + row.data_json()
        + "]"
        for row in rows
    ]
    return "[" + ",".join(parts) + "]"


class _Horizon:
    """Horizon reads shared by the threads of a process.

    A caller needs a horizon read that *started* after it asked (one that started earlier may
    miss what the caller itself committed just before). Callers that arrive while a read is
    under way wait for it to end, and then one of them starts the next for all of them: at
    most one exclusive-lock request per process at a time, however many followers it serves.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._started = 0
        self._finished = 0
        self._running = False
        self._value = 0

    def get(self, fetch: Callable[[], int]) -> int:
        with self._cond:
            need = self._started + 1
            while self._finished < need:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                self._started += 1
                mine = self._started
                self._cond.release()
                try:
                    value = fetch()
                except BaseException:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
                    raise
                self._cond.acquire()
                self._value = max(self._value, value)
                self._finished = mine
                self._running = False
                self._cond.notify_all()
            return self._value


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
        self._horizon = _Horizon()
        _probe(self.dsn, kwargs, self.url)
        try:
            self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                self.dsn,
                kwargs=kwargs | {"autocommit": True},
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
        with _translated(self.url), self._pool.connection() as conn:
            tx = _PgTx(conn, self.url)
            commit: psycopg.Cursor[Any] | None = None
            try:
                # Pipeline mode: statements whose results nobody reads (the projections'
                # updates, the append lock, the INSERT) go out without waiting for the server;
                # a read sends the queue in the same flush, and so does the pipeline's end,
                # after COMMIT. An error in a queued statement is raised at the next read or at
                # the end; the transaction then rolls back (the pool's connection context).
                with conn.pipeline() if _PIPELINE else nullcontext() as pipeline:
                    tx.pipeline = pipeline
                    conn.execute("BEGIN", prepare=False)
                    if exclusive:
                        self._exclude_writers(conn)
                    yield tx
                    commit = conn.execute("COMMIT", prepare=False)
                    if tx.inserted:
                        conn.execute(_NOTIFY)  # a transaction of its own (autocommit)
            except psycopg.Error as exc:
                if not _committed(commit):
                    raise
                # the data committed; only its notification failed: say so, do not undo it
                log.warning("store %s: committed, but NOTIFY failed: %s", self.url, exc)
                with suppress(psycopg.Error):  # a broken connection: the pool drops it
                    conn.rollback()
            for cursor, rows in tx.inserted:
                # the INSERT draws seqs in the rows' order (ORDER BY n), so sorted they are the
                # rows' seqs in order, whatever order RETURNING gives them back in
                seqs = sorted(int(r[0]) for r in cursor.fetchall())
                if len(seqs) != len(rows):
                    raise StoreError(f"store {self.url}: {len(seqs)} seqs for {len(rows)} events")
                for row, seq in zip(rows, seqs, strict=True):
                    row.seq = seq

    def _exclude_writers(self, conn: psycopg.Connection[Any]) -> None:
        """Hold off every other writer until this transaction ends (rebuild)."""
        # writers update projection rows before they append: hold every table too, so none of
        # their updates lands on a row this transaction replaces
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

    @contextmanager
    def read(self) -> Iterator[_PgTx]:
        # autocommit: each statement reads the commits before it (READ COMMITTED's view of a
        # transaction, without its BEGIN and COMMIT round trips)
        with _translated(self.url), self._pool.connection() as conn:
            yield _PgTx(conn, self.url)

    def horizon(self) -> int:
        """The highest ``seq`` below which the log is final (see the module docstring): every
        event with a lower or equal ``seq`` has committed, or never will."""
        return self._horizon.get(self._read_horizon)

    def _read_horizon(self) -> int:
        with _translated(self.url), self._pool.connection() as conn:
            with conn.pipeline() if _PIPELINE else nullcontext():
                conn.execute("BEGIN", prepare=False)
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
                cursor = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events")
                conn.execute("COMMIT", prepare=False)
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    # ── dialect ──────────────────────────────────────────────────────────────────────────────

    def insert_events(self, tx: Any, rows: Sequence[EventRow]) -> None:
        conn: psycopg.Connection[Any] = tx.connection
        # the shared append lock before the INSERT draws its seqs; held to commit
        conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (_APPEND_LOCK,))
        cursor = conn.execute(_INSERT, (Jsonb(_events_json(rows), dumps=_as_is),))
        tx.inserted.append((cursor, rows))

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


def _committed(commit: psycopg.Cursor[Any] | None) -> bool:
    """Whether a pipelined COMMIT ran and succeeded."""
    result = None if commit is None else commit.pgresult
    return result is not None and result.status == psycopg.pq.ExecStatus.COMMAND_OK


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
