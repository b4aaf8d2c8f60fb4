"""A naive SQLite job queue: the yardstick for what users run on the embedded store.

The same claim/complete loop as ``../shared/bench/queue_peers``' ``sqlite-wal-*`` systems (stdlib
sqlite3, WAL, one ``BEGIN IMMEDIATE`` transaction to claim the oldest queued job with
``UPDATE ... RETURNING`` and one to mark it done; the handler does nothing), run in this
process, so that a FleetForge figure measured in the same run can be stated as a ratio of it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

__all__ = ["naive_rate"]

_DDL = """
CREATE TABLE IF NOT EXISTS qp_jobs (
  id INTEGER PRIMARY KEY,
  status TEXT NOT NULL DEFAULT 'queued',
  payload TEXT,
  created_at REAL NOT NULL DEFAULT (((julianday('now') - 2440587.5) * 86400.0)),
  claimed_at REAL,
  done_at REAL
);
CREATE INDEX IF NOT EXISTS qp_jobs_queued ON qp_jobs (id) WHERE status = 'queued';
"""
_CLAIM = """
UPDATE qp_jobs SET status = 'running', claimed_at = ((julianday('now') - 2440587.5) * 86400.0)
WHERE id = (SELECT id FROM qp_jobs WHERE status = 'queued' ORDER BY id LIMIT 1)
RETURNING id, payload
"""
_DONE = (
    "UPDATE qp_jobs SET status = 'done', "
    "done_at = ((julianday('now') - 2440587.5) * 86400.0) WHERE id = ?"
)


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


def naive_rate(path: Path, synchronous: str, jobs: int) -> float:
    """Jobs/s of one consumer draining ``jobs`` pre-filled no-op jobs."""
    conn = _connect(path, synchronous)
    try:
        conn.executescript(_DDL)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO qp_jobs (payload) VALUES (?)", [(f'{{"i":{i}}}',) for i in range(jobs)]
        )
        conn.execute("COMMIT")
        done = 0
        start = time.perf_counter()
        while True:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(_CLAIM).fetchone()
            conn.execute("COMMIT")
            if row is None:
                break
            conn.execute("BEGIN IMMEDIATE")  # the handler did nothing: mark the job done
            conn.execute(_DONE, (row[0],))
            conn.execute("COMMIT")
            done += 1
        elapsed = time.perf_counter() - start
        left = conn.execute("SELECT count(*) FROM qp_jobs WHERE status <> 'done'").fetchone()[0]
    finally:
        conn.close()
    if done != jobs or left:
        raise RuntimeError(f"naive queue: {done} of {jobs} jobs done, {left} left")
    return jobs / elapsed
