"""Scheduling: what a finished, failed or skipped step makes ready next, and a run's end.

The reads are counters kept by the projections (:mod:`fleetforge.fleet.scheduling`), so a
receipt costs the same in a run of any width.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from fleetforge.contracts import FleetTaskFailureKind, FleetTaskSpec, RunSpec
from fleetforge.contracts.spec import HumanStep, MapStep
from fleetforge.fleet._state import TaskState, load_outputs, load_statuses
from fleetforge.fleet.scheduler import backoff_seconds, compile_task, resolve_inputs
from fleetforge.fleet.scheduling import (
    AnyStep,
    MapWork,
    RunPlan,
    dependent_states,
    map_progress,
    outputs_of,
    task_attempt,
    unfinished_steps,
)
from fleetforge.fleet.service.core import Q, ServiceCore
from fleetforge.fleet.store import EventRow, Unit

RUN_ENDS = "run_ends"  # unit.deferred: the runs whose end a batch checks once, after its items

_DID_NOT_COMPLETE = {"failed", "skipped", "cancelled"}  # a step's dependents are skipped


class Steps(ServiceCore):
    """Scheduling: what a finished, failed or skipped step makes ready next, and a run's end."""

    def _advance(
        self, unit: Unit, run_id: str, now: datetime, *, changed: str | None = None
    ) -> None:
        """Make ready (or skip) the steps that can go on, and finish the run when no step is
        left unfinished.

        ``changed``: the one step that just completed, failed or was skipped; only the steps
        that depend on it are looked at, so a receipt costs the same in a run of any width.
        Without it (submit, resume, approve, retry) every pending step is.
        """
        if self._run(unit, run_id).status != "running":
            return
        plan = self._plan(unit, run_id)
        going = (
            self._sweep(unit, run_id, plan, now)
            if changed is None
            else self._follow(unit, run_id, plan, changed, now)
        )
        if not going or self._run(unit, run_id).status != "running":
            return
        batch = unit.deferred.get(RUN_ENDS)
        if batch is not None:  # a batch of receipts checks its runs' ends once (_finish_runs)
            batch.add(run_id)
        elif unfinished_steps(unit.tx, run_id) == 0:
            self._complete_run(unit, run_id, now)

    def _finish_runs(self, unit: Unit, now: datetime) -> None:
        """Finish the runs whose ends a batch deferred (see :meth:`_advance`): one read of
        their unfinished steps for all, instead of one per receipt (a round trip each on
        PostgreSQL). A run an undone item named is read too, harmlessly."""
        run_ids = sorted(unit.deferred.pop(RUN_ENDS, ()))
        if not run_ids:
            return
        params: dict[str, Any] = {}
        runs = self.store.backend.in_list("run_id", run_ids, params)
        left = dict(unit.tx.fetchall(Q["runs_unfinished_steps"].format(runs=runs), params))
        for run_id in run_ids:
            if int(left.get(run_id, 0)) == 0 and self._run(unit, run_id).status == "running":
                self._complete_run(unit, run_id, now)

    def _plan(self, unit: Unit, run_id: str) -> RunPlan:
        """What scheduling needs of the run's spec (see :mod:`.scheduling`), built once."""
        return self._plans.get(run_id, self._spec(unit, run_id))

    def _sweep(self, unit: Unit, run_id: str, plan: RunPlan, now: datetime) -> bool:
        """Every pending step, dependencies first: skipped when one of its dependencies did
        not complete, made ready when all did. False when the run stopped (a breakpoint, a
        failed step)."""
        statuses = {sid: st for sid, (st, _) in load_statuses(unit.tx, run_id).items()}
        for step in plan.order:
            if statuses[step.id] != "pending":
                continue
            deps = [statuses[d] for d in step.depends_on]
            bad = next((d for d, st in zip(step.depends_on, deps, strict=True)
                        if st in _DID_NOT_COMPLETE), None)  # fmt: skip
            if bad is not None:
                self._skip(unit, run_id, step.id, bad, now)
                statuses[step.id] = "skipped"
                continue
            if not all(st == "completed" for st in deps):
                continue
            status = self._ready(unit, run_id, plan, step, now)
            if status is None:
                return False
            statuses[step.id] = status
            if status == "failed":  # an optional step: its dependents were skipped already
                statuses = {sid: st for sid, (st, _) in load_statuses(unit.tx, run_id).items()}
        return True

    def _follow(self, unit: Unit, run_id: str, plan: RunPlan, changed: str, now: datetime) -> bool:
        """The dependents of ``changed`` (and on, while steps finish at once): skipped when it
        did not complete, made ready when it was their last open dependency. False when the
        run stopped."""
        todo: list[tuple[str, str | None]] = [(changed, None)]  # (step, its status if known)
        while todo:
            step_id, status = todo.pop()
            if not plan.dependents[step_id]:
                continue
            status = status or self._step_status(unit, run_id, step_id)
            if status != "completed" and status not in _DID_NOT_COMPLETE:
                continue  # running again (an optional map step's last items)
            for dependent in dependent_states(unit.tx, run_id, step_id):
                if dependent.status != "pending":
                    continue
                if status != "completed":
                    self._skip(unit, run_id, dependent.step_id, step_id, now)
                    todo.append((dependent.step_id, "skipped"))
                elif dependent.deps_open == 0:
                    now_status = self._ready(unit, run_id, plan, plan.steps[dependent.step_id], now)
                    if now_status is None:
                        return False
                    if now_status == "completed":  # a map over no items
                        todo.append((dependent.step_id, now_status))
        return True

    def _skip(self, unit: Unit, run_id: str, step_id: str, because: str, now: datetime) -> None:
        reason = f"dependency {because} did not complete"
        self._append(unit, [self._event("step_skipped", run_id, now, step_id=step_id,
                                        reason=reason)])  # fmt: skip

    def _ready(
        self, unit: Unit, run_id: str, plan: RunPlan, step: AnyStep, now: datetime
    ) -> str | None:
        """Make a step whose dependencies completed ready, or pause the run before it (a
        breakpoint). The step's status then, None when the run no longer runs."""
        if step.id in plan.breakpoints:
            hit = self._event("breakpoint_hit", run_id, now, step_id=step.id)
            paused = self._event("run_paused", run_id, now, reason="breakpoint", step_id=step.id)
            self._append(unit, [hit, paused])
            return None
        status = self._make_ready(unit, run_id, plan.spec, step, None, now)
        return status if self._run(unit, run_id).status == "running" else None

    @staticmethod
    def _step_status(unit: Unit, run_id: str, step_id: str) -> str:
        row = unit.tx.fetchone(Q["step_status"], {"run_id": run_id, "step_id": step_id})
        return "" if row is None else str(row[0])

    def _complete_run(self, unit: Unit, run_id: str, now: datetime) -> None:
        outputs = load_outputs(unit.tx, run_id)
        head = self._chain_head(unit, run_id, "run_completed", now)
        self._append(
            unit, [self._event("run_completed", run_id, now, outputs=outputs, chain_head=head)]
        )

    def _make_ready(
        self,
        unit: Unit,
        run_id: str,
        spec: RunSpec,
        step: Any,
        outputs: Mapping[str, Any] | None,
        now: datetime,
    ) -> str:
        """Record the step ready and enqueue its task (a map step's first items); return the
        step's status then (``ready``, or ``completed`` for a map over no items, or ``failed``
        when its inputs do not resolve). ``outputs``: at least those of the steps it reads;
        when None, only those are read."""
        ready = self._event("step_ready", run_id, now, step_id=step.id)
        if isinstance(step, HumanStep):
            self._append(unit, [ready])
            return "ready"
        plan = self._plan(unit, run_id)
        if outputs is None:
            outputs = outputs_of(unit.tx, run_id, plan.reads[step.id])
        try:
            inputs = resolve_inputs(step.inputs, spec.inputs, outputs)
            work = plan.map_work(step, outputs) if isinstance(step, MapStep) else None
        except LookupError as exc:
            self._append(unit, [ready])
            self._fail_step(
                unit,
                run_id,
                step.id,
                FleetTaskFailureKind.INVALID_OUTPUT,
                f"cannot resolve inputs: {exc}",
                now,
            )
            return "failed"
        if work is None:
            trace = self._trace(unit, run_id)
            task = compile_task(spec, run_id, step, step_id=step.id, inputs=inputs, trace=trace)
            self._append(
                unit, [ready, self._enqueue_event(task, self._next_attempt(unit, task), now, now)]
            )
            return "ready"
        if not work.items:
            self._append(
                unit,
                [ready, self._event("step_completed", run_id, now, step_id=step.id, output=[])],
            )
            return "completed"
        self._append(unit, [ready])
        width = min(step.max_parallel or len(work.items), len(work.items))
        for index in range(width):
            self._enqueue_item(unit, spec, run_id, step, work, index, now)
        return "ready"

    def _enqueue_item(
        self,
        unit: Unit,
        spec: RunSpec,
        run_id: str,
        step: MapStep,
        work: MapWork,
        index: int,
        now: datetime,
    ) -> None:
        inputs = {**work.inputs, "item": work.items[index], "index": index}
        task = compile_task(spec, run_id, step, step_id=step.id, inputs=inputs, map_index=index,
                            trace=self._trace(unit, run_id))  # fmt: skip
        self._append(unit, [self._enqueue_event(task, self._next_attempt(unit, task), now, now)])

    def _next_attempt(self, unit: Unit, task: FleetTaskSpec) -> int:
        """1 for a new task; after a reset (retry_step) the attempts go on counting."""
        previous = task_attempt(unit.tx, task.run_id, task.task_id)
        return 1 if previous is None else previous + 1

    def _enqueue_event(
        self,
        task: FleetTaskSpec,
        attempt: int,
        now: datetime,
        available: datetime,
        resume: Mapping[str, Any] | None = None,
    ) -> EventRow:
        """``resume``: the ``{"value": ...}`` a task that paused for input continues with; it
        stays with the task through expiries, releases and retries until the task ends."""
        return self._event(
            "task_enqueued",
            task.run_id,
            now,
            entry_id=f"{task.task_id}.a{attempt}",
            attempt=attempt,
            available_at=available,
            task=task,
            resume=resume,
        )

    def _fail_step(
        self,
        unit: Unit,
        run_id: str,
        step_id: str,
        kind: FleetTaskFailureKind | str,
        message: str,
        now: datetime,
    ) -> None:
        step = self._plan(unit, run_id).steps[step_id]
        self._append(
            unit,
            [self._event("step_failed", run_id, now, step_id=step_id, kind=kind, message=message)],
        )
        if step.optional:
            self._advance(unit, run_id, now, changed=step_id)
        else:
            self._append(
                unit,
                [
                    self._event(
                        "run_failed",
                        run_id,
                        now,
                        step_id=step_id,
                        kind=kind,
                        reason=f"step '{step_id}' failed: {message}",
                        chain_head=self._chain_head(unit, run_id, "run_failed", now),
                    )
                ],
            )

    def _task_failed(
        self,
        unit: Unit,
        task: TaskState,
        kind: FleetTaskFailureKind,
        message: str,
        now: datetime,
    ) -> bool:
        """Record a failed attempt; retry per the retry policy or fail the step. True = retry."""
        run = self._run(unit, task.run_id)
        spec = self._spec(unit, task.run_id)
        policy = self._task_spec(task).retry  # resolved when the task was compiled
        retry = kind in policy.retry_on and task.attempt < policy.max_attempts
        retry = retry and run.status in {"running", "paused"}
        self._append(
            unit,
            [
                self._event(
                    "task_failed",
                    task.run_id,
                    now,
                    task_id=task.task_id,
                    attempt=task.attempt,
                    worker_id=task.worker_id,
                    kind=kind,
                    message=message,
                    retryable=retry,
                )
            ],
        )
        if retry:
            key = task.step_id if task.map_index is None else f"{task.step_id}.{task.map_index}"
            delay = backoff_seconds(policy, spec.seed, key, task.attempt)
            available = now + timedelta(seconds=delay)
            spec_model = self._task_spec(task)
            self._append(
                unit,
                [
                    self._event(
                        "task_retry_scheduled",
                        task.run_id,
                        now,
                        task_id=task.task_id,
                        step_id=task.step_id,
                        attempt=task.attempt + 1,
                        backoff_s=delay,
                        available_at=available,
                    ),
                    self._enqueue_event(spec_model, task.attempt + 1, now, available, task.resume),
                ],
            )
        elif run.status in {"running", "paused"}:
            self._fail_step(unit, task.run_id, task.step_id, kind, message, now)
        return retry

    def _task_succeeded(self, unit: Unit, task: TaskState, output: Any, now: datetime) -> None:
        # a paused run still records what its leased tasks finish; _advance waits for resume
        if self._run(unit, task.run_id).status not in {"running", "paused"}:
            return
        plan = self._plan(unit, task.run_id)
        step = plan.steps[task.step_id]
        if not isinstance(step, MapStep):
            self._append(
                unit,
                [self._event("step_completed", task.run_id, now, step_id=step.id, output=output)],
            )
            self._advance(unit, task.run_id, now, changed=step.id)
            return
        work = plan.map_work(step) or plan.map_work(
            step, outputs_of(unit.tx, task.run_id, plan.reads[step.id])
        )
        assert work is not None  # its items resolved when the step became ready
        progress = map_progress(unit.tx, task.run_id, step.id)  # this item counted
        if progress.items_done == len(work.items):
            key = {"run_id": task.run_id, "step_id": step.id}
            rows = unit.tx.fetchall(Q["map_outputs"], key)
            gathered = [unit.tx.load_json(r[1]) for r in rows]
            self._append(
                unit,
                [self._event("step_completed", task.run_id, now, step_id=step.id, output=gathered)],
            )
            self._advance(unit, task.run_id, now, changed=step.id)
        elif progress.next_item < len(work.items):  # a slot freed (max_parallel): the next item
            self._enqueue_item(unit, plan.spec, task.run_id, step, work, progress.next_item, now)
