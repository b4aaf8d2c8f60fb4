"""SQLite's WAL is checkpointed by a thread of its own, off the writer's path."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from fleetforge.fleet.store import open_store
from fleetforge.fleet.store._checkpoint import BACKSTOP_PAGES, Checkpointer


def _wal_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # only the checkpointer copies pages back
    conn.execute("CREATE TABLE t (x TEXT)")
    return conn


def _until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_grown_wal_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = _wal_db(path)
    checkpointer = Checkpointer(str(path), threshold=64 * 1024)
    try:
        for _ in range(3):
            writer.execute("INSERT INTO t VALUES (?)", ("x" * 50_000,))
            checkpointer.committed()
        writer.execute("INSERT INTO t VALUES (?)", ("y" * 50_000,))
        checkpointer.committed()
        _until(lambda: checkpointer.checkpoints >= 1)
        # with automatic checkpoints off, only a checkpoint moves pages into the database file
        assert path.stat().st_size > 150_000
    finally:
        checkpointer.close()
        writer.close()
    assert not any(t.name == "fleetforge-sqlite-checkpoint" for t in threading.enumerate())


def test_below_the_threshold_nothing_is_checkpointed(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = _wal_db(path)
    checkpointer = Checkpointer(str(path), threshold=10 * 1024 * 1024)
    try:
        writer.execute("INSERT INTO t VALUES ('small')")
        checkpointer.committed()
        assert path.stat().st_size < 64 * 1024
        _, log_frames, _done = writer.execute("PRAGMA wal_checkpoint(NOOP)").fetchone()
        assert checkpointer.checkpoints == 0
        assert log_frames > 0
    finally:
        checkpointer.close()
        writer.close()


def _checkpointers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "fleetforge-sqlite-checkpoint"}


def test_a_file_store_runs_one_checkpointer_and_stops_it_on_close(tmp_path: Path) -> None:
    before = _checkpointers()
    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        with store.backend.read() as tx:
            [(pages,)] = tx.fetchall("PRAGMA wal_autocheckpoint")
        assert pages == BACKSTOP_PAGES
        [thread] = _checkpointers() - before
    finally:
        store.close()
    assert not thread.is_alive()
    memory = open_store("sqlite://")  # nothing to checkpoint in memory
    try:
        assert _checkpointers() == before
    finally:
        memory.close()
