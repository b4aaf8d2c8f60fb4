"""Workers: registration, liveness, and the worker a call acts for."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fleetforge._jsondomain import check_document
from fleetforge.contracts import FleetWorkerSpec
from fleetforge.errors import ForbiddenError, NotFoundError, UsageError
from fleetforge.fleet._state import at
from fleetforge.fleet.access import Caller
from fleetforge.fleet.service.core import Q, retrying
from fleetforge.fleet.service.steps import Steps
from fleetforge.fleet.store import Unit
from fleetforge.operations.results import WorkerRecord

_WORKER_CACHE_S = 1.0


class Workers(Steps):
    """Workers: registration, liveness, and the worker a call acts for."""

    @retrying
    def register_worker(self, spec: FleetWorkerSpec | Mapping[str, Any]) -> FleetWorkerSpec:
        """Register (or re-register) a worker with what it can do."""
        spec = check_document(spec, what="worker spec")
        worker = spec if isinstance(spec, FleetWorkerSpec) else FleetWorkerSpec.model_validate(spec)
        with self.store.transaction() as unit:
            self._append(
                unit, [self._event("worker_registered", None, self.clock.now(), worker=worker)]
            )
        self._workers.pop(worker.worker_id, None)
        return worker

    @retrying
    def worker_heartbeat(self, worker_id: str, *, status: str = "idle") -> None:
        """A worker says it is alive (workers holding leases are seen through their heartbeats)."""
        now = self.clock.now()
        with self.store.transaction() as unit:
            self._worker(unit, worker_id)
            self._append(unit, [self._event("worker_heartbeat", None, now, worker_id=worker_id,
                                     status=status)])  # fmt: skip

    def list_workers(self) -> list[WorkerRecord]:
        """Every registered worker with its status and when it was last seen."""
        with self.store.backend.read() as tx:
            return [
                WorkerRecord(
                    spec=FleetWorkerSpec.model_validate(tx.load_json(r[1])),
                    status=r[2],
                    last_seen_at=at(r[4]),
                )
                for r in tx.fetchall(Q["workers"])
            ]

    @retrying
    def mark_offline_workers(self, *, after_seconds: float = 60.0) -> list[str]:
        """Record ``worker_offline`` for workers not seen for ``after_seconds``; return them."""
        now = self.clock.now()
        quiet = [
            w.spec.worker_id
            for w in self.list_workers()
            if w.status != "offline" and (now - w.last_seen_at).total_seconds() > after_seconds
        ]
        if quiet:
            with self.store.transaction() as unit:
                self._append(unit, [self._event("worker_offline", None, now, worker_id=worker_id,
                                         reason=f"not seen for over {after_seconds:g}s")
                             for worker_id in quiet])  # fmt: skip
        return quiet

    def _worker(self, unit: Unit, worker_id: str) -> FleetWorkerSpec:
        """The worker's registered spec. Kept for up to a second per service: a lease reads
        it on every call, and a worker re-registered by another process is seen within 1 s
        (one registered here at once)."""
        cached = self._workers.get(worker_id)
        if cached is not None and time.monotonic() - cached[0] < _WORKER_CACHE_S:
            return cached[1]
        row = unit.tx.fetchone(Q["worker"], {"worker_id": worker_id})
        if row is None:
            raise NotFoundError(
                f"no worker '{worker_id}': register it first (register_worker)",
                worker_id=worker_id,
            )
        spec = FleetWorkerSpec.model_validate(unit.tx.load_json(row[1]))
        read_at = time.monotonic()

        def remember() -> None:
            if len(self._workers) >= 4096:
                self._workers.clear()
            self._workers[worker_id] = (read_at, spec)

        # once committed: with group commit the row read may be another unit's registration
        # in the same transaction, which its COMMIT failing would undo
        unit.after_commit(remember)
        return spec

    def _batch_worker(self, worker_id: str | None, caller: Caller | None, wanted: int) -> str:
        """The worker a batch leases for: the caller's, or ``worker_id`` (when it may)."""
        if wanted == 0:
            return ""
        if caller is not None and caller.worker_id not in (None, worker_id or caller.worker_id):
            raise ForbiddenError(
                f"forbidden: {caller.label} acts as worker '{caller.worker_id}', not '{worker_id}'"
            )
        worker = worker_id or (caller.worker_id if caller is not None else None)
        if not worker:
            raise UsageError("lease_next needs the worker to lease for (worker_id)")
        return worker
