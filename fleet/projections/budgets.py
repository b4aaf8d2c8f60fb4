"""Run-level budgets (issue 23): each run's budget in force, its usage so far, and the live
usage of each attempt (``run_budgets``, ``attempt_usage``; migration ``run_budgets``).

A run has a ``run_budgets`` row once it has a budget (``run_submitted`` with one, or
``run_budget_changed``) or once usage arrives (``usage_reported``, whose data carries the
attempt's usage and the run's totals already added up, so this projection writes them as they
are). ``wall_deadline`` is the run's start plus ``max_wall_s`` while the run can still go over
it; it is cleared when the budget trips or the run ends, and set again when it is resumed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.store._base import EventRow, Tx, canonical_json, iso

__all__ = ["BudgetsProjection", "wall_deadline"]

Q = named_queries("budgets.sql")


def wall_deadline(budget: dict[str, Any] | None, started_at: Any) -> str | None:
    """When a run started at ``started_at`` goes over ``budget``'s wall time (None: never)."""
    start = None
    if isinstance(started_at, datetime):  # PostgreSQL's timestamptz
        start = started_at.astimezone(UTC)
    elif started_at is not None:
        start = datetime.fromisoformat(started_at)
    if not budget or budget.get("max_wall_s") is None or start is None:
        return None
    return iso(start + timedelta(seconds=float(budget["max_wall_s"])))


def _submitted(tx: Tx, e: EventRow) -> None:
    budget = e.data["spec"].get("budget")
    if budget is not None:
        tx.execute(Q["budget_insert"], {"run_id": e.run_id, "budget": canonical_json(budget)})


def _row(tx: Tx, run_id: str | None) -> tuple[dict[str, Any] | None, Any] | None:
    row = tx.fetchone(Q["budget_row"], {"run_id": run_id})
    if row is None:
        return None
    return (tx.load_json(row[0]) if row[0] is not None else None), row[1]


def _started(tx: Tx, e: EventRow) -> None:
    found = _row(tx, e.run_id)
    if found is None:
        return
    deadline = wall_deadline(found[0], e.at)
    params = {"run_id": e.run_id, "started_at": e.at, "wall_deadline": deadline}
    tx.execute(Q["budget_started"], params)


def _changed(tx: Tx, e: EventRow) -> None:
    budget = e.data.get("budget")
    started = e.data.get("started_at")
    started = iso(started) if started is not None else None
    params = {
        "run_id": e.run_id,
        "budget": None if budget is None else canonical_json(budget),
        "started_at": started,
        "wall_deadline": wall_deadline(budget, started),
    }
    tx.execute(Q["budget_set"], params)


def _reopened(tx: Tx, e: EventRow) -> None:
    found = _row(tx, e.run_id)
    if found is None:
        return
    deadline = wall_deadline(found[0], found[1])
    tx.execute(Q["budget_reopened"], {"run_id": e.run_id, "wall_deadline": deadline})


def _ended(tx: Tx, e: EventRow) -> None:
    tx.execute(Q["budget_ended"], {"run_id": e.run_id})


def _exceeded(tx: Tx, e: EventRow) -> None:
    if e.data.get("scope") == "run":
        tx.execute(Q["budget_exceeded"], {"run_id": e.run_id, "exceeded": e.data["budget"]})


def _usage(tx: Tx, e: EventRow) -> None:
    d = e.data
    usage = d["usage"]
    tx.execute(
        Q["attempt_usage_set"],
        {
            "run_id": e.run_id,
            "task_id": d["task_id"],
            "fencing_token": d["fencing_token"],
            "step_id": d["step_id"],
            "attempt": d["attempt"],
            "input_tokens": usage.get("input_tokens", 0),
            "output_tokens": usage.get("output_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
            "cost_usd": usage.get("cost_usd"),
            "model": usage.get("model"),
            "at": e.at,
        },
    )
    totals = {
        "run_id": e.run_id,
        "tokens": d["run_tokens"],
        "cost_usd": d["run_cost_usd"],
        "cost_unknown": d["run_cost_unknown"],
    }
    tx.execute(Q["budget_totals"], totals)


class BudgetsProjection:
    """Rows of ``run_budgets`` and ``attempt_usage``."""

    name = "budgets"
    tables = {
        "run_budgets": ("run_id",),
        "attempt_usage": ("run_id", "task_id", "fencing_token"),
    }
    _handlers: dict[str, Callable[[Tx, EventRow], None]] = {
        "run_submitted": _submitted,
        "run_started": _started,
        "run_budget_changed": _changed,
        "run_resumed": _reopened,
        "run_completed": _ended,
        "run_failed": _ended,
        "run_cancelled": _ended,
        "budget_exceeded": _exceeded,
        "usage_reported": _usage,
    }
    handles = frozenset(_handlers)

    def apply(self, tx: Tx, event: EventRow) -> None:
        self._handlers[event.type](tx, event)
