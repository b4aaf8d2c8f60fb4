"""Exact counts of what task cycles cost the database, per cycle, on SQLite and PostgreSQL.

These counts do not depend on the machine's speed or load (they are what the engine asks the
database to do), so they are comparable across runs and days, unlike throughput.

SQLite (:class:`SqliteCounter`): ``sqlite3.connect`` is wrapped while the store opens, and each
connection gets SQLite's trace callback (``sqlite3_trace_v2``: one call per statement run, an
``executemany`` row counting as one, BEGIN and COMMIT included; statements run by triggers come
as ``-- TRIGGER`` lines and are counted apart). After the cycles, the ``-wal`` file (emptied by a
TRUNCATE checkpoint before them, with auto-checkpoints off meanwhile) is read frame by frame:
each frame with a non-zero "database size" field ends a transaction, i.e. one WAL commit, which
is one fsync of the WAL at ``synchronous=FULL`` (none at NORMAL); its bytes are the WAL written.
Rows written = the connections' ``total_changes`` (trigger rows included); events = the growth
of the events table; projection rows = rows written - events.

PostgreSQL (:class:`PgWire` + :func:`pg_wal_snapshot`): the store connects through a small TCP
proxy that parses the frontend protocol messages the client sends (after the startup packet:
one type byte and a length each). Statements = Execute messages + simple Query messages; their
SQL comes from the Parse (named or not) that the Bind of each Execute refers to. A round trip is
a point where the client asks the server to answer everything sent so far and waits: a Sync, a
Flush request or a simple Query, unless an earlier one is still unanswered (a Sync and the Flush
psycopg sends right after it to end a pipeline are one). The proxy also counts "turns" (the
server starting to answer after such a request) as a cross-check: the two agree. The server
side is read from the WAL between two LSNs with ``pg_waldump --stats=record``:
Transaction/COMMIT records = write transactions (read-only ones write none), Heap INSERT/UPDATE/
HOT_UPDATE/DELETE records = rows written (Heap LOCK = row locks, apart), and the WAL bytes;
``pg_stat_wal.wal_sync`` gives the WAL fsyncs (cluster-wide: the bench server serves only this
store, and autovacuum is off while counting; the store's one connection is made to report its
statistics before each snapshot).

Both: the service runs on a clock held still, so the time-driven reads (the lease-expiry scan at
most every 100 ms per process, the database clock's resync every 10 s on PostgreSQL) do not
happen inside the counted window: they are per process and second, not per cycle.
"""

from __future__ import annotations

import re
import select
import socket
import sqlite3
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PgWire",
    "SqliteCounter",
    "WalFrames",
    "classify",
    "pg_wal_snapshot",
    "pg_waldump_stats",
    "transactions",
    "wal_frames",
]

_WRITE_TX = re.compile(r"^\s*BEGIN\s+(IMMEDIATE|EXCLUSIVE)\b", re.IGNORECASE)


def classify(sql: str) -> str:
    """The statement's first keyword, upper-case (``-- TRIGGER`` for trigger sub-statements)."""
    text = sql.lstrip()
    if text.startswith("-- TRIGGER"):
        return "-- TRIGGER"
    while text.startswith("--"):  # leading comment lines of a named query
        text = text.split("\n", 1)[1].lstrip() if "\n" in text else ""
    return (text.split(None, 1) or [""])[0].upper().rstrip(";")


def transactions(statements: list[str]) -> dict[str, int]:
    """BEGIN/COMMIT pairs (and rollbacks, savepoints) in a statement log."""
    kinds = Counter(classify(s) for s in statements)
    return {
        "begin": kinds["BEGIN"],
        "commit": kinds["COMMIT"] + kinds["END"],
        "rollback": kinds["ROLLBACK"],
        "savepoint": kinds["SAVEPOINT"],
        "begin_immediate": sum(1 for s in statements if _WRITE_TX.match(s)),
    }


# ── SQLite ───────────────────────────────────────────────────────────────────────────────────


@dataclass
class WalFrames:
    frames: int = 0
    commits: int = 0
    page_size: int = 0

    @property
    def bytes(self) -> int:
        return self.frames * (24 + self.page_size)


def wal_frames(path: Path) -> WalFrames:
    """The valid frames of a SQLite WAL file (salt equal to the header's), and how many of them
    end a transaction (their "database size after commit" field is non-zero)."""
    if not path.exists():
        return WalFrames()
    data = path.read_bytes()
    if len(data) < 32:
        return WalFrames()
    _magic, _version, page_size, _ckpt, salt1, salt2 = struct.unpack(">6I", data[:24])
    found = WalFrames(page_size=page_size)
    size = 24 + page_size
    offset = 32
    while offset + size <= len(data):
        _page, commit, s1, s2 = struct.unpack(">4I", data[offset : offset + 16])
        if (s1, s2) != (salt1, salt2):
            break
        found.frames += 1
        found.commits += commit != 0
        offset += size
    return found


@dataclass
class SqliteCounter:
    """Traces every statement of the SQLite connections opened inside :meth:`capturing`."""

    connections: list[sqlite3.Connection] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    recording: bool = False

    @contextmanager
    def capturing(self) -> Iterator[SqliteCounter]:
        real = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            conn = real(*args, **kwargs)
            conn.set_trace_callback(self._trace)
            self.connections.append(conn)
            return conn

        sqlite3.connect = connect  # type: ignore[assignment]
        try:
            yield self
        finally:
            sqlite3.connect = real

    def _trace(self, sql: str) -> None:
        if self.recording:
            self.statements.append(sql)

    def _each(self, sql: str) -> None:
        for conn in self.connections:
            conn.execute(sql)

    def changes(self) -> int:
        return sum(conn.total_changes for conn in self.connections)

    def count(
        self, db_path: Path, events: Callable[[], int], work: Callable[[], int]
    ) -> dict[str, float]:
        """Run ``work`` (returns how many cycles it did) with statements traced and the WAL
        counted; ``events`` tells the events table's size. Figures per cycle."""
        if not self.connections:
            raise RuntimeError("no SQLite connection was opened while capturing")
        wal = Path(f"{db_path}-wal")
        self._each("PRAGMA wal_autocheckpoint = 0")
        self._each("PRAGMA wal_checkpoint(TRUNCATE)")
        assert wal_frames(wal).frames == 0, "the WAL was not emptied"
        events_before, changes_before = events(), self.changes()
        self.statements.clear()
        self.recording = True
        try:
            cycles = work()
        finally:
            self.recording = False
        frames = wal_frames(wal)
        written = self.changes() - changes_before
        new_events = events() - events_before
        self._each("PRAGMA wal_autocheckpoint = 10000")
        top = [s for s in self.statements if classify(s) != "-- TRIGGER"]
        tx = transactions(top)
        figures = {
            "statements": len(top),
            "trigger_statements": len(self.statements) - len(top),
            "begin_commit_pairs": tx["commit"],
            "write_transactions": tx["begin_immediate"],
            "rollbacks": tx["rollback"],
            "savepoints": tx["savepoint"],
            "wal_commits": frames.commits,
            "wal_frames": frames.frames,
            "wal_bytes": frames.bytes,
            "events": new_events,
            "rows_written": written,
            "projection_rows": written - new_events,
        }
        return {k: v / cycles for k, v in figures.items()}

    def kinds(self) -> Counter[str]:
        return Counter(classify(s) for s in self.statements)


# ── PostgreSQL ───────────────────────────────────────────────────────────────────────────────

_PROTOCOL_3 = 3 << 16


class _ClientStream:
    """Splits what a PostgreSQL client sends into protocol messages."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.startup = True

    def feed(self, data: bytes) -> Iterator[tuple[str, bytes]]:
        self.buffer += data
        buf = self.buffer
        while True:
            if self.startup:  # untyped: length, code (SSLRequest, GSSENCRequest, startup)
                if len(buf) < 8:
                    return
                length = int.from_bytes(buf[:4], "big")
                if len(buf) < length:
                    return
                code = int.from_bytes(buf[4:8], "big")
                del buf[:length]
                if code >> 16 == _PROTOCOL_3 >> 16:
                    self.startup = False
                continue
            if len(buf) < 5:
                return
            length = int.from_bytes(buf[1:5], "big")
            if len(buf) < 1 + length:
                return
            kind, payload = chr(buf[0]), bytes(buf[5 : 1 + length])
            del buf[: 1 + length]
            yield kind, payload


def _cstrings(payload: bytes, count: int) -> list[str]:
    parts = payload.split(b"\0", count)
    return [p.decode("utf-8", "replace") for p in parts[:count]]


class PgWire:
    """A counting TCP proxy in front of a PostgreSQL server (see the module doc)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.recording = False
        self.messages: Counter[str] = Counter()
        self.statements: list[str] = []
        self.round_trips = 0
        self.turns = 0
        self.client_bytes = 0
        self.log: list[str] | None = None  # set to a list to see each message and server turn
        self._lock = threading.Lock()
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="pgwire-accept").start()

    def dsn(self, dbname: str, user: str) -> str:
        return (
            f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}?sslmode=disable&gssencmode=disable"
        )

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.statements.clear()
            self.round_trips = self.turns = self.client_bytes = 0

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        for sock in self._sockets:
            with suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets.append(sock)
        stream = _ClientStream()
        prepared: dict[str, str] = {}
        portals: dict[str, str] = {}
        asked = False  # the client asked for an answer since the server last spoke
        last = ""  # the kind of the client's previous message
        try:
            while True:
                ready, _, _ = select.select([client, server], [], [])
                # the server's data answers what was sent before: read it first
                if server in ready:
                    data = server.recv(1 << 16)
                    if not data:
                        return
                    if asked:  # counted before the client sees the answer and goes on
                        asked = False
                        if self.recording:
                            with self._lock:
                                self.turns += 1
                    if self.recording and self.log is not None:
                        self.log.append(f"<- {len(data)} bytes")
                    client.sendall(data)
                if client in ready:
                    data = client.recv(1 << 16)
                    if not data:
                        return
                    server.sendall(data)
                    for kind, payload in stream.feed(data):
                        sql = None
                        if kind == "P":
                            name, query = _cstrings(payload, 2)
                            prepared[name] = query
                        elif kind == "B":
                            portal, statement = _cstrings(payload, 2)
                            portals[portal] = prepared.get(statement, "?")
                        elif kind == "E":
                            sql = portals.get(_cstrings(payload, 1)[0], "?")
                        elif kind == "Q":
                            sql = _cstrings(payload, 1)[0]
                        # a request joins one still unanswered, and psycopg's "Sync, Flush"
                        # at the end of a pipeline is one request whatever the timing
                        closing = kind == "H" and last == "S"
                        trip = kind in "QSH" and not asked and not closing
                        if kind in "QSH" and not closing:
                            asked = True
                        last = kind
                        if self.recording:
                            with self._lock:
                                self.messages[kind] += 1
                                self.client_bytes += 5 + len(payload)
                                self.round_trips += trip
                                if sql is not None:
                                    self.statements.append(sql)
                                if self.log is not None:
                                    brief = " ".join((sql or "").split())[:60]
                                    self.log.append(f"-> {kind}{' trip' if trip else ''} {brief}")
        except OSError:
            return
        finally:
            client.close()
            server.close()


@dataclass
class PgWal:
    lsn: str
    wal_sync: int
    wal_bytes: int


def pg_wal_snapshot(admin: Any, flush: Callable[[], None], *, settle: float = 1.2) -> PgWal:
    """WAL position and ``pg_stat_wal``, after ``flush`` made the store's backend report its
    statistics (``pg_stat_force_next_flush()`` in a transaction of the store: a busy backend
    reports at most once a second, an idle one not before it exits) and ``settle`` seconds for
    the WAL writer's own report (once a second)."""
    flush()
    time.sleep(settle)
    admin.execute("SELECT pg_stat_clear_snapshot()")
    lsn, syncs, size = admin.execute(
        "SELECT pg_current_wal_flush_lsn()::text, wal_sync, wal_bytes FROM pg_stat_wal"
    ).fetchone()
    return PgWal(lsn, int(syncs), int(size))


_ROW_WRITES = ("Heap/INSERT", "Heap/UPDATE", "Heap/HOT_UPDATE", "Heap/DELETE", "Heap2/MULTI_INSERT")


def pg_waldump_stats(bindir: Path, wal_dir: str, start: str, end: str) -> dict[str, int]:
    """Record counts by type between two LSNs (``pg_waldump --stats=record``): commits, row
    writes, row locks, records and bytes."""
    if start == end:
        return {"commits": 0, "row_writes": 0, "row_locks": 0, "records": 0, "bytes": 0}
    done = subprocess.run(
        [str(bindir / "pg_waldump"), "-p", wal_dir, "-s", start, "-e", end, "--stats=record"],
        capture_output=True,
        text=True,
        check=True,
    )
    counts: Counter[str] = Counter()
    total_records = total_bytes = 0
    for line in done.stdout.splitlines():
        match = re.match(r"^(\S+/\S+)\s+(\d+)\s", line)
        if match:
            counts[match[1]] += int(match[2])
            continue
        total = re.match(r"^Total\s+(\d+)\s", line)
        if total:  # records, then record / FPI / combined sizes, each with a [percentage]
            total_records = int(total[1])
            total_bytes = int(re.findall(r"(\d+)\s+\[", line)[-1])

    def of(prefix: str) -> int:
        return sum(n for kind, n in counts.items() if kind.split("+")[0] == prefix)

    return {
        "commits": of("Transaction/COMMIT"),
        "row_writes": sum(of(kind) for kind in _ROW_WRITES),
        "row_locks": of("Heap/LOCK"),
        "records": total_records,
        "bytes": total_bytes,
    }
