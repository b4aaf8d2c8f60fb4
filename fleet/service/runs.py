"""Runs: submit, read, list, cancel, resume, approve, retry, and the event log."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from fleetforge._jsondomain import check_json_value, check_model
from fleetforge.contracts import (
    FleetRun,
    FleetRunBudget,
    FleetRunStatus,
    Run,
    RunEvent,
    RunSpec,
    TraceContext,
)
from fleetforge.contracts.events import EVENT_TYPES, parse_event
from fleetforge.contracts.spec import HumanStep
from fleetforge.errors import (
    AlreadyCompletedError,
    ConflictError,
    ContractError,
    ErrorDetail,
    NotFoundError,
    UsageError,
)
from fleetforge.fleet._state import (
    load_outputs,
    load_run_head,
    load_statuses,
    load_step_tasks,
    load_steps,
    to_dt,
)
from fleetforge.fleet.scoring import require_scorers
from fleetforge.fleet.service.batches import Batches
from fleetforge.fleet.service.budgets import run_budget
from fleetforge.fleet.service.core import Q, digest, retrying
from fleetforge.fleet.store import EventRow, Unit
from fleetforge.fleet.trust.blocked import blocked_steps
from fleetforge.ids import new_id
from fleetforge.operations.results import RunList
from fleetforge.validation import validate_run_spec


class Runs(Batches):
    """Runs: submit, read, list, cancel, resume, approve, retry, and the event log."""

    @retrying
    def submit_run(
        self,
        spec: Mapping[str, Any] | RunSpec,
        *,
        idempotency_key: str | None = None,
        trace: TraceContext | Mapping[str, Any] | None = None,
    ) -> Run:
        """Validate and submit a run; with an idempotency key, the same key gives the same run.

        ``trace`` (W3C trace context of the submitter) is handed to every task of the run, so
        workers' spans join the submitter's trace."""
        check_json_value({"idempotency_key": idempotency_key}, what="arguments")
        context = (
            trace
            if trace is None or isinstance(trace, TraceContext)
            else (TraceContext.model_validate(trace))
        )
        context = context if context is None else check_model(context, pointer="/trace")
        model = validate_run_spec(spec)
        require_scorers(model)  # the custom scorers its receipts need are known here
        now = self.clock.now()
        with self.store.transaction() as unit:
            if idempotency_key is not None:
                unit.tx.lock(f"idempotency:{idempotency_key}")
                row = unit.tx.fetchone(Q["run_by_idempotency_key"], {"key": idempotency_key})
                if row is not None:
                    run_id = str(row[0])
                    return self._get_run(unit, run_id)
            run_id = new_id("run")
            dumped = model.model_dump(mode="json")
            self._append(
                unit,
                [
                    self._event(
                        "run_submitted",
                        run_id,
                        now,
                        spec=model,
                        spec_digest=digest(dumped),
                        idempotency_key=idempotency_key,
                        trace=context,
                    ),
                    self._event("run_started", run_id, now, by="scheduler"),
                ],
            )
            self._specs[run_id] = model
            self._traces[run_id] = context
            self._advance(unit, run_id, now)
            return self._get_run(unit, run_id)

    def get_run(self, run_id: str) -> Run:
        """The run with every step's state, its outputs and its usage totals."""
        with self.store.backend.read() as tx:
            run = self._get_run(Unit(self.store, tx), run_id)
            if run.status in ("pending", "running"):
                blocked = blocked_steps(tx, run_id, self.clock.now(), self.policy)
                if blocked:
                    run = run.model_copy(update={"blocked": blocked})
            return run

    def list_runs(
        self,
        *,
        status: FleetRunStatus | str | None = None,
        labels: Mapping[str, str] | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> RunList:
        """Runs, newest first, a page at a time; filter by status and by labels (all must match)."""
        if not 1 <= limit <= 1000:
            raise UsageError(f"limit must be between 1 and 1000, got {limit}")
        try:
            wanted = FleetRunStatus(status).value if status else None
        except ValueError:
            choices = ", ".join(s.value for s in FleetRunStatus)
            raise ContractError(
                f"unknown run status {status!r}; use one of {choices}",
                details=[ErrorDetail("/status", f"must be one of {choices}")],
            ) from None
        found: list[FleetRun] = []
        after = cursor
        with self.store.backend.read() as tx:
            while True:
                rows = tx.fetchall(
                    Q["runs_page"], {"status": wanted, "cursor": after, "limit": limit * 2}
                )
                for r in rows:
                    if len(found) == limit:  # a further match may exist: hand out a cursor
                        return RunList(runs=found, next_cursor=found[-1].run_id)
                    after = r[0]
                    run_labels = tx.load_json(r[4])
                    if labels and any(run_labels.get(k) != v for k, v in labels.items()):
                        continue
                    handle = {
                        "run_id": r[0],
                        "name": r[1],
                        "status": r[2],
                        "seed": r[3],
                        "labels": run_labels,
                        "created_at": to_dt(r[5]),
                        "updated_at": to_dt(r[6]),
                    }
                    found.append(FleetRun.model_validate(handle))
                if len(rows) < limit * 2:
                    return RunList(runs=found, next_cursor=None)

    @retrying
    def cancel_run(self, run_id: str, *, reason: str = "", by: str | None = None) -> Run:
        """Cancel a run: queued tasks are withdrawn; workers holding its tasks are told on
        their next heartbeat or receipt (``RunCancelledError``)."""
        check_json_value({"reason": reason, "by": by}, what="arguments")
        now = self.clock.now()
        with self.store.transaction() as unit:
            run = self._run(unit, run_id, lock=True)
            if FleetRunStatus(run.status).is_final:
                raise AlreadyCompletedError(
                    f"run '{run_id}' is already {run.status}", run_id=run_id
                )
            head = self._chain_head(unit, run_id, "run_cancelled", now)
            cancelled = self._event(
                "run_cancelled", run_id, now, by=by, reason=reason, chain_head=head
            )
            self._append(unit, [cancelled])
            return self._get_run(unit, run_id)

    @retrying
    def resume_run(
        self,
        run_id: str,
        *,
        by: str | None = None,
        value: Any = None,
        values: Mapping[str, Any] | None = None,
        budget: FleetRunBudget | Mapping[str, Any] | None = None,
    ) -> Run:
        """Resume a paused run. A step it paused before (breakpoint) becomes ready; a task that
        paused for input (``pause_task``) goes back to the inbox carrying ``value``.

        ``values`` answers waiting tasks one by one: each key is a task id, or a step id for
        every waiting task of that step; the tasks it does not name get ``value``.

        ``budget`` replaces the run's budget (``run_budget_changed``). A run that paused
        because it went over its budget resumes only once it is within it again
        (ConflictError otherwise: raise the budget).
        """
        new_budget = None if budget is None else run_budget(budget)
        now = self.clock.now()
        given = {"value": value, "values": dict(values or {}), "by": by}
        checked = check_json_value(given, what="resume values")
        value, answers = checked["value"], checked["values"]
        with self.store.transaction() as unit:
            run = self._run(unit, run_id, lock=True)
            if run.status != "paused":
                raise ConflictError(f"run '{run_id}' is {run.status}, not paused", run_id=run_id)
            self._resume_budget(unit, run_id, new_budget, by, now)  # issue 23: a raised budget
            answered: set[str] = set()
            self._append(unit, [self._event("run_resumed", run_id, now, by=by)])
            spec = self._spec(unit, run_id)
            statuses = load_statuses(unit.tx, run_id)
            outputs: dict[str, Any] | None = None
            for step in spec.steps:
                if statuses[step.id][0] != "waiting":
                    continue
                paused = [t for t in load_step_tasks(unit.tx, run_id, step.id)
                          if t.status == "paused"]  # fmt: skip
                if paused:  # the step is ready again: its tasks are back in the inbox
                    self._append(unit, [self._event("step_ready", run_id, now, step_id=step.id)])
                for task in paused:
                    key = next((k for k in (task.task_id, task.step_id) if k in answers), None)
                    if key is not None:
                        answered.add(key)
                    resume = {"value": value if key is None else answers[key]}
                    enqueue = self._enqueue_event(
                        self._task_spec(task), task.attempt, now, now, resume
                    )
                    self._append(unit, [enqueue])
                if not paused:
                    if outputs is None:
                        outputs = load_outputs(unit.tx, run_id)
                    self._make_ready(unit, run_id, spec, step, outputs, now)
            unknown = sorted(set(answers) - answered)
            if unknown:  # raised before the unit commits: nothing is written
                raise ContractError(
                    f"run '{run_id}' has no task waiting for input as {', '.join(unknown)}",
                    details=[
                        ErrorDetail(f"/values/{k}", "no waiting task or step has this id")
                        for k in unknown
                    ],
                )
            self._advance(unit, run_id, now)
            return self._get_run(unit, run_id)

    @retrying
    def approve_step(
        self, run_id: str, step_id: str, *, by: str | None = None, comment: str | None = None
    ) -> Run:
        """Approve a human step that is waiting; its output is ``{approved, by, comment}``."""
        check_json_value({"by": by, "comment": comment}, what="arguments")
        now = self.clock.now()
        with self.store.transaction() as unit:
            run = self._run(unit, run_id, lock=True)
            spec = self._spec(unit, run_id)
            try:
                step = spec.step(step_id)
            except KeyError:
                raise NotFoundError(f"run '{run_id}' has no step '{step_id}'") from None
            state_status = load_statuses(unit.tx, run_id)[step_id][0]
            if not isinstance(step, HumanStep):
                raise ConflictError(f"step '{step_id}' is a {step.type} step, not a human step")
            if state_status != "ready" or run.status != "running":
                raise ConflictError(
                    f"step '{step_id}' is {state_status} in a {run.status} run: nothing to approve"
                )
            output = {"approved": True, "by": by, "comment": comment}
            self._append(
                unit,
                [
                    self._event(
                        "step_approved", run_id, now, step_id=step_id, by=by, comment=comment
                    ),
                    self._event("step_completed", run_id, now, step_id=step_id, output=output),
                ],
            )
            self._advance(unit, run_id, now)
            return self._get_run(unit, run_id)

    @retrying
    def retry_step(self, run_id: str, step_id: str, *, by: str | None = None) -> Run:
        """Run a failed (or skipped) step again, and the steps after it that did not complete.

        A failed run is reopened. The step gets one more attempt than it had.
        """
        check_json_value({"by": by}, what="arguments")
        now = self.clock.now()
        with self.store.transaction() as unit:
            run = self._run(unit, run_id, lock=True)
            spec = self._spec(unit, run_id)
            steps = load_steps(unit.tx, run_id)
            if step_id not in steps:
                raise NotFoundError(f"run '{run_id}' has no step '{step_id}'")
            if steps[step_id].status not in {"failed", "skipped"}:
                raise ConflictError(
                    f"step '{step_id}' is {steps[step_id].status}: only failed or skipped "
                    "steps can be retried"
                )
            if run.status in {"cancelled", "completed"}:
                raise ConflictError(f"run '{run_id}' is {run.status}: nothing to retry")
            again = _downstream(spec, step_id)
            events = [
                self._event("step_reset", run_id, now, step_id=sid, reason=f"retry of {step_id}")
                for sid in again
                if steps[sid].status in {"failed", "skipped"}
            ]
            if run.status == "failed":
                events.append(self._event("run_resumed", run_id, now, by=by,
                                          reason=f"retry of {step_id}"))  # fmt: skip
            self._append(unit, events)
            self._advance(unit, run_id, now)
            return self._get_run(unit, run_id)

    def run_events(
        self,
        run_id: str | None,
        *,
        after: int = 0,
        limit: int = 100,
        types: Sequence[str] | None = None,
        wait_seconds: float = 0.0,
    ) -> list[RunEvent]:
        """A run's events (every run's when ``run_id`` is None) after the cursor ``after``;
        when there is none yet, wait up to ``wait_seconds`` for the next (long poll).
        NotFoundError for a run that does not exist."""
        rows = self.event_rows(
            run_id, after=after, limit=limit, types=types, wait_seconds=wait_seconds
        )
        return [parse_event(row.to_json()) for row in rows]

    def event_rows(
        self,
        run_id: str | None,
        *,
        after: int = 0,
        limit: int = 100,
        types: Sequence[str] | None = None,
        wait_seconds: float = 0.0,
    ) -> list[EventRow]:
        """Like :meth:`run_events`, the events as stored (not rebuilt as models: what readers
        that must show any stored record, such as ``fleetforge events``, take)."""
        unknown = [t for t in types or () if t not in EVENT_TYPES]
        if unknown:
            raise ContractError(
                f"unknown event type {unknown[0]!r}",
                details=[ErrorDetail("/types", f"{t!r} is not an event type") for t in unknown],
            )
        deadline = time.monotonic() + wait_seconds
        pause = 0.005
        while True:
            found = self.store.query_rows(run_id=run_id, types=types, after=after, limit=limit)
            if found:
                return found
            if run_id is not None:
                with self.store.backend.read() as tx:
                    if load_run_head(tx, run_id) is None:
                        raise NotFoundError(f"no run '{run_id}'", run_id=run_id)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return found
            self.store.backend.wait_for_events(min(remaining, pause))
            pause = min(pause * 2, 0.5)


def _downstream(spec: RunSpec, step_id: str) -> list[str]:
    """The step and every step that depends on it, directly or not, in spec order."""
    found = {step_id}
    for _ in spec.steps:  # a DAG in any order: repeat until nothing new joins
        for later in spec.steps:
            if later.id not in found and found.intersection(later.depends_on):
                found.add(later.id)
    return [s.id for s in spec.steps if s.id in found]
