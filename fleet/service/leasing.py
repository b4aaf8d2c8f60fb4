"""Leases: handing tasks out, fencing, heartbeats, expiry, release and pause."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from itertools import islice
from typing import Any

from fleetforge._jsondomain import check_json_value
from fleetforge.contracts import (
    FleetCapabilityToken,
    FleetInboxEntry,
    FleetInboxStatus,
    FleetLease,
    FleetResume,
    FleetTrustLevel,
    FleetWorkerSpec,
    Run,
)
from fleetforge.contracts.protocol import Ed25519Auth
from fleetforge.errors import (
    AlreadyCompletedError,
    ForbiddenError,
    LeaseLostError,
    NotFoundError,
    RunCancelledError,
    UsageError,
)
from fleetforge.fleet._state import TaskState, at, load_task, task_from_row
from fleetforge.fleet.access import Caller, refusal
from fleetforge.fleet.requirements import meets
from fleetforge.fleet.service.budgets import Budgets
from fleetforge.fleet.service.core import Q, retrying, run_of, ts
from fleetforge.fleet.store import EventRow, Tx, Unit
from fleetforge.fleet.trust.capabilities import KEY_NAME
from fleetforge.fleet.trust.denials import DenialKey

_EXPIRY_SCAN_EVERY = timedelta(milliseconds=100)
_CAPABILITY_ID = re.compile(r"cap_[0-9a-f]{32}")


class Leasing(Budgets):
    """Leases: handing tasks out, fencing, heartbeats, expiry, release and pause."""

    def lease_task(
        self,
        worker_id: str,
        *,
        lease_seconds: float = 30.0,
        wait_seconds: float = 0.0,
        max_tasks: int = 1,
        caller: Caller | None = None,
    ) -> list[FleetInboxEntry]:
        """Lease up to ``max_tasks`` tasks this worker can do, each with a fencing token.

        Waits up to ``wait_seconds`` for one to appear (long poll). Returns [] when none came.
        The leases belong to ``caller`` (its worker, and its token when that names no worker):
        only it may act on them.
        """
        if caller is not None and caller.worker_id not in (None, worker_id):
            raise ForbiddenError(
                f"forbidden: {caller.label} acts as worker '{caller.worker_id}', not '{worker_id}'"
            )
        if lease_seconds <= 0:
            raise UsageError(f"lease_seconds must be positive, got {lease_seconds}")
        if not 1 <= max_tasks <= 100:
            raise UsageError(f"max_tasks must be between 1 and 100, got {max_tasks}")
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        pause = (
            0.005  # SQLite polls with backoff (5 ms doubling to 0.5 s); PostgreSQL wakes on NOTIFY
        )
        while True:
            self.expire_leases()
            leased = self._lease_once(worker_id, lease_seconds, max_tasks, caller)
            remaining = deadline - time.monotonic()
            if leased or remaining <= 0:
                return leased
            self.store.backend.wait_for_events(min(remaining, pause))
            pause = min(pause * 2, 0.5)

    @retrying
    def _lease_once(
        self, worker_id: str, lease_seconds: float, max_tasks: int, caller: Caller | None
    ) -> list[FleetInboxEntry]:
        with self.store.transaction() as unit:
            return self._lease_in(unit, worker_id, lease_seconds, max_tasks, caller)

    def _lease_in(
        self,
        unit: Unit,
        worker_id: str,
        lease_seconds: float,
        max_tasks: int,
        caller: Caller | None,
    ) -> list[FleetInboxEntry]:
        """Lease up to ``max_tasks`` tasks for ``worker_id`` inside ``unit``."""
        now = self.clock.now()
        worker = self._worker(unit, worker_id)
        # Candidates are locked as they are read, and ones other leases hold are passed
        # over (PostgreSQL's SKIP LOCKED): concurrent workers spread over the inbox.
        unit.tx.prefer_index_order()
        sql = unit.tx.for_update(Q["lease_candidates"], skip_locked=True)
        params = {
            "now": ts(now),
            "role": worker.role,
            "rank": worker.trust_level.rank,
            "has_key": 1 if isinstance(worker.auth, Ed25519Auth) else 0,
            "limit": max_tasks,
        }
        decisions: dict[str, dict[str, Any]] = {}
        # policy_denied events, once per task attempt, worker and policy (with their keys)
        denied: list[tuple[EventRow, DenialKey]] = []
        # Most candidates match: the first max_tasks are read (and locked) first, and only
        # when some of them do not match is the inbox read further, up to 8 x max_tasks.
        rows = unit.tx.fetchall(sql, params)
        chosen = self._matching(unit, worker, rows, max_tasks, decisions, denied)
        if len(chosen) < max_tasks and len(rows) == max_tasks:
            decisions.clear()
            denied.clear()  # the second read sees the same tasks again
            rows = unit.tx.fetchall(sql, params | {"limit": max_tasks * 8})
            chosen = self._matching(unit, worker, rows, max_tasks, decisions, denied)
        expires = now + timedelta(seconds=lease_seconds)
        credential = None if caller is None else caller.credential
        capabilities = {
            t.task_id: self._mint(unit, t, t.fencing_token + 1, expires) for t in chosen
        }
        # A lease starts its step's attempt (the steps projection does, from task_leased);
        # steps rows are locked by that projection, so the events go in (run, step) order:
        # two leases never wait on each other's step rows in opposite orders.
        events = [
            self._event(
                "task_leased",
                task.run_id,
                now,
                task_id=task.task_id,
                entry_id=task.entry_id,
                attempt=task.attempt,
                worker_id=worker_id,
                fencing_token=task.fencing_token + 1,
                expires_at=expires,
                step_id=task.step_id,
                credential=credential,
                capability_id=capabilities[task.task_id].token_id,
                policy=decisions.get(task.task_id),
            )
            for task in sorted(chosen, key=lambda t: (t.run_id, t.step_id, t.task_id))
        ]
        self._append(unit, [*(event for event, _ in denied), *events])
        if denied:  # known as recorded once they are committed (the final pass's only)
            keys = [key for _, key in denied]
            unit.after_commit(lambda: self._lease_denials.recorded(keys))
        return [
            FleetInboxEntry(
                entry_id=task.entry_id,
                task=self._task_spec(task),
                attempt=task.attempt,
                status=FleetInboxStatus.LEASED,
                enqueued_at=task.enqueued_at,
                available_at=task.available_at,
                lease=FleetLease(
                    worker_id=worker_id,
                    fencing_token=task.fencing_token + 1,
                    leased_at=now,
                    expires_at=expires,
                    capability=capabilities[task.task_id],
                ),
                resume=None if task.resume is None else FleetResume(**task.resume),
            )
            for task in chosen
        ]

    def _matching(
        self,
        unit: Unit,
        worker: FleetWorkerSpec,
        rows: Sequence[tuple[Any, ...]],
        max_tasks: int,
        decisions: dict[str, dict[str, Any]],
        denied: list[tuple[EventRow, DenialKey]],
    ) -> list[TaskState]:
        """The first ``max_tasks`` candidate rows whose task the worker can do (decoded
        lazily: usually only those are)."""
        tasks = (task_from_row(unit.tx, r) for r in rows)
        matching = (
            t
            for t in tasks
            if _matches(t.spec, worker) and self._policy_allows(unit, worker, t, decisions, denied)
        )
        return list(islice(matching, max_tasks))

    def _policy_allows(
        self,
        unit: Unit,
        worker: FleetWorkerSpec,
        task: TaskState,
        decisions: dict[str, dict[str, Any]],
        denied: list[tuple[EventRow, DenialKey]],
    ) -> bool:
        """The Cedar policy's word on this lease (always yes without one); an allow is kept
        for the task_leased event, with the policy set's digest; a denial not recorded yet
        becomes a policy_denied event (see fleet/trust/denials.py)."""
        if self.policy is None:
            return True
        decision = self.policy.decide_lease(worker, self._task_spec(task))
        if decision.allowed:
            decisions[task.task_id] = decision.to_json()
            return True
        key = (task.task_id, task.attempt, worker.worker_id, decision.digest)
        if self._lease_denials.is_new(unit.tx, task.run_id, key):
            event = self._event("policy_denied", task.run_id, self.clock.now(), action="lease",
                                task_id=task.task_id, step_id=task.step_id, attempt=task.attempt,
                                worker_id=worker.worker_id, policy=decision.to_json())  # fmt: skip
            denied.append((event, key))
        return False

    # ── capability tokens ───────────────────────────────────────────────────────────────────

    def _mint(
        self, unit: Unit, task: TaskState, fencing_token: int, expires: datetime
    ) -> FleetCapabilityToken:
        """The task's capability token until ``expires``, kept with the task (so it survives
        a restart of the service that minted it)."""
        self._capability_mint.load(unit.tx, self.clock.now(), after_commit=unit.after_commit)
        token = self._capability_mint.mint(self._task_spec(task), expires)
        unit.tx.execute(
            Q["capability_upsert"],
            {
                "task_id": task.task_id,
                "run_id": task.run_id,
                "fencing_token": fencing_token,
                "capability_id": token.token_id,
                "token": token.token,
                "expires_at": ts(expires),
            },
        )
        return token

    @staticmethod
    def _revoked_capabilities(tx: Tx, task_id: str) -> list[str]:
        """The task's current capability id when it was revoked (heartbeat answers)."""
        return [r[0] for r in tx.fetchall(Q["task_capability_revoked"], {"task_id": task_id})]

    def _revoked_among(self, tx: Tx, task_ids: Sequence[str]) -> dict[str, str]:
        """Of ``task_ids``, those whose current capability was revoked: task id -> its id."""
        if not task_ids:
            return {}
        params: dict[str, Any] = {}
        sql = Q["tasks_capability_revoked"].format(
            tasks=self.store.backend.in_list("task_id", sorted(set(task_ids)), params)
        )
        return {r[0]: r[1] for r in tx.fetchall(sql, params)}

    @retrying
    def revoke_capability(
        self, capability_id: str, *, reason: str = "", by: str | None = None
    ) -> dict[str, Any]:
        """Revoke a capability token id (admin): every token with it, attenuations too, is
        refused from now on; the worker holding it learns it with its next heartbeat."""
        check_json_value({"reason": reason}, what="arguments")
        if not _CAPABILITY_ID.fullmatch(capability_id):
            raise UsageError(
                f"capability id must be 'cap_' and 32 hex digits; got {capability_id!r}"
            )
        now = self.clock.now()
        with self.store.transaction() as unit:
            # two revocations of one id at once: the second waits, then sees the first
            unit.tx.lock(f"capability_revoked:{capability_id}")
            row = unit.tx.fetchone(Q["capability_by_id"], {"capability_id": capability_id})
            task_id, run_id = (row[0], row[1]) if row is not None else (None, None)
            if unit.tx.fetchone(Q["capability_revoked"], {"capability_id": capability_id}):
                return {"capability_id": capability_id, "task_id": task_id, "revoked": False}
            self._append(
                unit,
                [
                    self._event(
                        "capability_revoked",
                        run_id,
                        now,
                        capability_id=capability_id,
                        task_id=task_id,
                        reason=reason,
                        by=by,
                    )
                ],
            )
        return {"capability_id": capability_id, "task_id": task_id, "revoked": True}

    def revoked_capabilities(self) -> list[dict[str, Any]]:
        """Every revoked capability id, oldest first (for bundles and ``verify``)."""
        with self.store.backend.read() as tx:
            return [
                {"capability_id": r[0], "revoked_at": at(r[1]), "by": r[2], "reason": r[3]}
                for r in tx.fetchall(Q["capabilities_revoked"])
            ]

    def task_capability(self, task_id: str) -> FleetCapabilityToken | None:
        """The task's current capability token (for the receipt statement and the MCP gate)."""
        with self.store.backend.read() as tx:
            row = tx.fetchone(Q["capability_of_task"], {"task_id": task_id})
            key = tx.fetchone(Q["trust_key"], {"name": KEY_NAME})
        if row is None or key is None:
            return None
        return FleetCapabilityToken(
            token_id=row[0], token=row[1], public_key=key[1], expires_at=at(row[3])
        )

    def expire_leases(self, *, limit: int = 100, force: bool = False) -> int:
        """Return tasks whose lease lapsed to the inbox (attempt + 1); after
        ``max_lease_expiries`` lapses the step fails with ``timeout``. Returns how many.

        Scans at most every 100 ms of clock time unless ``force``; between scans a lapsed lease
        is still refused, by :meth:`_held`'s own check of its expiry.
        """
        now = self.clock.now()
        last = self._expiry_checked
        if not force and last is not None and now - last < _EXPIRY_SCAN_EVERY:
            return 0
        self._expiry_checked = now
        count = self._expire_due(now, limit)
        self._sweep_budgets(now)  # wall time of whole runs (issue 23), idle ones included
        return count

    @retrying
    def _expire_due(self, now: datetime, limit: int) -> int:
        with self.store.backend.read() as tx:
            due = [r[0] for r in tx.fetchall(Q["expired_leases"], {"now": ts(now), "limit": limit})]
        if not due:
            return 0
        count = 0
        with self.store.transaction() as unit:
            for task_id in sorted(due):  # by run: runs are locked in one order
                self._lock_run_of(unit, task_id)
                task = load_task(unit.tx, task_id, lock=True)
                if task is None or task.status != "leased" or not task.lease_expires_at:
                    continue
                if task.lease_expires_at >= now:
                    continue
                count += 1
                self._append(
                    unit,
                    [
                        self._event(
                            "task_lease_expired",
                            task.run_id,
                            now,
                            task_id=task.task_id,
                            worker_id=task.worker_id,
                            fencing_token=task.fencing_token,
                            reason="no heartbeat before the lease expired",
                        )
                    ],
                )
                if task.expiries + 1 >= self.max_lease_expiries:
                    message = f"the lease expired {task.expiries + 1} times"
                    self._fail_step(unit, task.run_id, task.step_id, "timeout", message, now)
                    continue
                spec = self._task_spec(task)
                enqueue = self._enqueue_event(spec, task.attempt + 1, now, now, task.resume)
                self._append(unit, [enqueue])
        return count

    def _held(
        self,
        unit: Unit,
        task_id: str,
        fencing_token: int,
        *,
        caller: Caller | None,
        what: str,
        lock_run: bool = True,
    ) -> TaskState:
        """The task, if this fencing token still holds an unexpired lease and ``caller`` holds
        it (see :mod:`.access`); raise otherwise. A stale token is LeaseLostError whoever
        calls, so an honest worker that lost its lease is told so, not refused.

        The task's row is locked, and first its run's unless ``lock_run`` is false (what
        changes only the task: heartbeats, events, a release).
        """
        if lock_run:
            self._lock_run_of(unit, task_id)
        task = load_task(unit.tx, task_id, lock=True)
        if task is None:
            raise NotFoundError(f"no task '{task_id}'", task_id=task_id)
        run_status = self._run(unit, task.run_id).status
        self._checked_lease(unit.tx, task, run_status, fencing_token, caller, what)
        return task

    def _check_lease(
        self,
        task: TaskState,
        run_status: str,
        fencing_token: int,
        caller: Caller | None,
        what: str,
    ) -> None:
        """Raise unless ``fencing_token`` holds ``task``'s unexpired lease and ``caller`` may
        act on it (see :meth:`_held`)."""
        task_id = task.task_id
        if run_status == "cancelled":
            raise RunCancelledError(
                f"run cancelled: run '{task.run_id}' was cancelled; stop working on '{task_id}'",
                run_id=task.run_id,
                task_id=task_id,
            )
        if (
            task.status != "leased"
            and task.fencing_token == fencing_token
            and run_status in {"failed", "completed"}
        ):
            raise AlreadyCompletedError(
                f"run '{task.run_id}' already {run_status}; stop working on '{task_id}'",
                run_id=task.run_id,
                task_id=task_id,
            )
        expired = task.lease_expires_at is not None and task.lease_expires_at < self.clock.now()
        if task.status != "leased" or task.fencing_token != fencing_token or expired:
            raise LeaseLostError(
                f"lease lost: stale fencing token {fencing_token} for task '{task_id}' "
                f"(the task is {'expired' if expired else task.status}, current token "
                f"{task.fencing_token})",
                task_id=task_id,
            )
        self._authorize(task, caller, what)

    def _lock_run_of(self, unit: Unit, task_id: str) -> None:
        """Lock the run of a task (see :meth:`_run`); NotFoundError names the task."""
        try:
            self._run(unit, run_of(task_id), lock=True)
        except NotFoundError:
            raise NotFoundError(f"no task '{task_id}'", task_id=task_id) from None

    @retrying
    def release_task(
        self,
        task_id: str,
        fencing_token: int,
        *,
        reason: str = "",
        caller: Caller | None = None,
    ) -> None:
        """Give a leased task back unfinished (graceful shutdown): the same attempt is requeued.

        An ``admin`` caller may release any lease; the event records who did."""
        check_json_value({"reason": reason}, what="arguments")
        now = self.clock.now()
        admin = caller is not None and caller.admin
        with self.store.transaction() as unit:
            task = self._held(
                unit,
                task_id,
                fencing_token,
                caller=None if admin else caller,
                what="release",
                lock_run=False,
            )
            by = None
            if admin and caller is not None and refusal(caller, task) is not None:
                by = caller.label
            self._append(
                unit,
                [
                    self._event(
                        "task_released",
                        task.run_id,
                        now,
                        task_id=task_id,
                        worker_id=task.worker_id,
                        fencing_token=fencing_token,
                        reason=reason,
                        by=by,
                    ),
                    self._enqueue_event(self._task_spec(task), task.attempt, now, now, task.resume),
                ],
            )

    @retrying
    def pause_task(
        self,
        task_id: str,
        fencing_token: int,
        *,
        reason: str = "",
        waiting_for: Sequence[Any] = (),
        caller: Caller | None = None,
    ) -> Run:
        """Stop a leased task to wait for input (a LangGraph ``interrupt()``, a question for a
        person): the lease ends, the step waits and the run pauses until ``resume_run``, whose
        value the task's next lease carries (``FleetInboxEntry.resume``)."""
        waiting_for = check_json_value(
            {"reason": reason, "waiting_for": list(waiting_for)}, what="arguments"
        )["waiting_for"]
        now = self.clock.now()
        with self.store.transaction() as unit:
            task = self._held(unit, task_id, fencing_token, caller=caller, what="pause")
            run = self._run(unit, task.run_id)
            events = [
                self._event(
                    "task_paused",
                    task.run_id,
                    now,
                    task_id=task_id,
                    step_id=task.step_id,
                    attempt=task.attempt,
                    worker_id=task.worker_id,
                    fencing_token=fencing_token,
                    reason=reason,
                    waiting_for=list(waiting_for),
                )
            ]
            if run.status == "running":
                events.append(
                    self._event(
                        "run_paused", task.run_id, now, reason="interrupt", step_id=task.step_id
                    )
                )
            self._append(unit, events)
            return self._get_run(unit, task.run_id)


def _matches(task_spec: Mapping[str, Any], worker: FleetWorkerSpec) -> bool:
    """Does the worker offer the tools and labels the task's profile asks for (and does the
    run's security policy leave it those tools)?"""
    profile = task_spec.get("worker") or {}
    denied = (task_spec.get("security") or {}).get("denied_tools") or ()
    for need in profile.get("tools", []):
        if any(fnmatchcase(need, pattern) for pattern in denied):
            return False
        if not any(fnmatchcase(need, have) or fnmatchcase(have, need) for have in worker.tools):
            return False
    labels = profile.get("labels") or {}
    if any(worker.labels.get(k) != v for k, v in labels.items()):
        return False
    if not meets(task_spec.get("workspace"), worker.environment):  # disk, env vars (issue 23)
        return False
    return FleetTrustLevel(profile.get("min_trust", "untrusted")).admits(worker.trust_level)
