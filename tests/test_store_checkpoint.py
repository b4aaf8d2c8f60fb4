"""SQLite's WAL is checkpointed by a thread of its own, off the writer's path."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from fleetforge.fleet.store import open_store
from fleetforge.fleet.store._checkpoint import BACKSTOP_PAGES, FIRST_CHECK, Checkpointer


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


def _write_and_settle(writer: sqlite3.Connection, checkpointer: Checkpointer, text: str) -> None:
    """One commit, told to the checkpointer; wait for the checkpoint it asked for, if any."""
    writer.execute("INSERT INTO t VALUES (?)", (text,))
    before = checkpointer.checkpoints
    checkpointer.committed()
    if checkpointer.due:
        _until(lambda: checkpointer.checkpoints > before)


def test_a_grown_wal_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = _wal_db(path)
    checkpointer = Checkpointer(str(path), threshold=64 * 1024)
    try:
        for n in range(FIRST_CHECK):
            _write_and_settle(writer, checkpointer, f"{n}" * 3000)
        assert checkpointer.checkpoints == 1
        # with automatic checkpoints off, only a checkpoint moves pages into the database file
        assert path.stat().st_size > FIRST_CHECK * 3000
    finally:
        checkpointer.close()
        writer.close()
    assert not any(t.name == "fleetforge-sqlite-checkpoint" for t in threading.enumerate())


def test_checkpoints_go_on_after_the_wal_restarts(tmp_path: Path) -> None:
    """SQLite reuses the WAL from its start after a complete checkpoint without shrinking the
    file: the WAL's size then says nothing about what was written since. Each commit here
    writes a few pages, so with a 64 KiB threshold a checkpoint is due every few commits, every
    time: ~100 in 600 commits (judged by the file's size they came ever later, ~14 in all)."""
    path = tmp_path / "w.db"
    writer = _wal_db(path)
    checkpointer = Checkpointer(str(path), threshold=64 * 1024)
    try:
        for n in range(600):
            _write_and_settle(writer, checkpointer, f"{n % 10}" * 3000)
        assert checkpointer.checkpoints >= 40, checkpointer.checkpoints
    finally:
        checkpointer.close()
        writer.close()


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


def test_statement_journals_stay_in_memory(tmp_path: Path) -> None:
    """A trigger-firing UPDATE inside a savepoint journals itself; in a temp file that was over
    half of a batched task's SQL time (``benchmarks/bench_fleet.py``)."""
    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        with store.backend.read() as tx:
            assert tx.fetchall("PRAGMA temp_store") == [(2,)]  # MEMORY
    finally:
        store.close()
