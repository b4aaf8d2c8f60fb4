"""LangGraph adapter: runs a compiled graph with streaming and reports it as envelopes.

::

    from fleetforge.adapters.langgraph import LangGraphAdapter

    agent = LangGraphAdapter(graph, inputs=lambda i: {"messages": [("user", i["topic"])]})
    await Worker(client, agent.as_handler(), capabilities={"role": "planner"}).run()

The graph is streamed with ``stream_mode=["updates", "messages", "custom", "checkpoints",
"tasks"]`` (LangGraph's own streaming, no patching):

| LangGraph | envelope |
|---|---|
| ``tasks`` start / result (a node) | ``emit step_started`` / ``step_finished`` (+ error) |
| ``messages``: AI text | ``emit message`` (chunks of streaming models marked ``chunk``) |
| ``messages``: AI ``tool_calls`` / ``ToolMessage`` | ``emit tool_call`` / ``tool_result`` |
| ``custom`` (``get_stream_writer()``) | ``emit custom`` |
| ``checkpoints`` (checkpointer ids) | ``checkpoint`` (state values, checkpoint id) |
| ``updates`` with ``__interrupt__`` | ``emit paused``; the task pauses (``GraphInterrupted``) |
| end of the stream | ``complete`` (output mapper over the final state; usage from
  ``usage_metadata``) |
| exception | ``error`` (re-raised) |

The thread id is the task id: with a persistent checkpointer, a retried task resumes from its
last checkpoint instead of starting over. An ``interrupt()`` pauses the task and its run (the
Worker calls ``pause_task``); ``resume_run(run_id, value=...)`` sends the task back, and the
graph continues with ``Command(resume=value)``: ``interrupt()`` returns the value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fleetforge.adapter import AgentRunAdapter, to_jsonable
from fleetforge.adapters._base import FrameworkAdapter, add_usage, require
from fleetforge.contracts import FleetUsage
from fleetforge.worker import TaskPaused

__all__ = ["GraphInterrupted", "LangGraphAdapter"]

STREAM_MODES = ["updates", "messages", "custom", "checkpoints", "tasks", "values"]


class GraphInterrupted(TaskPaused):
    """The graph stopped at an ``interrupt()``: the task pauses until its run is resumed with
    a value (the Worker calls ``pause_task`` with the interrupt values)."""

    def __init__(self, interrupts: list[Any]) -> None:
        message = f"graph interrupted, waiting for input: {interrupts!r}"[:500]
        super().__init__(message, waiting_for=interrupts)
        self.interrupts = interrupts


def _default_output(state: Any) -> Any:
    """The last message's text for message graphs, else the whole state."""
    values = state if isinstance(state, Mapping) else {}
    messages = values.get("messages")
    if isinstance(messages, list) and messages:
        return getattr(messages[-1], "content", messages[-1])
    return state


class LangGraphAdapter(FrameworkAdapter):
    """Runs a compiled LangGraph graph (``graph.compile(...)``) for each task."""

    framework = "langgraph"
    extra = "langgraph"

    def __init__(
        self,
        graph: Any,
        *,
        inputs: Callable[[Mapping[str, Any]], Any] | None = None,
        output: Callable[[Any], Any] = _default_output,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        require("langgraph", self.extra)
        self.graph = graph
        self.inputs = inputs or (lambda given: dict(given))
        self.output = output
        self.config = dict(config or {})

    async def _drive(
        self, adapter: AgentRunAdapter, inputs: Mapping[str, Any]
    ) -> tuple[Any, FleetUsage]:
        configurable = {**self.config.get("configurable", {}), "thread_id": adapter.context.task_id}
        config = {**self.config, "configurable": configurable}
        graph_input: Any = self.inputs(inputs)
        context = adapter.context
        # a task leased before (a retry, or released by a worker that stopped) continues from
        # its last checkpoint; a first lease has none to look up
        resumable = context.attempt > 1 or context.fencing_token > 1
        if resumable and getattr(self.graph, "checkpointer", None):
            snapshot = await self.graph.aget_state(config)
            if snapshot.next:
                graph_input = None
                checkpoint = snapshot.config["configurable"].get("checkpoint_id")
                resumed = {"resumed_from": checkpoint, "next": list(snapshot.next)}
                if context.resume is not None and snapshot.interrupts:
                    from langgraph.types import Command  # the graph waits at an interrupt()

                    graph_input = Command(resume=context.resume.value)
                    resumed["resume"] = to_jsonable(context.resume.value)
                adapter.emit("custom", resumed)
        usage = FleetUsage()
        seen: set[str] = set()
        interrupts: list[Any] = []
        state: Any = None
        async for mode, data in self.graph.astream(graph_input, config, stream_mode=STREAM_MODES):
            if mode == "tasks":
                self._task(adapter, data)
            elif mode == "messages":
                usage = self._message(adapter, data, seen, usage)
            elif mode == "custom":
                adapter.emit("custom", data if isinstance(data, Mapping) else {"value": data})
            elif mode == "checkpoints":
                checkpoint_id = data["config"]["configurable"].get("checkpoint_id", "")
                saved = {"values": data.get("values"), "next": list(data.get("next", ())),
                         "step": data.get("metadata", {}).get("step")}  # fmt: skip
                adapter.checkpoint(saved, str(checkpoint_id))
            elif mode == "values":
                state = data
            elif mode == "updates" and isinstance(data, Mapping) and "__interrupt__" in data:
                found = [to_jsonable(getattr(i, "value", i)) for i in data["__interrupt__"]]
                interrupts.extend(found)
                adapter.emit("paused", {"interrupts": found, "thread_id": adapter.context.task_id})
        if interrupts:
            raise GraphInterrupted(interrupts)
        return self.output(state), usage

    @staticmethod
    def _task(adapter: AgentRunAdapter, data: Mapping[str, Any]) -> None:
        node = data.get("name")
        if "result" in data or "error" in data:  # a finished task; a started one has "input"
            payload: dict[str, Any] = {"node": node, "id": data.get("id")}
            if data.get("error"):
                payload["error"] = str(data["error"])
            adapter.emit("step_finished", payload)
        else:
            adapter.emit("step_started", {"node": node, "id": data.get("id")})

    @staticmethod
    def _message(
        adapter: AgentRunAdapter, data: Any, seen: set[str], usage: FleetUsage
    ) -> FleetUsage:
        message, meta = data
        kind = type(message).__name__
        node = meta.get("langgraph_node") if isinstance(meta, Mapping) else None
        chunk = kind.endswith("Chunk")
        if not chunk and message.id:
            if message.id in seen:
                return usage
            seen.add(message.id)
        if kind.startswith("ToolMessage"):
            payload = {"name": message.name, "id": message.tool_call_id,
                       "result": to_jsonable(message.content), "node": node}  # fmt: skip
            if getattr(message, "status", "success") == "error":
                payload["error"] = str(message.content)
            adapter.emit("tool_result", payload)
            return usage
        if message.content:
            adapter.emit("message", {"role": "assistant" if kind.startswith("AI") else kind,
                                     "content": to_jsonable(message.content), "node": node,
                                     "chunk": chunk})  # fmt: skip
        for call in getattr(message, "tool_calls", None) or ():
            adapter.emit("tool_call", {"name": call.get("name"), "id": call.get("id"),
                                       "arguments": to_jsonable(call.get("args")),
                                       "node": node})  # fmt: skip
        meta_usage = getattr(message, "usage_metadata", None)
        if meta_usage:
            model = (getattr(message, "response_metadata", None) or {}).get("model_name")
            usage = add_usage(
                usage,
                input_tokens=meta_usage.get("input_tokens"),
                output_tokens=meta_usage.get("output_tokens"),
                total_tokens=meta_usage.get("total_tokens"),
                model=model,
            )
        return usage
