"""AutoGen (AgentChat) adapter: runs an agent or a team with ``run_stream`` and reports it.

::

    from fleetforge.adapters.autogen import AutoGenAdapter

    def build_team() -> RoundRobinGroupChat:  # a new team (and its agents) for each task
        return RoundRobinGroupChat([researcher(), writer()], termination_condition=...,
                                   emit_team_events=True)

    await Worker(client, AutoGenAdapter(build_team).as_handler(), concurrency=4).run()

| AgentChat (``run_stream`` items) | envelope |
|---|---|
| ``SelectSpeakerEvent`` or a new ``source`` | ``step_started``/``_finished`` |
| ``ToolCallRequestEvent`` | ``emit tool_call`` per function call |
| ``ToolCallExecutionEvent`` | ``emit tool_result`` per result (``error`` when ``is_error``) |
| ``TextMessage``, ``ToolCallSummaryMessage``, other chat messages | ``emit message`` |
| ``ModelClientStreamingChunkEvent`` | ``emit message`` with ``chunk`` |
| ``ThoughtEvent`` and other events | ``emit custom`` |
| ``save_state()`` after the run | ``checkpoint`` (AgentChat has no checkpoint ids: one is made) |
| ``TaskResult`` | ``complete``: the last agent message; usage summed from ``models_usage`` |
| exception from ``run_stream`` | ``error`` (re-raised) |

The task text is ``inputs["task"]`` (or ``["prompt"]``), else the inputs as JSON; pass ``task=``
to build it yourself, and ``output=`` to turn the ``TaskResult`` into the output.

AgentChat agents and teams remember their conversation from run to run. Pass a function that
builds the agent or team (``build_team`` above) and every task gets its own, concurrently; pass
an agent or team object and tasks take turns on it, each after a reset (``team.reset()``,
``agent.on_reset()``) of what the task before left.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from fleetforge.adapter import AgentRunAdapter, to_jsonable
from fleetforge.adapters._base import (
    FrameworkAdapter,
    PerTask,
    add_usage,
    require,
    tool_arguments,
)
from fleetforge.contracts import FleetUsage

__all__ = ["AutoGenAdapter"]


def _default_task(inputs: Mapping[str, Any]) -> str:
    for key in ("task", "prompt"):
        if isinstance(inputs.get(key), str):
            return str(inputs[key])
    return json.dumps(dict(inputs), sort_keys=True, default=str)


def _default_output(result: Any) -> Any:
    """The content of the last message an agent (not the user) wrote."""
    for message in reversed(list(getattr(result, "messages", []) or [])):
        if getattr(message, "source", "user") != "user" and hasattr(message, "content"):
            content = message.content
            return content if isinstance(content, str) else to_jsonable(content)
    return None


async def _reset(agent: Any) -> None:
    """Clear what a previous run left: a team's ``reset()``, an agent's ``on_reset()``."""
    if hasattr(agent, "reset"):
        await agent.reset()
    else:
        from autogen_core import CancellationToken

        await agent.on_reset(CancellationToken())


class AutoGenAdapter(FrameworkAdapter):
    """Runs an AgentChat agent or team (anything with ``run_stream``) for each task."""

    framework = "autogen"
    extra = "autogen"

    def __init__(
        self,
        agent: Any,
        *,
        task: Callable[[Mapping[str, Any]], Any] = _default_task,
        output: Callable[[Any], Any] = _default_output,
        save_state: bool = True,
    ) -> None:
        require("autogen_agentchat", self.extra)
        self.agent = agent
        self._agents = PerTask(
            agent,
            is_object=lambda a: hasattr(a, "run_stream"),
            reset=_reset,
            what="an AgentChat agent or team (anything with run_stream)",
        )
        self.task = task
        self.output = output
        self.save_state = save_state

    async def _drive(
        self, adapter: AgentRunAdapter, inputs: Mapping[str, Any]
    ) -> tuple[Any, FleetUsage]:
        async with self._agents.use() as agent:
            return await self._run(adapter, agent, inputs)

    async def _run(
        self, adapter: AgentRunAdapter, agent: Any, inputs: Mapping[str, Any]
    ) -> tuple[Any, FleetUsage]:
        usage = FleetUsage()
        speaker: str | None = None
        result: Any = None
        async for item in agent.run_stream(task=self.task(inputs)):
            kind = type(item).__name__
            if kind == "TaskResult":
                result = item
                continue
            if kind == "SelectSpeakerEvent":
                speaker = self._turn(adapter, speaker, str(item.content[0]))
                continue
            source = getattr(item, "source", None)
            if source and source != "user" and source != speaker:
                speaker = self._turn(adapter, speaker, str(source))
            used = getattr(item, "models_usage", None)
            if used is not None:
                usage = add_usage(usage, input_tokens=used.prompt_tokens,
                                  output_tokens=used.completion_tokens)  # fmt: skip
            self._item(adapter, kind, item)
        if speaker is not None:
            adapter.emit("step_finished", {"agent": speaker})
        if self.save_state:
            state = await agent.save_state()
            adapter.checkpoint(state, f"{adapter.context.task_id}:{adapter.context.attempt}")
        return self.output(result), usage

    @staticmethod
    def _turn(adapter: AgentRunAdapter, previous: str | None, speaker: str) -> str:
        if previous is not None:
            adapter.emit("step_finished", {"agent": previous})
        adapter.emit("step_started", {"agent": speaker})
        return speaker

    @staticmethod
    def _item(adapter: AgentRunAdapter, kind: str, item: Any) -> None:
        source = getattr(item, "source", None)
        if kind == "ToolCallRequestEvent":
            for call in item.content:
                adapter.emit("tool_call", {"name": call.name, "id": call.id,
                                           "arguments": tool_arguments(call.arguments),
                                           "agent": source})  # fmt: skip
        elif kind == "ToolCallExecutionEvent":
            for result in item.content:
                payload = {"name": result.name, "id": result.call_id,
                           "result": to_jsonable(result.content), "agent": source}  # fmt: skip
                if result.is_error:
                    payload["error"] = str(result.content)
                adapter.emit("tool_result", payload)
        elif kind == "ModelClientStreamingChunkEvent":
            adapter.emit("message", {"role": source, "content": item.content, "chunk": True})
        elif kind.endswith("Message") and hasattr(item, "content"):
            adapter.emit("message", {"role": source, "content": to_jsonable(item.content),
                                     "type": kind})  # fmt: skip
        else:
            content = to_jsonable(getattr(item, "content", None))
            adapter.emit("custom", {"type": kind, "source": source, "content": content})
