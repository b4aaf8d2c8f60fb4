"""Pure scheduling rules: which steps are ready, what a task receives, how long a retry waits.

Nothing here touches the store; :mod:`fleetforge.fleet.service` applies these rules inside its
transactions. Every random choice derives from (seed, step id, attempt), so replaying a run makes
the same choices (DESIGN "The seed").
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetforge.contracts import (
    FleetRetryPolicy,
    FleetTaskBudget,
    FleetTaskSpec,
    FleetTaskWorkerProfile,
    InputRef,
    RunSpec,
    TraceContext,
)
from fleetforge.contracts.spec import (
    AgentStep,
    AgentStepTemplate,
    LlmStepTemplate,
    MapStep,
    ToolStepTemplate,
)
from fleetforge.fleet.scoring import resolve_pointer

__all__ = [
    "WorkSettings",
    "backoff_seconds",
    "compile_task",
    "resolve_inputs",
    "resolve_value",
    "settings_for",
    "task_id_for",
]

WorkStep = AgentStepTemplate | ToolStepTemplate | LlmStepTemplate


@dataclass(frozen=True)
class WorkSettings:
    """A work step's effective worker profile, retry policy and budget (step > defaults)."""

    worker: FleetTaskWorkerProfile
    retry: FleetRetryPolicy
    budget: FleetTaskBudget | None


def settings_for(step: WorkStep, spec: RunSpec) -> WorkSettings:
    defaults = spec.defaults
    worker = step.worker or (defaults.worker if defaults else None) or FleetTaskWorkerProfile()
    retry = step.retry or (defaults.retry if defaults else None) or FleetRetryPolicy()
    budget = step.budget or (defaults.budget if defaults else None)
    return WorkSettings(worker, retry, budget)


def task_id_for(run_id: str, step_id: str, map_index: int | None = None) -> str:
    """``<run>.<step>`` or ``<run>.<step>.<index>``: stable across attempts."""
    base = f"{run_id}.{step_id}"
    return base if map_index is None else f"{base}.{map_index}"


def resolve_value(value: Any, run_inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> Any:
    """A literal as is; a reference replaced by the value it names (``LookupError`` if none)."""
    if not isinstance(value, InputRef):
        return value
    if value.input_name is not None:
        if value.input_name not in run_inputs:
            raise LookupError(f"run input '{value.input_name}' is not set")
        return resolve_pointer(run_inputs[value.input_name], value.pointer)
    step_id = value.step_id or ""
    if step_id not in outputs:
        raise LookupError(f"step '{step_id}' has no output")
    return resolve_pointer(outputs[step_id], value.pointer)


def resolve_inputs(
    inputs: Mapping[str, Any], run_inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Every input with its references replaced by values."""
    resolved = {}
    for name, value in inputs.items():
        try:
            resolved[name] = resolve_value(value, run_inputs, outputs)
        except LookupError as exc:
            raise LookupError(f"input '{name}': {exc}") from exc
    return resolved


def compile_task(
    spec: RunSpec,
    run_id: str,
    step: AgentStep | MapStep | WorkStep,
    *,
    step_id: str,
    inputs: dict[str, Any],
    map_index: int | None = None,
    trace: TraceContext | None = None,
) -> FleetTaskSpec:
    """The FleetTaskSpec of a ready work step (or of one item of a map step)."""
    work: WorkStep = step.step if isinstance(step, MapStep) else step
    settings = settings_for(work, spec)
    return FleetTaskSpec(
        task_id=task_id_for(run_id, step_id, map_index),
        run_id=run_id,
        step_id=step_id,
        map_index=map_index,
        type=work.type,
        agent=getattr(work, "agent", None),
        tool=getattr(work, "tool", None),
        prompt=getattr(work, "prompt", None),
        model=getattr(work, "model", None),
        inputs=inputs,
        seed=spec.seed,
        worker=settings.worker,
        scorer=work.scorer,
        retry=settings.retry,
        budget=settings.budget,
        workspace=work.workspace,
        security=spec.security,
        alerts=spec.alerts,
        labels=spec.labels,
        trace=trace or TraceContext(),
    )


def backoff_seconds(policy: FleetRetryPolicy, seed: int, step_id: str, attempt: int) -> float:
    """Delay before the attempt after ``attempt``: exponential, capped, with seeded jitter."""
    base = policy.backoff_s * policy.backoff_multiplier ** max(attempt - 1, 0)
    delay = min(base, policy.max_backoff_s)
    spread = random.Random(f"{seed}:{step_id}:{attempt}").uniform(-1.0, 1.0) * policy.jitter
    return max(0.0, delay * (1.0 + spread))
