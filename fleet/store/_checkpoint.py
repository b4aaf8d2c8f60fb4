"""Copying SQLite's WAL back into the database file off the writer's path.

In WAL mode every commit appends pages to the ``-wal`` file, and a *checkpoint* copies them
into the database file (and, at ``synchronous=FULL``, fsyncs it). SQLite's automatic
checkpoint runs inside whichever commit crosses the threshold, so that one writer waits for
megabytes of copying: with the fleet's many indexed tables a task cycle writes ~20 KiB of WAL,
and at FULL the automatic checkpoints cost half the throughput (2,500 -> 1,000 tasks/s here).

:class:`Checkpointer` runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a connection and thread of its
own whenever the WAL has grown past a threshold since the last one. A PASSIVE checkpoint never
blocks writers or readers (it copies what no reader still needs and stops there); the writer's
own automatic checkpoint stays on at a much higher threshold as a backstop, so the WAL stays
bounded even if this thread falls behind.

How much the WAL has grown is counted in commits, not read from the file: SQLite reuses the WAL
from its start once a checkpoint has copied all of it, without shrinking the file, so its size
says nothing about what was written since. Each checkpoint reports the frames the WAL holds;
with the commits since the last one that gives the frames per commit, and so how many commits
make the threshold. Counting costs the writer one addition per commit.
"""

from __future__ import annotations

import sqlite3
import threading

from fleetforge.redaction import get_logger

__all__ = ["Checkpointer"]

log = get_logger("fleetforge.store")

CHECKPOINT_BYTES = 8 * 1024 * 1024  # checkpoint once the WAL grew this much
BACKSTOP_PAGES = 20_000  # the writer's own automatic checkpoint (~80 MiB of WAL)
FIRST_CHECK = 64  # commits before the first checkpoint, which measures the frames per commit


class Checkpointer:
    """A background PASSIVE checkpointer for one SQLite database file."""

    def __init__(self, path: str, *, threshold: int = CHECKPOINT_BYTES) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        (page_size,) = self._conn.execute("PRAGMA page_size").fetchone()
        self._frames_due = max(1, threshold // (int(page_size) + 24))  # a frame: header + page
        self._wake = threading.Event()
        self._stopping = False
        self._commits = 0  # since the last checkpoint (written by the writer, read here)
        self._every = FIRST_CHECK  # commits between checkpoints, from the last measurement
        self._frames = 0  # frames in the WAL after the last checkpoint (0: it restarts)
        self.checkpoints = 0
        self._thread = threading.Thread(
            target=self._run, name="fleetforge-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def committed(self) -> None:
        """Called after each write commit: wake the thread once enough commits to have grown
        the WAL by the threshold have been made."""
        self._commits += 1
        if self._commits >= self._every:
            self._wake.set()

    @property
    def due(self) -> bool:
        """Whether a checkpoint has been asked for and not started yet."""
        return self._wake.is_set()

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)
        self._conn.close()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            commits, self._commits = self._commits, 0
            try:
                busy, frames, copied = self._conn.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)"
                ).fetchone()
                self.checkpoints += 1
            except sqlite3.Error as exc:  # busy with another checkpoint, or closing: next time
                log.debug("background checkpoint skipped: %s", exc)
                continue
            self._measure(commits, int(frames), int(busy) == 0 and copied == frames)

    def _measure(self, commits: int, frames: int, complete: bool) -> None:
        """Set the commits until the next checkpoint from the frames the last ``commits``
        wrote. After a complete checkpoint the next write starts the WAL again from its start."""
        written = frames - self._frames if frames >= self._frames else frames
        if commits > 0 and written > 0:
            per_commit = written / commits
            self._every = max(1, min(1_000_000, round(self._frames_due / per_commit)))
        self._frames = 0 if complete else frames
