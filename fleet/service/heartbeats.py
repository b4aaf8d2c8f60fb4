"""Heartbeats: a read-only fencing check while the lease has time left, an extension (a
task_heartbeat event) once less than half of it remains.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from fleetforge.contracts import FleetLease, FleetTaskFailureKind, FleetTaskSpec
from fleetforge.errors import LeaseLostError, NotFoundError, UsageError
from fleetforge.fleet._state import TaskState, load_task_and_run
from fleetforge.fleet.access import Caller, Refusal
from fleetforge.fleet.service.core import retrying, run_of
from fleetforge.fleet.service.leasing import Leasing
from fleetforge.fleet.store import Tx, Unit


class Heartbeats(Leasing):
    """Heartbeats: a read-only fencing check while the lease has time left, an extension (a"""

    @retrying
    def heartbeat(
        self,
        task_id: str,
        fencing_token: int,
        *,
        lease_seconds: float = 30.0,
        caller: Caller | None = None,
    ) -> FleetLease:
        """Keep a lease. Raises LeaseLostError (stale token, or the wall-time budget is
        spent) or RunCancelledError.

        The lease is extended to ``lease_seconds`` from now, with a ``task_heartbeat`` event,
        only when less than half of ``lease_seconds`` remains; otherwise the heartbeat is a
        read-only check of the fencing token and returns the lease as it stands (a worker
        that heartbeats every third of its lease, as :class:`~fleetforge.worker.Worker` does,
        writes every other heartbeat; the rule reads only stored state, so replay agrees).
        """
        self.expire_leases()
        now = self.clock.now()
        if lease_seconds <= 0:
            raise UsageError(f"lease_seconds must be positive, got {lease_seconds}")
        with self.store.backend.read() as tx:
            lease = self._lease_as_it_stands(tx, task_id, fencing_token, lease_seconds, caller, now)
            revoked = self._revoked_capabilities(tx, task_id) if lease is not None else []
        if lease is not None:
            return lease.model_copy(update={"revoked_capabilities": revoked}) if revoked else lease
        with self.store.transaction() as unit:
            kept = self._heartbeat_in(unit, task_id, fencing_token, lease_seconds, caller, now)
        if isinstance(kept, LeaseLostError):
            raise kept  # the budget's events are committed: the task failed
        return kept

    def _heartbeat_in(
        self,
        unit: Unit,
        task_id: str,
        fencing_token: int,
        lease_seconds: float,
        caller: Caller | None,
        now: datetime,
    ) -> FleetLease | LeaseLostError:
        """Extend a lease inside ``unit``; a spent wall-time budget fails the task instead and
        comes back as the LeaseLostError to raise once that is committed."""
        task = self._held(
            unit, task_id, fencing_token, caller=caller, what="heartbeat", lock_run=False
        )
        budget = self._task_spec(task).budget
        elapsed = (now - task.leased_at).total_seconds() if task.leased_at else 0.0
        if budget and budget.max_wall_s is not None and elapsed > budget.max_wall_s:
            self._append(
                unit,
                [
                    self._event(
                        "budget_exceeded",
                        task.run_id,
                        now,
                        budget="wall_time",
                        limit=budget.max_wall_s,
                        used=elapsed,
                        step_id=task.step_id,
                        task_id=task_id,
                    )
                ],
            )
            message = f"wall time {elapsed:.1f}s exceeds the budget of {budget.max_wall_s}s"
            self._run(unit, task.run_id, lock=True)  # failing the task may change the run
            self._task_failed(unit, task, FleetTaskFailureKind.BUDGET_EXCEEDED, message, now)
            return LeaseLostError(f"lease lost: {message}", task_id=task_id)

        expires = now + timedelta(seconds=lease_seconds)
        self._append(
            unit,
            [
                self._event(
                    "task_heartbeat",
                    task.run_id,
                    now,
                    task_id=task_id,
                    worker_id=task.worker_id,
                    fencing_token=fencing_token,
                    expires_at=expires,
                )
            ],
        )
        # the lease outlives the capability token minted with it: a fresh one to its new
        # expiry, unless the current one was revoked (then the worker is told, and keeps none)
        revoked = self._revoked_capabilities(unit.tx, task_id)
        capability = None if revoked else self._mint(unit, task, fencing_token, expires)
        return FleetLease.model_validate(
            {
                "worker_id": task.worker_id,
                "fencing_token": fencing_token,
                "leased_at": task.leased_at,
                "expires_at": expires,
                "capability": capability,
                "revoked_capabilities": revoked,
            }
        )

    def _lease_as_it_stands(
        self,
        tx: Tx,
        task_id: str,
        fencing_token: int,
        lease_seconds: float,
        caller: Caller | None,
        now: datetime,
        *,
        read: Mapping[str, TaskState] | None = None,
    ) -> FleetLease | None:
        """The lease, checked read-only, when it needs no extending; None when a write must
        extend it (or refuse the caller, or end a spent wall-time budget). ``read``: the tasks
        (with their runs' status) a batch read at once; else the task is read here."""
        if read is None:
            task = load_task_and_run(tx, task_id, run_of(task_id))
        else:
            task = read.get(task_id)
        if task is None:
            raise NotFoundError(f"no task '{task_id}'", task_id=task_id)
        assert task.run_status is not None
        try:
            self._checked_lease(tx, task, task.run_status, fencing_token, caller, "heartbeat")
        except Refusal:
            return None  # refused in the write path, which records the refusal
        if not _lease_holds(task, now, lease_seconds):
            return None
        if _over_wall_time(self._task_spec(task), task, now):
            return None
        assert task.leased_at is not None
        assert task.lease_expires_at is not None
        return FleetLease(
            worker_id=task.worker_id or "",
            fencing_token=fencing_token,
            leased_at=task.leased_at,
            expires_at=task.lease_expires_at,
        )


def _lease_holds(task: TaskState, now: datetime, lease_seconds: float) -> bool:
    """True when at least half of ``lease_seconds`` remains of the lease: no need to extend."""
    expires = task.lease_expires_at
    return expires is not None and (expires - now).total_seconds() >= lease_seconds / 2


def _over_wall_time(spec: FleetTaskSpec, task: TaskState, now: datetime) -> bool:
    budget = spec.budget
    if budget is None or budget.max_wall_s is None or task.leased_at is None:
        return False
    return (now - task.leased_at).total_seconds() > budget.max_wall_s
