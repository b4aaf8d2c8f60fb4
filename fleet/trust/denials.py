"""Cedar lease denials, recorded without a write per poll (issue 21, "each decision recorded
with the policy set's digest").

A lease that a Cedar policy allows is recorded in its ``task_leased`` event (``policy``). A
denial leaves nothing to lease, and a worker that is denied polls again and again: recording
each would write on every poll. A denial is therefore recorded as one ``policy_denied`` event
(run-scoped, so it is in the run's events and bundle) per **(task, attempt, worker, policy set
digest)**: the first time that worker is denied that attempt under that policy set. A new
attempt of the task, or a changed policy set, records anew. The set of keys already recorded is
read from the run's ``policy_denied`` events once per run and process, then kept in memory
(bounded): a second ``serve`` process may record the same denial once more, never per poll.
"""

from __future__ import annotations

import threading
from typing import Any

from fleetforge.fleet.store import Tx

__all__ = ["DenialKey", "LeaseDenials"]

DenialKey = tuple[str, int, str, str]  # (task_id, attempt, worker_id, policy digest)

_RUN_DENIALS = "SELECT data FROM events WHERE run_id = :run_id AND type = 'policy_denied'"


class LeaseDenials:
    """Which lease denials are recorded already (see the module doc)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._keys: set[DenialKey] = set()
        self._runs: set[str] = set()  # runs whose recorded denials are in _keys
        self._lock = threading.Lock()

    def is_new(self, tx: Tx, run_id: str, key: DenialKey) -> bool:
        """Whether ``key`` is not recorded yet (the caller then appends its ``policy_denied``
        event and, once that commits, calls :meth:`recorded`)."""
        with self._lock:
            if key in self._keys:
                return False
            if run_id in self._runs:
                return True
        rows = tx.fetchall(_RUN_DENIALS, {"run_id": run_id})
        found = {_key_of(tx.load_json(r[0])) for r in rows}
        with self._lock:
            self._bound()
            self._keys |= found
            self._runs.add(run_id)
            return key not in self._keys

    def recorded(self, keys: list[DenialKey]) -> None:
        """``keys``' events committed."""
        with self._lock:
            self._bound()
            self._keys.update(keys)

    def _bound(self) -> None:
        if len(self._keys) >= self.max_keys:  # forget all; runs are read again when needed
            self._keys.clear()
            self._runs.clear()


def _key_of(data: dict[str, Any]) -> DenialKey:
    policy = data.get("policy") or {}
    return (
        str(data.get("task_id")),
        int(data.get("attempt") or 0),
        str(data.get("worker_id")),
        str(policy.get("policy_digest")),
    )
