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
| ``ModelClientStreamingChunkEvent`` | counted (the whole reply follows as a message) |
| ``ThoughtEvent`` and other events | ``emit custom`` |
| ``save_state()`` after the run | ``checkpoint`` (AgentChat has no checkpoint ids: one is made) |
| ``TaskResult`` | ``complete``: the last agent message; usage summed from ``models_usage`` |
| exception from ``run_stream`` | ``error`` (re-raised) |

Each emit's payload has the keys every adapter uses (:mod:`fleetforge.adapters.payloads`; the
mapping table is in docs/adapters.md).

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
from fleetforge.adapters.payloads import Reporter
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
        turns = _Turns(Reporter(adapter, "agent"))
        result: Any = None
        try:
            async for item in agent.run_stream(task=self.task(inputs)):
                kind = type(item).__name__
                if kind == "TaskResult":
                    result = item
                elif kind == "SelectSpeakerEvent":
                    turns.turn(str(item.content[0]))
                else:
                    turns.item(kind, item)
        except Exception as exc:
            turns.end(error=f"{type(exc).__name__}: {exc}")
            raise
        turns.end()
        if self.save_state:
            state = await agent.save_state()
            adapter.checkpoint(state, f"{adapter.context.task_id}:{adapter.context.attempt}")
        return self.output(result), turns.usage


class _Turns:
    """A run's items as steps (one per agent turn), messages and tool calls.

    Streamed chunks (``ModelClientStreamingChunkEvent``) are not reported one by one: the whole
    reply follows as a chat message, which carries how many chunks it came in.
    """

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.usage = FleetUsage()
        self.speaker: str | None = None
        self.turns = 0
        self.chunks = 0

    def turn(self, speaker: str) -> None:
        self.end()
        self.speaker = speaker
        self.turns += 1
        self.reporter.step_started(self._key, speaker, self._detail)

    def end(self, error: str | None = None) -> None:
        """The current turn is over (the run ended, or failed with ``error``)."""
        if self.speaker is not None:
            self.reporter.step_finished(self._key, error=error, framework=self._detail)
            self.speaker = None

    @property
    def _key(self) -> str:
        return f"{self.turns}:{self.speaker}"

    @property
    def _detail(self) -> dict[str, Any]:
        return {"agent": self.speaker, "turn": self.turns}

    def item(self, kind: str, item: Any) -> None:
        source = getattr(item, "source", None)
        if source and source != "user" and source != self.speaker:
            self.turn(str(source))
        used = getattr(item, "models_usage", None)
        if used is not None:
            self.usage = add_usage(self.usage, input_tokens=used.prompt_tokens,
                                   output_tokens=used.completion_tokens)  # fmt: skip
        detail = {"type": kind, "source": source}
        report = self.reporter
        if kind == "ToolCallRequestEvent":
            for call in item.content:
                report.tool_call(call.id, call.name, tool_arguments(call.arguments),
                                 framework=detail)  # fmt: skip
        elif kind == "ToolCallExecutionEvent":
            for done in item.content:
                error = str(done.content) if done.is_error else None
                report.tool_result(done.call_id, done.name, to_jsonable(done.content),
                                   error=error, framework=detail)  # fmt: skip
        elif kind == "ModelClientStreamingChunkEvent":
            self.chunks += 1
        elif kind.endswith("Message") and hasattr(item, "content"):
            role = "user" if source == "user" else "assistant"
            detail |= {"message_id": getattr(item, "id", None), "chunks": self.chunks}
            self.chunks = 0
            report.message(role, to_jsonable(item.content), name=source, framework=detail)
        else:
            report.custom(kind, to_jsonable(getattr(item, "content", None)), framework=detail)
