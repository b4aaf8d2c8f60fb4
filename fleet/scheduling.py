"""What the service schedules with, so that a receipt costs the same in a run of any width.

A run's spec never changes once submitted, so what scheduling needs of it is worked out once and
kept (:class:`RunPlan`: the steps by id, who depends on whom, a topological order, which outputs
each step reads). A map step's items are resolved once too (:class:`MapWork`): the outputs they
come from are final, since a completed step is never reset (``retry_step`` resets failed and
skipped steps only) and a step becomes ready only once every step it reads has completed.

What changes is read as counters the projections keep in the same transaction as the events
(see :mod:`fleetforge.fleet.projections.runs` and ``.tasks``): the steps not finished yet, a
step's dependencies not completed, a map step's items done and its next item. The reads here
each touch one row, or the dependents of one step.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetforge.contracts import InputRef, RunSpec
from fleetforge.contracts.spec import AgentStep, HumanStep, LlmStep, MapStep, ToolStep
from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.scheduler import resolve_inputs, resolve_value
from fleetforge.fleet.store import Tx

__all__ = [
    "AnyStep",
    "DependentState",
    "MapProgress",
    "MapWork",
    "PlanCache",
    "RunPlan",
    "dependent_states",
    "map_progress",
    "outputs_of",
    "task_attempt",
    "unfinished_steps",
]

Q = named_queries("service.sql")

AnyStep = AgentStep | ToolStep | LlmStep | HumanStep | MapStep


@dataclass(frozen=True)
class MapWork:
    """A map step's items and the inputs every item's task shares (``item`` and ``index`` are
    added per item)."""

    items: list[Any]
    inputs: dict[str, Any]


class RunPlan:
    """What scheduling needs of one run's spec, computed once."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.steps: dict[str, AnyStep] = {step.id: step for step in spec.steps}
        dependents: dict[str, list[str]] = {step.id: [] for step in spec.steps}
        for step in spec.steps:
            for needed in dict.fromkeys(step.depends_on):
                dependents[needed].append(step.id)
        self.dependents: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in dependents.items()}
        self.breakpoints = frozenset(spec.breakpoints)
        self.order: tuple[AnyStep, ...] = _topological(spec)
        self.reads: dict[str, tuple[str, ...]] = {s.id: _steps_read(s) for s in spec.steps}
        self._maps: dict[str, MapWork] = {}

    def map_work(self, step: MapStep, outputs: Mapping[str, Any] | None = None) -> MapWork | None:
        """The map step's items and shared inputs: kept once resolved; resolved from
        ``outputs`` (which must hold every step it reads) when given. ``LookupError`` when a
        reference does not resolve, or ``over`` is not a list."""
        work = self._maps.get(step.id)
        if work is not None or outputs is None:
            return work
        run_inputs = self.spec.inputs
        items = resolve_value(step.over, run_inputs, outputs)
        if not isinstance(items, list):
            raise LookupError(f"'over' must name a list, got {type(items).__name__}")
        inputs = {
            **resolve_inputs(step.inputs, run_inputs, outputs),
            **resolve_inputs(step.step.inputs, run_inputs, outputs),
        }
        work = self._maps[step.id] = MapWork(items, inputs)
        return work


class PlanCache:
    """Run plans by run id, the ``size`` most recently built (a dropped plan is built again
    from its spec; a plan holds its map steps' items, so the cache is bounded). Thread-safe."""

    def __init__(self, size: int = 128) -> None:
        self.size = size
        self._plans: dict[str, RunPlan] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str, spec: RunSpec) -> RunPlan:
        plan = self._plans.get(run_id)
        if plan is not None and plan.spec is spec:
            return plan
        plan = RunPlan(spec)
        with self._lock:
            while len(self._plans) >= self.size:
                self._plans.pop(next(iter(self._plans)))
            self._plans[run_id] = plan
        return plan


def _topological(spec: RunSpec) -> tuple[AnyStep, ...]:
    """The steps with every step after its dependencies, otherwise in spec order (a spec
    written in dependency order keeps its order). The DAG has no cycle (validated)."""
    by_id = {step.id: step for step in spec.steps}
    placed: set[str] = set()
    order: list[AnyStep] = []
    for root in spec.steps:
        stack: list[tuple[AnyStep, int]] = [(root, 0)]
        while stack:
            step, next_dep = stack.pop()
            if step.id in placed:
                continue
            deps = step.depends_on
            while next_dep < len(deps) and deps[next_dep] in placed:
                next_dep += 1
            if next_dep < len(deps):
                stack.append((step, next_dep + 1))
                stack.append((by_id[deps[next_dep]], 0))
                continue
            placed.add(step.id)
            order.append(step)
    return tuple(order)


def _steps_read(step: AnyStep) -> tuple[str, ...]:
    """The steps whose outputs a step's inputs (and a map's ``over``) reference."""
    if isinstance(step, HumanStep):
        return ()
    values: list[Any] = list(step.inputs.values())
    if isinstance(step, MapStep):
        values += [step.over, *step.step.inputs.values()]
    refs = (v.step_id for v in values if isinstance(v, InputRef))
    return tuple(dict.fromkeys(r for r in refs if r is not None))


# ── reads of the counters ────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class DependentState:
    """A step that depends on another, as the scheduler sees it."""

    step_id: str
    status: str
    deps_open: int  # its dependencies that have not completed


@dataclass(frozen=True)
class MapProgress:
    items_done: int  # item tasks completed
    next_item: int  # the next item to enqueue


def unfinished_steps(tx: Tx, run_id: str) -> int:
    """How many of the run's steps have no final status."""
    row = tx.fetchone(Q["run_unfinished_steps"], {"run_id": run_id})
    return 0 if row is None else int(row[0])


def dependent_states(tx: Tx, run_id: str, step_id: str) -> list[DependentState]:
    """The steps that depend on ``step_id``, in spec order."""
    rows = tx.fetchall(Q["step_dependents"], {"run_id": run_id, "step_id": step_id})
    return [DependentState(r[0], r[1], int(r[2])) for r in sorted(rows, key=lambda r: int(r[3]))]


def map_progress(tx: Tx, run_id: str, step_id: str) -> MapProgress:
    row = tx.fetchone(Q["map_counters"], {"run_id": run_id, "step_id": step_id})
    return MapProgress(0, 0) if row is None else MapProgress(int(row[0]), int(row[1]))


def outputs_of(tx: Tx, run_id: str, step_ids: Iterable[str]) -> dict[str, Any]:
    """The outputs of those of ``step_ids`` that completed."""
    found: dict[str, Any] = {}
    for step_id in step_ids:
        row = tx.fetchone(Q["step_output"], {"run_id": run_id, "step_id": step_id})
        if row is not None:
            found[step_id] = None if row[0] is None else tx.load_json(row[0])
    return found


def task_attempt(tx: Tx, run_id: str, task_id: str) -> int | None:
    """The task's current attempt, None when it was never enqueued."""
    row = tx.fetchone(Q["task_attempt"], {"run_id": run_id, "task_id": task_id})
    return None if row is None else int(row[0])
