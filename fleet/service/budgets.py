"""Run-level budgets (issue 23): usage counted as it arrives, and what going over does.

Usage arrives in envelopes (``usage``: the attempt's usage so far) and in receipts. Each report
that adds something is a ``usage_reported`` event with the attempt's usage (the largest count
of each field; a cost from ``prices.toml`` when the worker reports none) and the run's totals.
A run over its budget (tokens, known cost, or wall time since its start) trips once, at the
end of the unit that took it over, or in the lease-expiry sweep for wall time (so an idle run
trips too): ``budget_exceeded`` (scope ``run``), then the run fails (``run_failed``) or pauses
(``run_paused``, its running attempts given back to the inbox). Either way the running
attempts' leases are gone, and their next heartbeat, event or receipt is refused with
:class:`~fleetforge.errors.BudgetExceededError`. ``resume_run(budget=...)`` sets a new budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeGuard

from pydantic import ValidationError

from fleetforge._jsondomain import check_json_value
from fleetforge.contracts import FleetRunBudget, FleetTaskFailureKind, FleetUsage, Run
from fleetforge.contracts.run import AttemptUsage, RunBudgetStatus
from fleetforge.errors import (
    AlreadyCompletedError,
    BudgetExceededError,
    ConflictError,
    ContractError,
    ErrorDetail,
    FleetForgeError,
    LeaseLostError,
)
from fleetforge.fleet._sql import named_queries
from fleetforge.fleet._state import TaskState, load_run, load_task, to_dt
from fleetforge.fleet.access import Caller
from fleetforge.fleet.prices import PriceTable, load_prices
from fleetforge.fleet.service.core import log, retrying, ts
from fleetforge.fleet.service.workers import Workers
from fleetforge.fleet.store import EventStore, Tx, Unit
from fleetforge.fleet.store._base import canonical_json
from fleetforge.validation import pydantic_details

__all__ = ["Budgets", "counted_tokens", "run_budget"]

Q = named_queries("budgets.sql")

_OVER = "budgets_over"  # unit.deferred: runs a report of the unit may have taken over budget
_LIVE = {"running", "paused"}  # a run in another status no longer trips
_NAMES = {"tokens": "token", "cost": "cost", "wall_time": "wall-time"}
_UNITS = {"tokens": "tokens", "cost": "USD", "wall_time": "s"}
_MAX_TOKENS = 2**63 - 1  # totals saturate here: what a bigint column holds
_MAX_COST = 1e300  # and here: a sum of huge reported costs never becomes inf


def counted_tokens(usage: FleetUsage) -> int:
    """The tokens a usage counts against ``max_tokens`` (as the per-attempt budget counts)."""
    return min(usage.total_tokens or usage.input_tokens + usage.output_tokens, _MAX_TOKENS)


@dataclass(frozen=True)
class _State:
    """A run's ``run_budgets`` row."""

    budget: FleetRunBudget | None
    started_at: datetime | None
    tokens: int
    cost_usd: float
    cost_unknown: int
    exceeded: str | None

    def over(self, now: datetime) -> tuple[str, float, float] | None:
        """(budget, limit, used) of the first limit the run is past, else None."""
        b = self.budget
        if b is None:
            return None
        if b.max_tokens is not None and self.tokens > b.max_tokens:
            return "tokens", float(b.max_tokens), float(self.tokens)
        if b.max_cost_usd is not None and self.cost_usd > b.max_cost_usd:
            return "cost", b.max_cost_usd, self.cost_usd
        if b.max_wall_s is not None and self.started_at is not None:
            elapsed = (now - self.started_at).total_seconds()
            if elapsed > b.max_wall_s:
                return "wall_time", b.max_wall_s, elapsed
        return None


@lru_cache(maxsize=1024)
def _budget_of(text: str) -> FleetRunBudget:
    """A stored budget (canonical JSON text), parsed once."""
    return FleetRunBudget.model_validate_json(text)


def _state(tx: Tx, row: Any) -> _State:
    budget: FleetRunBudget | None = None
    if isinstance(row[0], str):  # SQLite: the JSON text
        budget = _budget_of(row[0])
    elif row[0] is not None:  # PostgreSQL: jsonb, decoded
        budget = _budget_of(canonical_json(row[0]))
    return _State(
        budget,
        to_dt(row[1]),
        int(row[2]),
        float(row[3]),
        int(row[4]),
        row[5],
    )


class Budgets(Workers):
    """Run-level budgets: usage counted as it arrives, and what going over does."""

    if TYPE_CHECKING:  # defined by Leasing, which builds on this class

        def _check_lease(
            self,
            task: TaskState,
            run_status: str,
            fencing_token: int,
            caller: Caller | None,
            what: str,
        ) -> None: ...

    def __init__(self, store: EventStore, *, prices: PriceTable | None = None, **options: Any):
        super().__init__(store, **options)
        # the price table: given, else $FLEETFORGE_HOME/prices.toml (a bad file: ContractError)
        self.prices = load_prices() if prices is None else prices

    # ── usage as it arrives ──────────────────────────────────────────────────────────────────

    def _budget_usage(
        self,
        unit: Unit,
        task: TaskState,
        reported: FleetUsage | None,
        now: datetime,
        *,
        receipt: bool = False,
    ) -> None:
        """Count ``reported`` (the attempt's usage so far) for ``task``'s attempt: a
        ``usage_reported`` event when it adds something, and the run noted for the check at
        the end of the unit when it has a budget. A ``receipt``'s usage is counted only in a
        run with a budget or live usage already (else ``Run.usage`` has it, as before)."""
        if not reports_usage(reported):
            return
        key = {"run_id": task.run_id, "task_id": task.task_id, "fencing_token": task.fencing_token}
        if receipt and unit.tx.fetchone(Q["budget_and_attempt"], key) is None:
            # the common receipt (no budget, no live usage): Run.usage has it, as before, and
            # the run row is not locked (a run's receipts do not wait on each other)
            return
        self._run(unit, task.run_id, lock=True)  # a run's totals are added up one at a time
        row = unit.tx.fetchone(Q["budget_and_attempt"], key)
        state = _state(unit.tx, row) if row is not None else None
        if receipt and state is None:
            return
        prior = None
        if row is not None and row[6] is not None:
            prior = _usage_of(row[6:11])
        usage, source = self._merged(prior, reported)
        if prior is not None and usage == prior:
            return  # nothing new (a receipt repeating its last envelope's usage)
        before = prior or FleetUsage()
        tokens = (state.tokens if state else 0) - counted_tokens(before) + counted_tokens(usage)
        tokens = min(tokens, _MAX_TOKENS)
        cost = (state.cost_usd if state else 0.0) - (before.cost_usd or 0.0)
        cost = round(min(max(0.0, cost + (usage.cost_usd or 0.0)), _MAX_COST), 9)
        unknown = (state.cost_unknown if state else 0) - _unknown(before) + _unknown(usage)
        event = self._event(
            "usage_reported",
            task.run_id,
            now,
            task_id=task.task_id,
            step_id=task.step_id,
            attempt=task.attempt,
            fencing_token=task.fencing_token,
            usage=usage,
            cost_source=source,
            run_tokens=tokens,
            run_cost_usd=cost,
            run_cost_unknown=unknown,
        )
        self._append(unit, [event])
        if state is None or state.budget is None or state.exceeded is not None:
            return
        after = replace(state, tokens=tokens, cost_usd=cost, cost_unknown=unknown)
        if after.over(now) is not None:  # checked again, from the rows, at the end of the unit
            self._note_over(unit, task.run_id, task)

    def _merged(
        self, prior: FleetUsage | None, reported: FleetUsage
    ) -> tuple[FleetUsage, str | None]:
        """The attempt's usage with ``reported`` counted (each count the largest seen: reports
        are cumulative, and one arriving twice or late changes nothing), and where its cost
        came from in this report (None: carried over, or unknown)."""
        before = prior or FleetUsage()
        usage = FleetUsage(
            input_tokens=max(before.input_tokens, reported.input_tokens),
            output_tokens=max(before.output_tokens, reported.output_tokens),
            total_tokens=max(before.total_tokens, reported.total_tokens),
            model=reported.model or before.model,
        )
        source: str | None = None
        cost = before.cost_usd
        if reported.cost_usd is not None:
            cost, source = min(max(cost or 0.0, reported.cost_usd), _MAX_COST), "worker"
        else:
            priced = self.prices.cost(usage)
            priced = None if priced is None else min(priced, _MAX_COST)
            if priced is not None and (cost is None or priced > cost):
                cost, source = priced, "prices"
        return usage.model_copy(update={"cost_usd": cost}), source

    def _note_over(self, unit: Unit, run_id: str, task: TaskState | None) -> None:
        """Check ``run_id``'s budget when the unit's body is done (once, for all its reports)."""
        over: dict[str, TaskState | None] | None = unit.deferred.get(_OVER)
        if over is None:
            over = unit.deferred[_OVER] = {}
            unit.before_end(lambda: self._trip_noted(unit))
        over[run_id] = task

    def _trip_noted(self, unit: Unit) -> None:
        now = self.clock.now()
        for run_id, task in sorted(unit.deferred.pop(_OVER, {}).items()):
            self._trip_if_over(unit, run_id, task, now)

    def _refuse_if_over(self, unit: Unit, task: TaskState) -> None:
        """An envelope after the one that took its run over budget, in the same unit, is
        refused like every later one (the trip itself is at the end of the unit)."""
        over = unit.deferred.get(_OVER)
        if over is None or task.run_id not in over:
            return
        row = unit.tx.fetchone(Q["budget_state"], {"run_id": task.run_id})
        state = None if row is None else _state(unit.tx, row)
        found = None if state is None else state.over(self.clock.now())
        if state is not None and found is not None:
            raise _refusal(task, state, found)

    # ── going over ──────────────────────────────────────────────────────────────────────────

    def _trip_if_over(self, unit: Unit, run_id: str, task: TaskState | None, now: datetime) -> bool:
        """Trip ``run_id``'s budget if the run is past it (read afresh: a report noted for
        the check may have been undone since). True when it tripped."""
        run = self._run(unit, run_id, lock=True)
        if run.status not in _LIVE:
            return False
        row = unit.tx.fetchone(Q["budget_state"], {"run_id": run_id})
        state = None if row is None else _state(unit.tx, row)
        if state is None or state.budget is None or state.exceeded is not None:
            return False
        found = state.over(now)
        if found is None:
            return False
        self._trip(unit, run_id, state.budget, found, task, now)
        return True

    def _trip(
        self,
        unit: Unit,
        run_id: str,
        budget: FleetRunBudget,
        over: tuple[str, float, float],
        task: TaskState | None,
        now: datetime,
    ) -> None:
        kind, limit, used = over
        step_id = task.step_id if task else None
        exceeded = self._event(
            "budget_exceeded",
            run_id,
            now,
            budget=kind,
            limit=limit,
            used=used,
            step_id=step_id,
            task_id=task.task_id if task else None,
            scope="run",
            on_exceed=budget.on_exceed,
        )
        self._append(unit, [exceeded])
        unit_ = _UNITS[kind]
        reason = f"run budget exceeded: used {used:g} {unit_}, limit {limit:g} {unit_}"
        if budget.on_exceed == "fail":  # the projections cancel its tasks, leased ones too
            head = self._chain_head(unit, run_id, "run_failed", now)
            kind_ = FleetTaskFailureKind.BUDGET_EXCEEDED
            failed = self._event(
                "run_failed", run_id, now, reason=reason, step_id=step_id, kind=kind_,
                chain_head=head,
            )  # fmt: skip
            self._append(unit, [failed])
            return
        events = []
        for (task_id,) in unit.tx.fetchall(Q["budget_leased_tasks"], {"run_id": run_id}):
            held = load_task(unit.tx, task_id, lock=True)
            if held is None or held.status != "leased":
                continue
            released = self._event(
                "task_released", run_id, now, task_id=task_id, worker_id=held.worker_id,
                fencing_token=held.fencing_token, reason=reason, by="budget",
            )  # fmt: skip
            spec = self._task_spec(held)
            events += [released, self._enqueue_event(spec, held.attempt, now, now, held.resume)]
        if self._run(unit, run_id).status == "running":
            events.append(self._event("run_paused", run_id, now, reason="budget", step_id=step_id))
        self._append(unit, events)

    def _sweep_budgets(self, now: datetime, limit: int = 100) -> int:
        """Trip the runs past their wall time (the lease-expiry sweep calls this, so a run
        with no worker reporting trips too). Returns how many tripped."""
        with self.store.backend.read() as tx:
            rows = tx.fetchall(Q["budget_wall_due"], {"now": ts(now), "limit": limit})
        tripped = 0
        for run_id in sorted(r[0] for r in rows):  # a transaction each: one run's trouble
            try:  # (a spec that cannot be read back, signing) does not hold up the others
                tripped += self._trip_run(run_id, now)
            except FleetForgeError as exc:
                log.warning("run %s: its wall-time budget could not be enforced: %s", run_id, exc)
        return tripped

    @retrying
    def _trip_run(self, run_id: str, now: datetime) -> int:
        with self.store.transaction() as unit:
            return self._trip_if_over(unit, run_id, None, now)

    # ── refusing the attempts of a run that went over ────────────────────────────────────────

    def _checked_lease(
        self,
        tx: Tx,
        task: TaskState,
        run_status: str,
        fencing_token: int,
        caller: Caller | None,
        what: str,
    ) -> None:
        """:meth:`_check_lease`, with a lease its run's budget took back refused as
        BudgetExceededError (the run failed, or paused and gave the attempt back)."""
        try:
            self._check_lease(task, run_status, fencing_token, caller, what)
        except (LeaseLostError, AlreadyCompletedError) as lost:
            if isinstance(lost, BudgetExceededError) or run_status not in {"failed", "paused"}:
                raise
            row = tx.fetchone(Q["budget_state"], {"run_id": task.run_id})
            state = None if row is None else _state(tx, row)
            if state is None or state.exceeded is None:
                raise
            over = state.over(self.clock.now()) or (state.exceeded, 0.0, 0.0)
            raise _refusal(task, state, over) from None

    # ── reading and raising ──────────────────────────────────────────────────────────────────

    def _get_run(self, unit: Unit, run_id: str) -> Run:
        run = super()._get_run(unit, run_id)
        status = self._budget_status(unit.tx, run)
        return run if status is None else run.model_copy(update={"budget": status})

    def _budget_status(self, tx: Tx, run: Run) -> RunBudgetStatus | None:
        row = tx.fetchone(Q["budget_state"], {"run_id": run.run_id})
        if row is None:
            return None
        state = _state(tx, row)
        end = run.finished_at or self.clock.now()
        running = [
            AttemptUsage(
                task_id=r[0],
                step_id=r[1],
                attempt=int(r[2]),
                worker_id=r[3],
                usage=_usage_of(r[4:9]),
            )
            for r in tx.fetchall(Q["budget_running_usage"], {"run_id": run.run_id})
        ]
        return RunBudgetStatus(
            limits=state.budget,
            tokens=state.tokens,
            cost_usd=state.cost_usd,
            cost_unknown=state.cost_unknown,
            wall_s=None if state.started_at is None else (end - state.started_at).total_seconds(),
            exceeded=state.exceeded,  # type: ignore[arg-type]  # one of the three, as written
            running=running,
        )

    def _resume_budget(
        self,
        unit: Unit,
        run_id: str,
        budget: FleetRunBudget | None,
        by: str | None,
        now: datetime,
    ) -> None:
        """Inside ``resume_run``: set the new ``budget`` if one is given; refuse to resume a run
        still past its budget (ConflictError: raise the budget), writing nothing."""
        row = unit.tx.fetchone(Q["budget_state"], {"run_id": run_id})
        state = None if row is None else _state(unit.tx, row)
        if budget is not None:
            changed = self._event(
                "run_budget_changed",
                run_id,
                now,
                budget=budget,
                previous=state.budget if state else None,
                started_at=self._started_at(unit, run_id),
                by=by,
            )
            self._append(unit, [changed])
            row = unit.tx.fetchone(Q["budget_state"], {"run_id": run_id})
            state = None if row is None else _state(unit.tx, row)
        if state is None or state.exceeded is None:
            return
        over = state.over(now)
        if over is not None:
            kind, limit, used = over
            raise ConflictError(
                f"run '{run_id}' is still over its {_NAMES[kind]} budget (used {used:g}, limit "
                f"{limit:g}): resume it with a raised budget",
                run_id=run_id,
                budget=kind,
            )

    @staticmethod
    def _started_at(unit: Unit, run_id: str) -> datetime | None:
        run = load_run(unit.tx, run_id)
        return None if run is None else run.started_at


def _usage_of(row: Any) -> FleetUsage:
    """A usage from (input_tokens, output_tokens, total_tokens, cost_usd, model) columns."""
    cost = None if row[3] is None else float(row[3])
    return FleetUsage(input_tokens=int(row[0]), output_tokens=int(row[1]),
                      total_tokens=int(row[2]), cost_usd=cost, model=row[4])  # fmt: skip


def _unknown(usage: FleetUsage) -> int:
    """1 when the usage spent tokens at a cost nobody knows."""
    return 1 if usage.cost_usd is None and counted_tokens(usage) > 0 else 0


def _refusal(task: TaskState, state: _State, over: tuple[str, float, float]) -> BudgetExceededError:
    kind, limit, used = over
    what = "fails" if state.budget is None or state.budget.on_exceed == "fail" else "pauses"
    detail = f" (used {used:g}, limit {limit:g})" if limit else ""
    return BudgetExceededError(
        f"budget exceeded: run '{task.run_id}' went over its {_NAMES[kind]} budget{detail}, so "
        f"it {what}; stop working on '{task.task_id}'",
        run_id=task.run_id,
        task_id=task.task_id,
        budget=kind,
    )


def run_budget(budget: FleetRunBudget | Mapping[str, Any]) -> FleetRunBudget:
    """A budget given to resume_run, checked (ContractError pointing at /budget/...)."""
    if isinstance(budget, FleetRunBudget):
        return budget
    checked = check_json_value(budget, pointer="/budget", what="arguments")
    if not isinstance(checked, Mapping):
        raise ContractError("invalid budget", details=[ErrorDetail("/budget", "not an object")])
    from fleetforge import schemas

    problems = schemas.errors("fleet_run_budget", dict(checked))
    if problems:
        details = [ErrorDetail(f"/budget{d.pointer}", d.message) for d in problems]
        raise ContractError("invalid budget", details=details)
    try:
        return FleetRunBudget.model_validate(dict(checked))
    except ValidationError as exc:
        raise ContractError(
            "invalid budget", details=pydantic_details(exc, prefix="/budget")
        ) from None


def reports_usage(usage: FleetUsage | None) -> TypeGuard[FleetUsage]:
    """Whether ``usage`` counts anything (an envelope or receipt that does is counted against
    the run's budget, and so locks the run row, which must come before the task's)."""
    return usage is not None and bool(
        usage.input_tokens or usage.output_tokens or usage.total_tokens or usage.cost_usd
    )
