"""CrewAI adapter: runs a Crew and reports what its event bus says about that one kickoff.

::

    from fleetforge.adapters.crewai import CrewAIAdapter

    await Worker(client, CrewAIAdapter(crew).as_handler()).run()

A Crew keeps its tasks' outputs and cannot kick off twice at once: tasks take turns on one
``crew``. Pass a function that builds the Crew instead (``CrewAIAdapter(build_crew)``) and each
task gets its own, so a Worker with ``concurrency`` above 1 runs them side by side.

Listeners are registered on CrewAI's event bus for the kickoff and removed after it; they keep
only events of this crew (its own id, its tasks' and agents' ids), so concurrent kickoffs of
other crews in other threads do not cross. CrewAI delivers events on a thread pool in no fixed
order, so the adapter collects them, waits for the bus to flush, and emits them in
``emission_sequence`` order when ``kickoff`` returns.

| CrewAI event | envelope |
|---|---|
| ``TaskStarted`` / ``TaskCompleted`` / ``TaskFailed`` | ``step_started`` / ``step_finished`` |
| ``ToolUsageStarted`` / ``Finished`` / ``Error`` | ``tool_call`` / ``tool_result`` |
| ``LLMCallCompletedEvent`` / ``LLMCallFailedEvent`` | ``emit message`` / ``custom`` |
| ``AgentExecutionStartedEvent`` / ``...CompletedEvent`` | ``emit custom`` |
| a completed task's output | ``checkpoint`` |
| ``CrewOutput`` (``.raw``, ``.token_usage``) | ``complete`` |
| exception from ``kickoff`` | ``error`` (re-raised) |

Each emit's payload has the keys every adapter uses (:mod:`fleetforge.adapters.payloads`; the
mapping table is in docs/adapters.md).

Importing CrewAI through this adapter turns its telemetry off unless you chose otherwise
(``CREWAI_DISABLE_TELEMETRY``, ``CREWAI_TRACING_ENABLED``, ``CREWAI_DISABLE_VERSION_CHECK``
default to off): a fleet worker should not phone home.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread

from fleetforge.adapter import AgentRunAdapter, to_jsonable
from fleetforge.adapters._base import (
    FrameworkAdapter,
    PerTask,
    add_usage,
    require,
    tool_arguments,
)
from fleetforge.adapters.payloads import Reporter
from fleetforge.contracts import FleetUsage

__all__ = ["CrewAIAdapter"]

_QUIET = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
}
_EVENTS = (
    "CrewKickoffStartedEvent",
    "CrewKickoffCompletedEvent",
    "CrewKickoffFailedEvent",
    "TaskStartedEvent",
    "TaskCompletedEvent",
    "TaskFailedEvent",
    "AgentExecutionStartedEvent",
    "AgentExecutionCompletedEvent",
    "ToolUsageStartedEvent",
    "ToolUsageFinishedEvent",
    "ToolUsageErrorEvent",
    "LLMCallCompletedEvent",
    "LLMCallFailedEvent",
)


def import_crewai() -> Any:
    """``crewai``, imported quietly: telemetry off by default, its ImportWarning silenced."""
    for key, value in _QUIET.items():
        os.environ.setdefault(key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImportWarning)  # crewai.rag's lazy submodules
        return require("crewai", "crewai")


def _default_output(result: Any) -> Any:
    return getattr(result, "raw", result)


class CrewAIAdapter(FrameworkAdapter):
    """Runs a ``crewai.Crew`` (``kickoff(inputs=...)``) for each task."""

    framework = "crewai"
    extra = "crewai"

    def __init__(
        self,
        crew: Any,
        *,
        inputs: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
        output: Callable[[Any], Any] = _default_output,
    ) -> None:
        import_crewai()
        self.crew = crew
        self._crews = PerTask(crew, is_object=lambda c: hasattr(c, "kickoff"), what="a crewai.Crew")
        self.inputs = inputs or (lambda given: dict(given))
        self.output = output

    async def _drive(
        self, adapter: AgentRunAdapter, inputs: Mapping[str, Any]
    ) -> tuple[Any, FleetUsage]:
        async with self._crews.use() as crew:
            return await self._kickoff(adapter, crew, inputs)

    async def _kickoff(
        self, adapter: AgentRunAdapter, crew: Any, inputs: Mapping[str, Any]
    ) -> tuple[Any, FleetUsage]:
        events_module = require("crewai.events", self.extra)
        bus = events_module.crewai_event_bus
        ids = {str(crew.id)} | {str(t.id) for t in crew.tasks} | {str(a.id) for a in crew.agents}
        caught: list[Any] = []
        lock = threading.Lock()

        def mine(source: Any, event: Any) -> bool:
            if source is crew:
                return True
            for attr in ("task_id", "agent_id", "crew_id"):
                if str(getattr(event, attr, None) or "") in ids:
                    return True
            for attr in ("task", "agent", "from_task", "from_agent"):
                owner = getattr(event, attr, None) or getattr(source, attr, None)
                if owner is not None and str(getattr(owner, "id", "")) in ids:
                    return True
            return False

        def handler(source: Any, event: Any) -> None:
            if mine(source, event):
                with lock:
                    caught.append(event)

        classes = [getattr(events_module, name) for name in _EVENTS if hasattr(events_module, name)]
        for cls in classes:
            bus.register_handler(cls, handler)
        try:
            result = await anyio.to_thread.run_sync(
                lambda: crew.kickoff(inputs=self.inputs(inputs))
            )
        finally:
            bus.flush()
            for cls in classes:
                bus.off(cls, handler)
            report = Reporter(adapter, "task")
            for event in sorted(caught, key=lambda e: getattr(e, "emission_sequence", 0) or 0):
                self._emit(report, adapter, event)
        usage = FleetUsage()
        metrics = getattr(result, "token_usage", None)
        if metrics is not None:
            usage = add_usage(usage, input_tokens=metrics.prompt_tokens,
                              output_tokens=metrics.completion_tokens,
                              total_tokens=metrics.total_tokens)  # fmt: skip
        return self.output(result), usage

    @staticmethod
    def _emit(report: Reporter, adapter: AgentRunAdapter, event: Any) -> None:
        kind = type(event).__name__
        task_id = str(getattr(event, "task_id", None) or "")
        step = report.step_of(task_id)
        task = getattr(event, "task", None)
        owner = getattr(event, "agent", None) or getattr(task, "agent", None)
        agent = getattr(event, "agent_role", None) or getattr(owner, "role", None)
        if kind == "TaskStartedEvent":
            name = getattr(event, "task_name", None) or task_id
            report.step_started(task_id, str(name), {"task_id": task_id, "agent": agent})
        elif kind == "TaskCompletedEvent":
            report.step_finished(task_id, framework={"task_id": task_id, "agent": agent})
            output = getattr(getattr(event, "output", None), "raw", None)
            name = getattr(event, "task_name", None) or task_id
            adapter.checkpoint({"task": name, "output": to_jsonable(output)}, f"task:{task_id}")
        elif kind == "TaskFailedEvent":
            report.step_finished(task_id, error=str(getattr(event, "error", "")),
                                 framework={"task_id": task_id, "agent": agent})  # fmt: skip
        elif kind == "ToolUsageStartedEvent":
            report.tool_call(event.event_id, event.tool_name, tool_arguments(event.tool_args),
                             step=step, framework={"agent": agent})  # fmt: skip
        elif kind in ("ToolUsageFinishedEvent", "ToolUsageErrorEvent"):
            error = str(getattr(event, "error", "")) if kind == "ToolUsageErrorEvent" else None
            report.tool_result(event.started_event_id, event.tool_name,
                               to_jsonable(getattr(event, "output", None)), error=error,
                               step=step, framework={"agent": agent})  # fmt: skip
        elif kind == "LLMCallCompletedEvent":
            detail = {"call_id": getattr(event, "call_id", None), "model": event.model}
            report.message("assistant", to_jsonable(event.response), name=agent, step=step,
                           framework=detail)  # fmt: skip
        else:
            data = {"error": str(event.error)} if hasattr(event, "error") else None
            report.custom(kind, data, step=step, framework={"agent": agent})
