"""Workers: registration, liveness, and the worker a call acts for."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fleetforge._jsondomain import check_document
from fleetforge.contracts import FleetTrustLevel, FleetWorkerSpec
from fleetforge.contracts.protocol import Ed25519Auth
from fleetforge.errors import ForbiddenError, NotFoundError, UsageError
from fleetforge.fleet._state import at
from fleetforge.fleet.access import Caller
from fleetforge.fleet.service.core import Q, retrying
from fleetforge.fleet.service.steps import Steps
from fleetforge.fleet.store import Unit
from fleetforge.operations.results import WorkerRecord

_WORKER_CACHE_S = 1.0


def bind_to_token(worker: FleetWorkerSpec, caller: Caller | None) -> FleetWorkerSpec:
    """The spec as the fleet records it for ``caller``: a token's worker takes the token's
    trust level; a declared ``ed25519`` key must be the token's key when the token has one, and
    a token's key becomes the worker's auth when it declares none."""
    if caller is None or caller.token_id is None:
        return worker
    trust = FleetTrustLevel(caller.trust_level or FleetTrustLevel.SANDBOXED)
    auth = worker.auth
    key = caller.public_key
    if isinstance(auth, Ed25519Auth):
        if key is not None and auth.public_key != key:
            raise ForbiddenError(
                f"forbidden: worker '{worker.worker_id}' declares an ed25519 key that is not the "
                f"key registered with {caller.label}",
                worker_id=worker.worker_id,
            )
    elif key is not None:
        auth = Ed25519Auth(key_id=f"token:{caller.token_name}", public_key=key)
    return worker.model_copy(update={"trust_level": trust, "auth": auth})


class Workers(Steps):
    """Workers: registration, liveness, and the worker a call acts for."""

    @retrying
    def register_worker(
        self, spec: FleetWorkerSpec | Mapping[str, Any], *, caller: Caller | None = None
    ) -> FleetWorkerSpec:
        """Register (or re-register) a worker with what it can do.

        A worker's trust is never self-declared: one that calls with a bearer token gets the
        token's trust level (and its public key, when the admin registered one), whatever its
        spec says; only a trusted caller (in process, stdio) keeps the level it registers."""
        spec = check_document(spec, what="worker spec")
        worker = spec if isinstance(spec, FleetWorkerSpec) else FleetWorkerSpec.model_validate(spec)
        worker = bind_to_token(worker, caller)
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
