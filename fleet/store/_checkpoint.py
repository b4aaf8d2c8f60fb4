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
"""

from __future__ import annotations

import os
import sqlite3
import threading

from fleetforge.redaction import get_logger

__all__ = ["Checkpointer"]

log = get_logger("fleetforge.store")

CHECKPOINT_BYTES = 8 * 1024 * 1024  # checkpoint once the WAL grew this much
BACKSTOP_PAGES = 20_000  # the writer's own automatic checkpoint (~80 MiB of WAL)


class Checkpointer:
    """A background PASSIVE checkpointer for one SQLite database file."""

    def __init__(self, path: str, *, threshold: int = CHECKPOINT_BYTES) -> None:
        self._wal = path + "-wal"
        self._threshold = threshold
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._wake = threading.Event()
        self._stopping = False
        self._last_size = 0
        self.checkpoints = 0
        self._thread = threading.Thread(
            target=self._run, name="fleetforge-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def committed(self) -> None:
        """Called after each write commit: wake the thread once the WAL has grown enough."""
        try:
            size = os.stat(self._wal).st_size
        except OSError:
            return
        if size < self._last_size:  # the WAL restarted or was truncated
            self._last_size = 0
        if size - self._last_size >= self._threshold:
            self._last_size = size
            self._wake.set()

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
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.checkpoints += 1
            except sqlite3.Error as exc:  # busy with another checkpoint, or closing: next time
                log.debug("background checkpoint skipped: %s", exc)
