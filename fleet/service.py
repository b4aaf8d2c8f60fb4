"""FleetService: the one API every surface calls (CLI, MCP server, SDK client).

Each operation is one transaction of the event store: it reads projection state, decides, and
appends the events that record the decision (the projections follow in the same transaction).
Nothing is half-written: an operation that raises has written nothing.

:class:`SyncFleetService` holds the behaviour; :class:`FleetService` is its async face (each call
runs in a worker thread, so an event loop never blocks on the database).
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from itertools import islice
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from pydantic import BaseModel, ValidationError

from fleetforge._jsondomain import check_document, check_json_value, check_model
from fleetforge.contracts import (
    Artifact,
    FleetArtifactRef,
    FleetInboxEntry,
    FleetInboxStatus,
    FleetLease,
    FleetReceipt,
    FleetReceiptStatus,
    FleetResume,
    FleetRun,
    FleetRunStatus,
    FleetScore,
    FleetTaskFailureKind,
    FleetTaskSpec,
    FleetTrustLevel,
    FleetUsage,
    FleetWorkerSpec,
    InputRequest,
    Run,
    RunEvent,
    RunSpec,
    StepRecord,
    TraceContext,
)
from fleetforge.contracts.envelope import (
    AgentRunEnvelope,
    CheckpointEnvelope,
    EmitEnvelope,
    parse_envelope,
)
from fleetforge.contracts.events import EVENT_TYPES, parse_event
from fleetforge.contracts.protocol import TaskFailure, TaskSuccess
from fleetforge.contracts.spec import HumanStep, MapStep
from fleetforge.errors import (
    AlreadyCompletedError,
    ConflictError,
    ContractError,
    ErrorDetail,
    FleetForgeError,
    ForbiddenError,
    LeaseLostError,
    NotFoundError,
    RunCancelledError,
    StoreError,
    UsageError,
)
from fleetforge.fleet._events import data_model, engine_row
from fleetforge.fleet._sql import named_queries
from fleetforge.fleet._state import (
    RunHead,
    TaskState,
    at,
    load_outputs,
    load_run,
    load_run_head,
    load_statuses,
    load_step_tasks,
    load_steps,
    load_task,
    load_task_and_run,
    load_task_for_receipt,
    task_from_row,
    to_dt,
)
from fleetforge.fleet.access import Caller, DenialLimiter, Refusal, refusal
from fleetforge.fleet.artifacts import ArtifactStore, record_artifact
from fleetforge.fleet.clock import Clock, clock_for
from fleetforge.fleet.scheduler import (
    backoff_seconds,
    compile_task,
    resolve_inputs,
    resolve_value,
)
from fleetforge.fleet.scoring import ScorerError, require_scorers, score
from fleetforge.fleet.store import EventRow, EventStore, Tx, Unit
from fleetforge.fleet.store._base import hashed_json, iso
from fleetforge.ids import new_id
from fleetforge.operations._base import Args, Call, Operation
from fleetforge.operations.results import (
    CompletedTasks,
    HeartbeatResults,
    ItemFailure,
    PostedEvent,
    PostedEvents,
    RunList,
    WorkerRecord,
)
from fleetforge.redaction import get_logger
from fleetforge.validation import pydantic_details, validate_run_spec

__all__ = ["FleetService", "SyncFleetService"]

log = get_logger("fleetforge.fleet")
Q = named_queries("service.sql")
_FINAL_STEP = {"completed", "failed", "skipped", "cancelled"}
_TOOL_EVENTS = {"tool_called", "tool_refused"}
_EXPIRY_SCAN_EVERY = timedelta(milliseconds=100)
_TRANSIENT_ATTEMPTS = 5
_WORKER_CACHE_S = 1.0
_UNREAD = object()

P = ParamSpec("P")
R = TypeVar("R")
A = TypeVar("A", bound=Args)
M = TypeVar("M", bound=BaseModel)
DEFAULT_MAX_ARTIFACT_BYTES = 8 * 1024 * 1024


def _retrying(method: Callable[P, R]) -> Callable[P, R]:
    """Run a write again when the store rolled it back for a transient reason (PostgreSQL
    breaking a deadlock between two writers); each run is one whole transaction.

    A caller refused inside the transaction (:class:`~fleetforge.fleet.access.Refusal`) gets
    ForbiddenError once the transaction is rolled back, and the refusal is recorded."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, _TRANSIENT_ATTEMPTS + 1):
            try:
                return method(*args, **kwargs)
            except Refusal as refused:
                service = args[0]
                assert isinstance(service, SyncFleetService)
                service._record_refusal(refused)
                raise ForbiddenError(
                    f"forbidden: {refused.reason}",
                    task_id=refused.task_id,
                    operation=refused.what,
                ) from None
            except StoreError as exc:
                if not exc.context.get("transient") or attempt == _TRANSIENT_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")

    return wrapper


def _digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(hashed_json(value).encode()).hexdigest()


class SyncFleetService:
    """The fleet's behaviour, synchronous. See :class:`FleetService` for the async face."""

    def __init__(
        self,
        store: EventStore,
        *,
        artifacts: ArtifactStore | None = None,
        clock: Clock | None = None,
        max_lease_expiries: int = 3,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.clock = clock or clock_for(store)
        self.max_lease_expiries = max_lease_expiries
        self._specs: dict[str, RunSpec] = {}
        self._traces: dict[str, TraceContext | None] = {}
        self._parsed_tasks: dict[str, FleetTaskSpec] = {}
        self._expiry_checked: datetime | None = None
        self._denials = DenialLimiter()
        self._workers: dict[str, tuple[float, FleetWorkerSpec]] = {}

    # ── helpers ──────────────────────────────────────────────────────────────────────────────

    def _event(self, type_: str, run_id: str | None, at: datetime, **data: Any) -> EventRow:
        """An event of the engine, in its stored form (see :mod:`fleetforge.fleet._events`)."""
        return engine_row(type_, run_id, at, data)

    def _spec(self, unit: Unit, run_id: str) -> RunSpec:
        """The run's spec (immutable once submitted, so parsed once per service)."""
        spec = self._specs.get(run_id)
        if spec is None:
            row = unit.tx.fetchone(Q["run_spec"], {"run_id": run_id})
            if row is None:
                raise NotFoundError(f"no run '{run_id}'", run_id=run_id)
            spec = self._specs[run_id] = RunSpec.model_validate(unit.tx.load_json(row[0]))
            trace = unit.tx.load_json(row[1]) if row[1] is not None else None
            self._traces[run_id] = TraceContext.model_validate(trace) if trace else None
        return spec

    def _trace(self, unit: Unit, run_id: str) -> TraceContext | None:
        """The submitter's trace context, which the run's tasks carry."""
        if run_id not in self._traces:
            self._specs.pop(run_id, None)
            self._spec(unit, run_id)
        return self._traces[run_id]

    def _task_spec(self, task: TaskState) -> FleetTaskSpec:
        """The task's spec as a model; an inbox entry's spec never changes, so it is parsed
        once per entry (a bounded cache)."""
        spec = self._parsed_tasks.get(task.entry_id)
        if spec is None:
            if len(self._parsed_tasks) >= 4096:
                self._parsed_tasks.clear()
            spec = self._parsed_tasks[task.entry_id] = FleetTaskSpec.model_validate(task.spec)
        return spec

    def _run(self, unit: Unit, run_id: str, *, lock: bool = False) -> RunHead:
        """The run's status, read once per unit until a run_* event changes it.

        ``lock`` holds the run's row to the end of the unit: what changes a run's steps, its
        receipt chain or its status takes it first (then task rows), so such writers of one
        run take turns (on PostgreSQL; SQLite's writers always do).
        """
        key = ("run", run_id)
        run: RunHead | None = unit.memo.get(key)
        if lock and ("locked", run_id) not in unit.memo:
            run = load_run_head(unit.tx, run_id, lock=True)
            unit.memo[("locked", run_id)] = True
        elif run is None:
            run = load_run_head(unit.tx, run_id)
        if run is None:
            raise NotFoundError(f"no run '{run_id}'", run_id=run_id)
        unit.memo[key] = run
        return run

    def _append(self, unit: Unit, events: Sequence[EventRow]) -> None:
        for event in events:
            if event.type.startswith("run_"):
                unit.memo.pop(("run", event.run_id), None)
        unit.append_rows(events)

    # ── who may act ──────────────────────────────────────────────────────────────────────────

    @staticmethod
    def _authorize(task: TaskState, caller: Caller | None, what: str) -> None:
        """Refuse ``caller`` unless it holds ``task``'s lease (see :mod:`.access`)."""
        if caller is None:
            return
        reason = refusal(caller, task)
        if reason is not None:
            raise Refusal(caller, what, reason, task_id=task.task_id, run_id=task.run_id)

    def _record_refusal(self, refused: Refusal) -> None:
        """An ``access_denied`` event and a log line, at most once a minute per (caller,
        operation, task); never raises (the caller gets its ForbiddenError regardless)."""
        who = refused.caller.label
        repeats = self._denials.admit((who, refused.what, refused.task_id))
        if repeats is None:
            return
        log.warning(
            "access denied: %s %s %s: %s%s",
            who,
            refused.what,
            refused.task_id or "-",
            refused.reason,
            f" ({repeats} more since the last report)" if repeats else "",
        )
        event = self._event(
            "access_denied",
            refused.run_id,
            self.clock.now(),
            who=who,
            what=refused.what,
            task_id=refused.task_id,
            reason=refused.reason,
            repeats=repeats,
        )
        try:
            with self.store.transaction() as unit:
                self._append(unit, [event])
        except FleetForgeError as exc:
            log.error("access denied by %s not recorded: %s", who, exc)

    # ── runs ─────────────────────────────────────────────────────────────────────────────────

    @_retrying
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
                        spec_digest=_digest(dumped),
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
            return self._get_run(Unit(self.store, tx), run_id)

    def _get_run(self, unit: Unit, run_id: str) -> Run:
        run = load_run(unit.tx, run_id)
        if run is None:
            raise NotFoundError(f"no run '{run_id}'", run_id=run_id)
        steps = load_steps(unit.tx, run_id)
        return Run(
            run_id=run.run_id,
            name=run.name,
            status=FleetRunStatus(run.status),
            seed=run.seed,
            labels=run.labels,
            created_at=run.created_at,
            updated_at=run.updated_at,
            spec=self._spec(unit, run_id),
            steps=[StepRecord.model_validate(vars(s)) for s in steps.values()],
            outputs={sid: s.output for sid, s in steps.items() if s.status == "completed"},
            error=run.error,
            usage=FleetUsage.model_validate(run.usage),
            idempotency_key=run.idempotency_key,
            started_at=run.started_at,
            finished_at=run.finished_at,
            waiting_for_input=self._waiting(unit, run_id) if run.status == "paused" else [],
        )

    @staticmethod
    def _waiting(unit: Unit, run_id: str) -> list[InputRequest]:
        rows = unit.tx.fetchall(Q["tasks_waiting"], {"run_id": run_id})
        return [
            InputRequest(task_id=r[0], step_id=r[1], **unit.tx.load_json(r[2]))
            for r in rows
            if r[2] is not None
        ]

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

    @_retrying
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
            self._append(unit, [self._event("run_cancelled", run_id, now, by=by, reason=reason)])
            return self._get_run(unit, run_id)

    @_retrying
    def resume_run(
        self,
        run_id: str,
        *,
        by: str | None = None,
        value: Any = None,
        values: Mapping[str, Any] | None = None,
    ) -> Run:
        """Resume a paused run. A step it paused before (breakpoint) becomes ready; a task that
        paused for input (``pause_task``) goes back to the inbox carrying ``value``.

        ``values`` answers waiting tasks one by one: each key is a task id, or a step id for
        every waiting task of that step; the tasks it does not name get ``value``.
        """
        now = self.clock.now()
        given = {"value": value, "values": dict(values or {}), "by": by}
        checked = check_json_value(given, what="resume values")
        value, answers = checked["value"], checked["values"]
        with self.store.transaction() as unit:
            run = self._run(unit, run_id, lock=True)
            if run.status != "paused":
                raise ConflictError(f"run '{run_id}' is {run.status}, not paused", run_id=run_id)
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

    @_retrying
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

    @_retrying
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

    # ── scheduling ───────────────────────────────────────────────────────────────────────────

    def _advance(
        self, unit: Unit, run_id: str, now: datetime, *, completed: str | None = None
    ) -> None:
        """Make every step whose dependencies completed ready; finish the run when all are.

        ``completed``: the one step that changed; when no step depends on it, only the run's
        end is left to check (most steps of a wide run are such leaves).
        """
        if completed is not None and self._run(unit, run_id).status == "running":
            spec = self._spec(unit, run_id)
            if not any(completed in step.depends_on for step in spec.steps):
                row = unit.tx.fetchone(Q["unfinished_steps"], {"run_id": run_id})
                if row is not None and int(row[0]) == 0:
                    self._complete_run(unit, run_id, now)
                return
        while True:
            if self._run(unit, run_id).status != "running":
                return
            spec = self._spec(unit, run_id)
            statuses = {sid: st for sid, (st, _) in load_statuses(unit.tx, run_id).items()}
            outputs: dict[str, Any] | None = None  # read only when a step becomes ready
            progressed = False
            for step in spec.steps:
                if statuses[step.id] != "pending":
                    continue
                deps = [statuses[d] for d in step.depends_on]
                if any(s in {"failed", "skipped", "cancelled"} for s in deps):
                    bad = next(d for d in step.depends_on if statuses[d] != "completed")
                    reason = f"dependency {bad} did not complete"
                    skipped = self._event(
                        "step_skipped", run_id, now, step_id=step.id, reason=reason
                    )
                    self._append(unit, [skipped])
                    progressed = True
                    continue
                if not all(s == "completed" for s in deps):
                    continue
                if step.id in spec.breakpoints:
                    hit = self._event("breakpoint_hit", run_id, now, step_id=step.id)
                    paused = self._event(
                        "run_paused", run_id, now, reason="breakpoint", step_id=step.id
                    )
                    self._append(unit, [hit, paused])
                    return
                if outputs is None:
                    outputs = load_outputs(unit.tx, run_id)
                self._make_ready(unit, run_id, spec, step, outputs, now)
                progressed = True
            if not progressed:  # nothing was appended: `statuses` is still current
                break
        if all(st in _FINAL_STEP for st in statuses.values()):
            self._complete_run(unit, run_id, now)

    def _complete_run(self, unit: Unit, run_id: str, now: datetime) -> None:
        outputs = load_outputs(unit.tx, run_id)
        self._append(unit, [self._event("run_completed", run_id, now, outputs=outputs)])

    def _make_ready(
        self,
        unit: Unit,
        run_id: str,
        spec: RunSpec,
        step: Any,
        outputs: Mapping[str, Any],
        now: datetime,
    ) -> None:
        ready = self._event("step_ready", run_id, now, step_id=step.id)
        if isinstance(step, HumanStep):
            self._append(unit, [ready])
            return
        try:
            inputs = resolve_inputs(step.inputs, spec.inputs, outputs)
            items = None
            if isinstance(step, MapStep):
                items = resolve_value(step.over, spec.inputs, outputs)
                if not isinstance(items, list):
                    raise LookupError(f"'over' must name a list, got {type(items).__name__}")
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
            return
        if items is None:
            trace = self._trace(unit, run_id)
            task = compile_task(spec, run_id, step, step_id=step.id, inputs=inputs, trace=trace)
            self._append(
                unit, [ready, self._enqueue_event(task, self._next_attempt(unit, task), now, now)]
            )
            return
        if not items:
            self._append(
                unit,
                [ready, self._event("step_completed", run_id, now, step_id=step.id, output=[])],
            )
            return
        self._append(unit, [ready])
        width = step.max_parallel or len(items)
        for index in range(min(width, len(items))):
            self._enqueue_item(unit, spec, run_id, step, items, index, outputs, now)

    def _enqueue_item(
        self,
        unit: Unit,
        spec: RunSpec,
        run_id: str,
        step: MapStep,
        items: list[Any],
        index: int,
        outputs: Mapping[str, Any],
        now: datetime,
    ) -> None:
        inputs = {
            **resolve_inputs(step.inputs, spec.inputs, outputs),
            **resolve_inputs(step.step.inputs, spec.inputs, outputs),
            "item": items[index],
            "index": index,
        }
        task = compile_task(spec, run_id, step, step_id=step.id, inputs=inputs, map_index=index,
                            trace=self._trace(unit, run_id))  # fmt: skip
        self._append(unit, [self._enqueue_event(task, self._next_attempt(unit, task), now, now)])

    def _next_attempt(self, unit: Unit, task: FleetTaskSpec) -> int:
        """1 for a new task; after a reset (retry_step) the attempts go on counting."""
        previous = load_task(unit.tx, task.task_id)
        return 1 if previous is None else previous.attempt + 1

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
        step = self._spec(unit, run_id).step(step_id)
        self._append(
            unit,
            [self._event("step_failed", run_id, now, step_id=step_id, kind=kind, message=message)],
        )
        if step.optional:
            self._advance(unit, run_id, now)
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
        spec = self._spec(unit, task.run_id)
        step = spec.step(task.step_id)
        if not isinstance(step, MapStep):
            self._append(
                unit,
                [self._event("step_completed", task.run_id, now, step_id=step.id, output=output)],
            )
            self._advance(unit, task.run_id, now, completed=step.id)
            return
        key = {"run_id": task.run_id, "step_id": step.id}
        row = unit.tx.fetchone(Q["map_progress"], key)
        completed = int(row[0] or 0) if row else 0
        enqueued = int(row[1]) if row else 0
        highest = row[2] if row else None
        outputs = load_outputs(unit.tx, task.run_id)
        items = resolve_value(step.over, spec.inputs, outputs)
        if completed == len(items):
            rows = unit.tx.fetchall(Q["map_outputs"], key)
            gathered = [unit.tx.load_json(r[1]) for r in rows]
            self._append(
                unit,
                [self._event("step_completed", task.run_id, now, step_id=step.id, output=gathered)],
            )
            self._advance(unit, task.run_id, now, completed=step.id)
            return
        following = 0 if highest is None else int(highest) + 1
        if enqueued < len(items) and following < len(items):
            self._enqueue_item(unit, spec, task.run_id, step, items, following, outputs, now)

    # ── workers and leases ───────────────────────────────────────────────────────────────────

    @_retrying
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

    @_retrying
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

    @_retrying
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
        if len(self._workers) >= 4096:
            self._workers.clear()
        self._workers[worker_id] = (time.monotonic(), spec)
        return spec

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

    @_retrying
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
        rows = unit.tx.fetchall(
            unit.tx.for_update(Q["lease_candidates"], skip_locked=True),
            {
                "now": _ts(now),
                "role": worker.role,
                "rank": worker.trust_level.rank,
                "limit": max_tasks * 8,
            },
        )
        # decode candidates lazily: most match, so usually only max_tasks rows are read
        matching = (t for t in (task_from_row(unit.tx, r) for r in rows)
                    if _matches(t.spec, worker))  # fmt: skip
        chosen = list(islice(matching, max_tasks))
        expires = now + timedelta(seconds=lease_seconds)
        credential = None if caller is None else caller.credential
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
            )
            for task in sorted(chosen, key=lambda t: (t.run_id, t.step_id, t.task_id))
        ]
        self._append(unit, events)
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
                ),
                resume=None if task.resume is None else FleetResume(**task.resume),
            )
            for task in chosen
        ]

    @_retrying
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
        with self.store.backend.read() as tx:
            due = [
                r[0] for r in tx.fetchall(Q["expired_leases"], {"now": _ts(now), "limit": limit})
            ]
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
        self._check_lease(task, self._run(unit, task.run_id).status, fencing_token, caller, what)
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
            self._run(unit, _run_of(task_id), lock=True)
        except NotFoundError:
            raise NotFoundError(f"no task '{task_id}'", task_id=task_id) from None

    @_retrying
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
        if lease is not None:
            return lease
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
        return FleetLease.model_validate(
            {
                "worker_id": task.worker_id,
                "fencing_token": fencing_token,
                "leased_at": task.leased_at,
                "expires_at": expires,
            }
        )

    @_retrying
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

    @_retrying
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

    # ── artifacts ────────────────────────────────────────────────────────────────────────────

    @_retrying
    def put_artifact(
        self, content: bytes, *, caller: Caller | None = None, **metadata: Any
    ) -> Artifact:
        """Store bytes in the content-addressed store and record their metadata.

        An artifact of a task needs ``caller`` to hold that task's lease; one of a run needs a
        lease in the run, or the ``submit`` scope."""
        metadata = check_json_value(metadata, what="artifact metadata", lenient=True)
        if caller is not None:
            self._check_artifact_owner(caller, metadata.get("run_id"), metadata.get("task_id"))
        artifact = self._artifact_store().put(content, **metadata)
        record_artifact(self.store, artifact)
        return artifact

    def _check_artifact_owner(self, caller: Caller, run_id: Any, task_id: Any) -> None:
        if task_id is None and (run_id is None or caller.allows("submit")):
            return
        with self.store.backend.read() as tx:
            if task_id is not None:
                task = load_task(tx, str(task_id))
                if task is None:
                    raise NotFoundError(f"no task '{task_id}'", task_id=task_id)
                if run_id is not None and run_id != task.run_id:
                    raise ContractError(
                        f"task '{task_id}' belongs to run '{task.run_id}', not '{run_id}'",
                        details=[ErrorDetail("/run_id", f"must be {task.run_id!r}")],
                    )
                candidates = [task] if task.status == "leased" else []
                run_id = task.run_id
            else:
                rows = tx.fetchall(Q["run_leases"], {"run_id": run_id})
                candidates = [task_from_row(tx, r) for r in rows]
        if not any(refusal(caller, t) is None for t in candidates):
            where = f"task '{task_id}'" if task_id is not None else f"run '{run_id}'"
            reason = f"{caller.label} holds no lease in {where}"
            raise Refusal(caller, "put_artifact", reason, task_id=task_id, run_id=str(run_id))

    def get_artifact(self, digest: str) -> tuple[Artifact, bytes]:
        """An artifact's recorded metadata and its bytes (verified against the digest)."""
        columns = ("digest", "size_bytes", "media_type", "kind", "name", "path", "created_at",
                   "run_id", "step_id", "task_id", "labels")  # fmt: skip
        with self.store.backend.read() as tx:
            row = tx.fetchone(Q["artifact"], {"digest": digest})
            if row is None:
                raise NotFoundError(f"no artifact {digest} is recorded", digest=digest)
            values = dict(zip(columns, row, strict=True))
            values["labels"] = tx.load_json(values["labels"])
        return Artifact.model_validate(values), self._artifact_store().get(digest)

    def _artifact_store(self) -> ArtifactStore:
        if self.artifacts is None:
            raise UsageError("this FleetService has no artifact store (pass artifacts=...)")
        return self.artifacts

    # ── work results ─────────────────────────────────────────────────────────────────────────

    @_retrying
    def post_event(
        self,
        task_id: str,
        fencing_token: int,
        envelope: AgentRunEnvelope | Mapping[str, Any],
        *,
        caller: Caller | None = None,
    ) -> EventRow:
        """Record an adapter envelope for a leased task (checkpoints also as checkpoint_saved)."""
        envelope = self._envelope(envelope)
        self.expire_leases()
        with self.store.transaction() as unit:
            task = self._held(
                unit, task_id, fencing_token, caller=caller, what="post_event", lock_run=False
            )
            return self._post_event_in(unit, task, envelope, self.clock.now())

    def _post_event_in(
        self, unit: Unit, task: TaskState, envelope: AgentRunEnvelope, now: datetime
    ) -> EventRow:
        """Record ``envelope`` for ``task`` (held) inside ``unit``; return its task_event."""
        mismatched = [
            ErrorDetail(f"/{field}", f"is {getattr(envelope, field)!r}, the task's is {want!r}")
            for field, want in (
                ("run_id", task.run_id),
                ("step_id", task.step_id),
                ("task_id", task.task_id),
            )
            if getattr(envelope, field) != want
        ]
        if mismatched:
            raise ContractError("the envelope is for another task", details=mismatched)
        task_id = task.task_id
        events = [self._event("task_event", task.run_id, now, task_id=task_id, envelope=envelope)]
        if isinstance(envelope, EmitEnvelope) and envelope.payload.get("type") in _TOOL_EVENTS:
            # the armory reports tool calls as custom emits; they are fleet facts too, and
            # worker-made: validated here (engine events are not, see fleet._events)
            kind = envelope.payload["type"]
            fields = {k: v for k, v in envelope.payload.items() if k != "type"}
            fields |= {"task_id": task_id, "worker_id": task.worker_id}
            try:
                report = data_model(kind).model_validate(fields)
            except ValidationError as exc:
                raise ContractError(
                    f"invalid {kind} report", details=pydantic_details(exc, prefix="/payload")
                ) from None
            values = {name: getattr(report, name) for name in type(report).model_fields}
            events.append(self._event(kind, task.run_id, now, **values))
        if isinstance(envelope, CheckpointEnvelope):
            events.append(
                self._event(
                    "checkpoint_saved",
                    task.run_id,
                    now,
                    task_id=task_id,
                    checkpoint_id=envelope.checkpoint_id,
                    state_digest=envelope.state_digest,
                    artifact=envelope.artifact,
                )
            )
        self._append(unit, events)
        return events[0]  # its seq is set when the unit commits

    @_retrying
    def fail_task(
        self,
        task_id: str,
        fencing_token: int,
        kind: FleetTaskFailureKind | str,
        message: str,
        *,
        caller: Caller | None = None,
    ) -> bool:
        """Report that an attempt failed. Returns True when another attempt will follow."""
        check_json_value({"message": message}, what="arguments")
        failure = FleetTaskFailureKind(kind)
        self.expire_leases()
        now = self.clock.now()
        with self.store.transaction() as unit:
            task = self._held(unit, task_id, fencing_token, caller=caller, what="fail")
            return self._task_failed(unit, task, failure, message, now)

    @_retrying
    def post_receipt(
        self, receipt: FleetReceipt | Mapping[str, Any], *, caller: Caller | None = None
    ) -> FleetReceipt:
        """Post a worker's receipt; the fleet scores it, chains it and schedules what follows.

        Posting the same receipt again returns the first verdict and changes nothing. Receipt
        ids are unique within their task: another task's receipts never collide with them.
        """
        receipt = check_document(receipt, what="receipt")
        if not isinstance(receipt, FleetReceipt):
            from fleetforge import schemas

            schemas.validate("fleet_receipt", dict(receipt))
            receipt = FleetReceipt.model_validate(dict(receipt))
        self.expire_leases()
        with self.store.transaction() as unit:
            target = self._receipt_target(
                unit, receipt.task_id, receipt.receipt_id, receipt.fencing_token, caller
            )
            if not isinstance(target, TaskState):
                return _same_receipt(unit, target, receipt)
            return self._post_receipt(unit, receipt, target)

    def _receipt_target(
        self, unit: Unit, task_id: str, receipt_id: str, fencing_token: int, caller: Caller | None
    ) -> TaskState | tuple[Any, ...]:
        """The task a receipt is for, held by ``fencing_token`` and ``caller`` — or, when
        ``receipt_id`` was posted already, that stored receipt (a repeat has one effect). The
        run's row is locked first, so a repeat waits for the first verdict; the task is read
        (and locked) with whether the receipt is known, in one statement."""
        self._lock_run_of(unit, task_id)
        prefetched = unit.memo.pop(("receipt_target", task_id), None)
        task: TaskState | None
        if prefetched is not None:  # read for the whole batch (see _prefetch_receipts)
            task, receipts = prefetched
            known = receipt_id in receipts
        else:
            task, known = load_task_for_receipt(unit.tx, task_id, receipt_id)
        if task is None:
            raise NotFoundError(f"no task '{task_id}'", task_id=task_id)
        if known:
            stored = self._known_receipt(unit, task_id, receipt_id, caller)
            assert stored is not None
            return stored
        self._check_lease(task, self._run(unit, task.run_id).status, fencing_token, caller,
                          "post_receipt")  # fmt: skip
        return task

    def _known_receipt(
        self, unit: Unit, task_id: str, receipt_id: str, caller: Caller | None
    ) -> tuple[Any, ...] | None:
        """The stored receipt ``receipt_id`` of ``task_id``, if posted; a caller that is not
        the worker which posted it (or holds the task's lease) is refused."""
        key = {"run_id": _run_of(task_id), "task_id": task_id, "receipt_id": receipt_id}
        known = unit.tx.fetchone(Q["receipt"], key)
        if known is None or caller is None:
            return known
        task = load_task(unit.tx, task_id)
        posted_by = unit.tx.load_json(known[1]).get("worker_id")
        if task is not None and (
            caller.worker_id not in (None, posted_by) or refusal(caller, task) is not None
        ):
            reason = f"{caller.label} did not post receipt '{receipt_id}' of '{task_id}'"
            raise Refusal(caller, "post_receipt", reason, task_id=task_id, run_id=task.run_id)
        return known

    def _post_receipt(self, unit: Unit, receipt: FleetReceipt, task: TaskState) -> FleetReceipt:
        """Score, chain and record a receipt for ``task`` (held by it), inside ``unit``."""
        now = self.clock.now()
        _check_receipt(receipt, task)
        chain = unit.memo.get(("last_hash", task.run_id), _UNREAD)
        if chain is _UNREAD:  # the run is locked: its chain's head stays ours to the end
            row = unit.tx.fetchone(Q["last_receipt_hash"], {"run_id": task.run_id})
            chain = row[0] if row else None
        prev = chain
        body = receipt.model_dump(mode="json", exclude={"status", "score", "hash", "posted_at"})
        body["prev_hash"] = prev
        posted = receipt.model_copy(
            update={"prev_hash": prev, "hash": _digest(body), "posted_at": now}
        )
        verdict, failure, extra = self._judge(posted, task, now)
        accepted = verdict.passed and failure is None
        status = FleetReceiptStatus.ACCEPTED if accepted else FleetReceiptStatus.REJECTED
        judged = posted.model_copy(update={"status": status, "score": verdict})
        unit.memo[("last_hash", task.run_id)] = posted.hash
        self._append(unit, [*extra, self._event("receipt_recorded", task.run_id, now,
                                                receipt=judged)])  # fmt: skip
        if accepted:
            self._task_succeeded(unit, task, getattr(posted.result, "output", None), now)
        else:
            kind, message = failure or (FleetTaskFailureKind.INVALID_OUTPUT, verdict.reason)
            self._task_failed(unit, task, kind, message, now)
        return judged

    @_retrying
    def complete_task(
        self,
        task_id: str,
        fencing_token: int,
        output: Any,
        *,
        usage: FleetUsage | Mapping[str, Any] | None = None,
        artifacts: Sequence[FleetArtifactRef | Mapping[str, Any]] = (),
        receipt_id: str | None = None,
        caller: Caller | None = None,
    ) -> FleetReceipt:
        """Post a success receipt for a leased task, built from the task itself.

        The receipt id defaults to one derived from the task and its fencing token, so
        repeating the call (a client retrying after a lost reply) returns the first verdict.
        A caller-chosen id is unique within the task only.
        """
        done = _completion(task_id, fencing_token, output, usage, artifacts, receipt_id)
        self.expire_leases()
        with self.store.transaction() as unit:
            return self._complete_in(unit, done, caller)

    def _complete_in(self, unit: Unit, done: _Completion, caller: Caller | None) -> FleetReceipt:
        """Post ``done``'s success receipt (after its envelopes) inside ``unit``."""
        task_id, fencing_token = done.task_id, done.fencing_token
        target = self._receipt_target(unit, task_id, done.receipt_id, fencing_token, caller)
        if not isinstance(target, TaskState):
            known = target
            stored = FleetReceipt.model_validate(unit.tx.load_json(known[1]))
            update = {"fencing_token": fencing_token, "result": done.result,
                      "usage": done.usage, "artifacts": done.artifacts}  # fmt: skip
            again = stored.model_copy(update=update)
            return _same_receipt(unit, known, again)
        task = target
        if done.envelopes:
            now = self.clock.now()
            for envelope in done.envelopes:
                self._post_event_in(unit, task, envelope, now)
        receipt = FleetReceipt(
            receipt_id=done.receipt_id,
            run_id=task.run_id,
            step_id=task.step_id,
            task_id=task_id,
            attempt=task.attempt,
            worker_id=task.worker_id or "",
            fencing_token=fencing_token,
            result=done.result,
            usage=done.usage,
            artifacts=done.artifacts,
        )
        return self._post_receipt(unit, receipt, task)

    # ── batches ──────────────────────────────────────────────────────────────────────────────

    @_retrying
    def complete_tasks(
        self,
        items: Sequence[Any],
        *,
        worker_id: str | None = None,
        lease_next: int = 0,
        lease_seconds: float = 30.0,
        caller: Caller | None = None,
    ) -> CompletedTasks:
        """Post success receipts for several leased tasks, each with the envelopes that go
        before it, and lease up to ``lease_next`` more tasks for ``worker_id``: one write
        transaction. Each item is all or nothing (a savepoint): one that fails (a stale lease,
        a bad envelope) is in ``failures`` and changes nothing, the others are recorded.

        ``items``: objects with ``task_id``, ``fencing_token``, ``output`` and optionally
        ``usage``, ``artifacts``, ``receipt_id``, ``envelopes`` (a
        :class:`~fleetforge.operations.batches.TaskCompletion`, or anything shaped like one).
        """
        if not 0 <= lease_next <= 100:
            raise UsageError(f"lease_next must be between 0 and 100, got {lease_next}")
        worker = self._batch_worker(worker_id, caller, lease_next)
        failures: list[ItemFailure] = []
        prepared: dict[int, _Completion] = {}
        for index, item in enumerate(items):
            try:
                prepared[index] = _completion(
                    item.task_id,
                    item.fencing_token,
                    item.output,
                    getattr(item, "usage", None),
                    getattr(item, "artifacts", None) or (),
                    getattr(item, "receipt_id", None),
                    [self._envelope(e) for e in getattr(item, "envelopes", None) or ()],
                )
            except FleetForgeError as exc:
                failures.append(_failure(index, item.task_id, exc))
        receipts: list[FleetReceipt | None] = [None] * len(items)
        refused: list[Refusal] = []
        self.expire_leases()
        with self.store.transaction() as unit:
            self._prefetch_receipts(unit, [d.task_id for d in prepared.values()])
            for index in sorted(prepared, key=lambda i: prepared[i].task_id):  # runs in order
                done = prepared[index]
                work = functools.partial(self._complete_in, unit, done, caller)
                receipts[index] = self._item(unit, index, done.task_id, failures, refused, work)
            leased = (
                self._lease_in(unit, worker, lease_seconds, lease_next, caller) if worker else []
            )
        self._record_refusals(refused)
        failures.sort(key=lambda f: f.index)
        return CompletedTasks(receipts=receipts, failures=failures, leased=leased)

    @_retrying
    def heartbeat_many(
        self,
        items: Sequence[Any],
        *,
        lease_seconds: float = 30.0,
        caller: Caller | None = None,
    ) -> HeartbeatResults:
        """Keep several leases (items with ``task_id`` and ``fencing_token``): one read for
        all, and one write transaction for those that need extending (see :meth:`heartbeat`).
        A lease that is lost is in ``failures`` (stop working on that task)."""
        if lease_seconds <= 0:
            raise UsageError(f"lease_seconds must be positive, got {lease_seconds}")
        self.expire_leases()
        now = self.clock.now()
        leases: list[FleetLease | None] = [None] * len(items)
        failures: list[ItemFailure] = []
        extend: list[int] = []
        with self.store.backend.read() as tx:
            for index, item in enumerate(items):
                try:
                    kept = self._lease_as_it_stands(
                        tx, item.task_id, item.fencing_token, lease_seconds, caller, now
                    )
                except FleetForgeError as exc:
                    failures.append(_failure(index, item.task_id, exc))
                    continue
                if kept is None:
                    extend.append(index)
                leases[index] = kept
        refused: list[Refusal] = []
        if extend:
            with self.store.transaction() as unit:
                for index in sorted(extend, key=lambda i: items[i].task_id):
                    item = items[index]
                    task_id, token = item.task_id, item.fencing_token
                    work = functools.partial(
                        self._heartbeat_in, unit, task_id, token, lease_seconds, caller, now
                    )
                    extended = self._item(unit, index, item.task_id, failures, refused, work)
                    if isinstance(extended, LeaseLostError):  # its task failed (committed)
                        failures.append(_failure(index, item.task_id, extended))
                    else:
                        leases[index] = extended
        self._record_refusals(refused)
        failures.sort(key=lambda f: f.index)
        return HeartbeatResults(leases=leases, failures=failures)

    @_retrying
    def post_events(self, items: Sequence[Any], *, caller: Caller | None = None) -> PostedEvents:
        """Record several envelopes (items with ``task_id``, ``fencing_token``, ``envelope``)
        of leased tasks in one write transaction, in order; one that is refused is in
        ``failures`` and the others are recorded."""
        failures: list[ItemFailure] = []
        envelopes: dict[int, AgentRunEnvelope] = {}
        for index, item in enumerate(items):
            try:
                envelopes[index] = self._envelope(item.envelope)
            except FleetForgeError as exc:
                failures.append(_failure(index, item.task_id, exc))
        posted: list[PostedEvent | None] = [None] * len(items)
        refused: list[Refusal] = []
        rows: dict[int, EventRow] = {}
        self.expire_leases()
        now = self.clock.now()
        with self.store.transaction() as unit:
            held: dict[tuple[str, int], TaskState] = {}
            for index, envelope in envelopes.items():  # in order: a task's envelopes stay so
                item = items[index]

                def post(i: Any = item, e: AgentRunEnvelope = envelope) -> EventRow:
                    key = (i.task_id, i.fencing_token)
                    if key not in held:
                        held[key] = self._held(unit, i.task_id, i.fencing_token, caller=caller,
                                               what="post_event", lock_run=False)  # fmt: skip
                    return self._post_event_in(unit, held[key], e, now)

                row = self._item(unit, index, item.task_id, failures, refused, post)
                if row is not None:
                    rows[index] = row
        for index, row in rows.items():  # seqs are set once the unit has ended
            posted[index] = PostedEvent(seq=row.seq, event_id=row.event_id)
        self._record_refusals(refused)
        failures.sort(key=lambda f: f.index)
        return PostedEvents(events=posted, failures=failures)

    def _item(
        self,
        unit: Unit,
        index: int,
        task_id: str,
        failures: list[ItemFailure],
        refused: list[Refusal],
        work: Callable[[], R],
    ) -> R | None:
        """Run one item of a batch in a savepoint of ``unit``; a FleetForgeError (or a refusal)
        undoes what the item wrote and becomes its failure. Store errors end the batch."""
        try:
            with unit.savepoint():
                return work()
        except Refusal as denied:
            refused.append(denied)
            forbidden = ForbiddenError(f"forbidden: {denied.reason}", task_id=denied.task_id)
            failures.append(_failure(index, task_id, forbidden))
        except StoreError:
            raise
        except FleetForgeError as exc:
            failures.append(_failure(index, task_id, exc))
        return None

    def _prefetch_receipts(self, unit: Unit, task_ids: Sequence[str]) -> None:
        """Read (and lock) what a batch of receipts needs in four statements, not four per
        receipt: on PostgreSQL each read is a round trip. The runs are locked first, in one
        order, then the tasks; :meth:`_receipt_target` takes each task's entry once (a second
        receipt for one task reads it afresh), and a savepoint rollback drops them all."""
        if len(task_ids) < 2:
            return
        backend, tx = self.store.backend, unit.tx
        run_ids = sorted({_run_of(t) for t in task_ids})
        params: dict[str, Any] = {}
        runs = backend.in_list("run_id", run_ids, params)
        for row in tx.fetchall(tx.for_update(Q["runs_locked"].format(runs=runs)), params):
            unit.memo[("run", row[0])] = RunHead(row[0], row[1], int(row[2]))
            unit.memo[("locked", row[0])] = True
        params = {}
        tasks = backend.in_list("task_id", sorted(set(task_ids)), params)
        known: dict[str, set[str]] = {}
        for task_id, receipt_id in tx.fetchall(Q["receipts_of_tasks"].format(tasks=tasks), params):
            known.setdefault(task_id, set()).add(receipt_id)
        sql = tx.for_update(Q["tasks_for_receipts"].format(tasks=tasks))
        for row in tx.fetchall(sql, params):
            task = task_from_row(tx, row)
            unit.memo[("receipt_target", task.task_id)] = (task, known.get(task.task_id, set()))
        params = {}
        runs = backend.in_list("run_id", run_ids, params)
        heads = dict(tx.fetchall(Q["chain_heads"].format(runs=runs), params))
        for run_id in run_ids:
            unit.memo[("last_hash", run_id)] = heads.get(run_id)

    def _record_refusals(self, refused: Sequence[Refusal]) -> None:
        for denied in refused:
            self._record_refusal(denied)

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

    def _envelope(self, envelope: AgentRunEnvelope | Mapping[str, Any]) -> AgentRunEnvelope:
        """An envelope from outside, checked (JSON value domain, then its schema)."""
        envelope = check_document(envelope, what="envelope")
        if isinstance(envelope, AgentRunEnvelope):
            return envelope
        from fleetforge import schemas

        schemas.validate("agent_run", dict(envelope))
        return parse_envelope(dict(envelope))

    def _lease_as_it_stands(
        self,
        tx: Tx,
        task_id: str,
        fencing_token: int,
        lease_seconds: float,
        caller: Caller | None,
        now: datetime,
    ) -> FleetLease | None:
        """The lease, checked read-only, when it needs no extending; None when a write must
        extend it (or refuse the caller, or end a spent wall-time budget)."""
        task = load_task_and_run(tx, task_id, _run_of(task_id))
        if task is None:
            raise NotFoundError(f"no task '{task_id}'", task_id=task_id)
        assert task.run_status is not None
        try:
            self._check_lease(task, task.run_status, fencing_token, caller, "heartbeat")
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

    def _judge(
        self, receipt: FleetReceipt, task: TaskState, now: datetime
    ) -> tuple[FleetScore, tuple[FleetTaskFailureKind, str] | None, list[EventRow]]:
        """(score, failure if the attempt failed, extra events such as budget_exceeded)."""
        if isinstance(receipt.result, TaskFailure):
            reason = f"{receipt.result.kind}: {receipt.result.message}"
            verdict = FleetScore(passed=False, score=0, scorer="worker", reason=reason)
            return verdict, (receipt.result.kind, receipt.result.message), []
        spec = self._task_spec(task)
        over = _over_budget(spec, receipt.usage, task, now)
        if over is not None:
            budget, limit, used = over
            reason = f"{budget} budget exceeded: used {used:g}, limit {limit:g}"
            verdict = FleetScore(passed=False, score=0, scorer="budget", reason=reason)
            event = self._event(
                "budget_exceeded",
                task.run_id,
                now,
                budget=budget,
                limit=limit,
                used=used,
                step_id=task.step_id,
                task_id=task.task_id,
            )
            return verdict, (FleetTaskFailureKind.BUDGET_EXCEEDED, reason), [event]
        try:
            return score(spec.scorer, receipt.result.output), None, []
        except ScorerError as exc:  # unknown or failing custom scorer: fail, do not hang
            verdict = FleetScore(passed=False, score=0, scorer=exc.context["scorer"],
                                 reason=exc.message)  # fmt: skip
            return verdict, (FleetTaskFailureKind.INTERNAL, exc.message), []


@dataclass(frozen=True)
class _Completion:
    """A success receipt to post, checked and with its id (see ``complete_task``)."""

    task_id: str
    fencing_token: int
    receipt_id: str
    result: TaskSuccess
    usage: FleetUsage
    artifacts: list[FleetArtifactRef]
    envelopes: tuple[AgentRunEnvelope, ...] = ()


def _completion(
    task_id: str,
    fencing_token: int,
    output: Any,
    usage: FleetUsage | Mapping[str, Any] | None,
    artifacts: Sequence[FleetArtifactRef | Mapping[str, Any]],
    receipt_id: str | None,
    envelopes: Sequence[AgentRunEnvelope] = (),
) -> _Completion:
    """Check a completion's content (ContractError) and give it its receipt id: by default
    one derived from the task and fencing token, so a repeated call has one effect."""
    rid = (
        receipt_id
        or "rcp_" + hashlib.sha256(f"{task_id}:{fencing_token}".encode()).hexdigest()[:26]
    )
    used = usage if isinstance(usage, FleetUsage) else FleetUsage.model_validate(usage or {})
    refs = [a if isinstance(a, FleetArtifactRef) else FleetArtifactRef.model_validate(a)
            for a in artifacts]  # fmt: skip
    output, used, refs = _checked_result(output, used, refs)
    result = TaskSuccess(output=output)
    return _Completion(task_id, fencing_token, rid, result, used, refs, tuple(envelopes))


def _failure(index: int, task_id: str, error: FleetForgeError) -> ItemFailure:
    return ItemFailure(index=index, task_id=task_id, error=error.to_dict()["error"])


def _checked_result(
    output: Any, usage: FleetUsage, refs: list[FleetArtifactRef]
) -> tuple[Any, FleetUsage, list[FleetArtifactRef]]:
    """A receipt's output, usage and artifacts, checked against the JSON value domain
    (pointers as the arguments of ``fleet_post_receipt`` name them)."""
    checked = [check_model(r, pointer=f"/artifacts/{i}") for i, r in enumerate(refs)]
    used = check_model(usage, pointer="/usage")
    return check_json_value(output, pointer="/output", what="receipt"), used, checked


def _ts(value: datetime) -> str:
    return iso(value)


def _run_of(task_id: str) -> str:
    """The run a task id belongs to (``<run>.<step>[.<index>]``, see ``task_id_for``)."""
    return task_id.split(".", 1)[0]


def _downstream(spec: RunSpec, step_id: str) -> list[str]:
    """The step and every step that depends on it, directly or not, in spec order."""
    found = {step_id}
    for _ in spec.steps:  # a DAG in any order: repeat until nothing new joins
        for later in spec.steps:
            if later.id not in found and found.intersection(later.depends_on):
                found.add(later.id)
    return [s.id for s in spec.steps if s.id in found]


def _matches(task_spec: Mapping[str, Any], worker: FleetWorkerSpec) -> bool:
    """Does the worker offer the tools and labels the task's profile asks for?"""
    profile = task_spec.get("worker") or {}
    for need in profile.get("tools", []):
        if not any(fnmatchcase(need, have) or fnmatchcase(have, need) for have in worker.tools):
            return False
    labels = profile.get("labels") or {}
    if any(worker.labels.get(k) != v for k, v in labels.items()):
        return False
    return FleetTrustLevel(profile.get("min_trust", "untrusted")).admits(worker.trust_level)


def _check_receipt(receipt: FleetReceipt, task: TaskState) -> None:
    wrong = [
        ErrorDetail(f"/{field}", f"is {have!r}, the leased task's is {want!r}")
        for field, have, want in (
            ("run_id", receipt.run_id, task.run_id),
            ("step_id", receipt.step_id, task.step_id),
            ("attempt", receipt.attempt, task.attempt),
        )
        if have != want
    ]
    if wrong:
        raise ContractError(f"the receipt does not match task '{task.task_id}'", details=wrong)
    if receipt.worker_id != task.worker_id:
        raise ForbiddenError(
            f"worker '{receipt.worker_id}' does not hold the lease on '{task.task_id}'"
        )


def _same_receipt(unit: Unit, known: tuple[Any, ...], receipt: FleetReceipt) -> FleetReceipt:
    stored = FleetReceipt.model_validate(unit.tx.load_json(known[1]))
    keys = ("task_id", "attempt", "worker_id", "fencing_token", "result", "usage", "artifacts")
    if any(getattr(stored, k) != getattr(receipt, k) for k in keys):
        raise ConflictError(
            f"receipt '{receipt.receipt_id}' was already posted with different content",
            receipt_id=receipt.receipt_id,
        )
    score_value = unit.tx.load_json(known[3]) if known[3] is not None else None
    return stored.model_copy(
        update={
            "status": FleetReceiptStatus(known[2]),
            "score": FleetScore.model_validate(score_value) if score_value else None,
        }
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


def _over_budget(
    spec: FleetTaskSpec, usage: FleetUsage, task: TaskState, now: datetime
) -> tuple[str, float, float] | None:
    budget = spec.budget
    if budget is None:
        return None
    tokens = usage.total_tokens or usage.input_tokens + usage.output_tokens
    if budget.max_tokens is not None and tokens > budget.max_tokens:
        return "tokens", float(budget.max_tokens), float(tokens)
    if budget.max_cost_usd is not None and (usage.cost_usd or 0.0) > budget.max_cost_usd:
        return "cost", budget.max_cost_usd, float(usage.cost_usd or 0.0)
    if budget.max_wall_s is not None and task.leased_at is not None:
        elapsed = (now - task.leased_at).total_seconds()
        if elapsed > budget.max_wall_s:
            return "wall_time", budget.max_wall_s, elapsed
    return None


class FleetService:
    """The engine for async surfaces (the MCP server, the client's local transport).

    :meth:`call` runs an operation's engine call (:mod:`fleetforge.operations`) in a worker
    thread: the database drivers are synchronous, so a long-polling lease never blocks the
    event loop. ``sync`` is the :class:`SyncFleetService` underneath.
    """

    def __init__(self, store: EventStore, **options: Any) -> None:
        self.sync = SyncFleetService(store, **options)

    async def call(
        self,
        op: Operation[A, M],
        args: A,
        *,
        caller: Caller | None = None,
        by: str | None = None,
        client: dict[str, Any] | None = None,
        max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
    ) -> M:
        """Run ``op`` with ``args`` as ``caller``; ``by`` is recorded on what a person does."""
        call = Call(self.sync, caller, by, max_artifact_bytes, client)
        return await anyio.to_thread.run_sync(op.run, call, args)
