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
| ``messages``: AI text | ``emit message``, one per reply (a streaming model's chunks gathered) |
| ``messages``: AI ``tool_calls`` / ``ToolMessage`` | ``emit tool_call`` / ``tool_result`` |
| ``custom`` (``get_stream_writer()``) | ``emit custom`` (type ``stream_writer``) |
| ``checkpoints`` (checkpointer ids) | ``checkpoint`` (state values, checkpoint id) |
| ``updates`` with ``__interrupt__`` | ``emit paused``; the task pauses (``GraphInterrupted``) |
| end of the stream | ``complete`` (output mapper over the final state; usage from
  ``usage_metadata``) |
| exception | ``error`` (re-raised) |

Each emit's payload has the keys every adapter uses (:mod:`fleetforge.adapters.payloads`; the
mapping table is in docs/adapters.md).

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
from fleetforge.adapters.payloads import Reporter
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
        resumed: dict[str, Any] | None = None
        if resumable and getattr(self.graph, "checkpointer", None):
            snapshot = await self.graph.aget_state(config)
            if snapshot.next:
                graph_input = None
                checkpoint = snapshot.config["configurable"].get("checkpoint_id")
                resumed = {"checkpoint_id": checkpoint, "next": list(snapshot.next)}
                if context.resume is not None and snapshot.interrupts:
                    from langgraph.types import Command  # the graph waits at an interrupt()

                    graph_input = Command(resume=context.resume.value)
                    resumed["resume"] = to_jsonable(context.resume.value)
        stream = _Stream(Reporter(adapter, "node"))
        if resumed is not None:
            stream.reporter.custom("resumed", resumed)
        interrupts: list[Any] = []
        state: Any = None
        async for mode, data in self.graph.astream(graph_input, config, stream_mode=STREAM_MODES):
            if mode == "messages":
                stream.message(*data)
            elif mode == "tasks":
                stream.task(data)
            elif mode == "custom":
                stream.reporter.custom("stream_writer", data)
            elif mode == "checkpoints":
                checkpoint_id = data["config"]["configurable"].get("checkpoint_id", "")
                saved = {"values": data.get("values"), "next": list(data.get("next", ())),
                         "step": data.get("metadata", {}).get("step")}  # fmt: skip
                adapter.checkpoint(saved, str(checkpoint_id))
            elif mode == "values":
                state = data
            elif mode == "updates" and isinstance(data, Mapping) and "__interrupt__" in data:
                stream.flush()
                found = [getattr(i, "value", i) for i in data["__interrupt__"]]
                ids = [getattr(i, "id", None) for i in data["__interrupt__"]]
                interrupts.extend(to_jsonable(found))
                stream.reporter.paused(
                    to_jsonable(found),
                    framework={"thread_id": adapter.context.task_id, "interrupt_ids": ids},
                )
        stream.flush()
        if interrupts:
            raise GraphInterrupted(interrupts)
        return self.output(state), stream.usage


class _Stream:
    """One graph run's ``messages`` and ``tasks`` items, as steps, messages and tool calls.

    A streaming model sends its reply as chunks (one per token for some): they are gathered by
    message id and reported as one ``message`` when the reply is complete — its last chunk, the
    next whole message or the end of its node, whichever comes first.
    """

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.usage = FleetUsage()
        self.seen: set[str] = set()
        self.pending: dict[str, tuple[Any, int, Mapping[str, Any]]] = {}  # id: (sum, n, meta)

    def task(self, data: Mapping[str, Any]) -> None:
        node = str(data.get("name"))
        key = str(data.get("id"))
        if "result" in data or "error" in data:  # a finished task; a started one has "input"
            self.flush(node)
            error = str(data["error"]) if data.get("error") else None
            self.reporter.step_finished(key, error=error, framework={"task_id": key})
        else:
            triggers = list(data.get("triggers") or ())
            self.reporter.step_started(key, node, {"task_id": key, "triggers": triggers})

    def message(self, message: Any, meta: Mapping[str, Any]) -> None:
        if type(message).__name__.endswith("Chunk"):
            key = str(message.id or meta.get("langgraph_checkpoint_ns"))
            gathered, count, _ = self.pending.get(key) or (None, 0, meta)
            self.pending[key] = (message if gathered is None else gathered + message,
                                 count + 1, meta)  # fmt: skip
            if getattr(message, "chunk_position", None) == "last":
                self._report(*self.pending.pop(key))
            return
        self.flush(meta.get("langgraph_node"))
        if message.id:
            if message.id in self.seen:
                return
            self.seen.add(message.id)
        self._report(message, 0, meta)

    def flush(self, node: Any = None) -> None:
        """Report the gathered replies (of one node, or all)."""
        for key, (gathered, count, meta) in list(self.pending.items()):
            if node is None or meta.get("langgraph_node") == node:
                del self.pending[key]
                self._report(gathered, count, meta)

    def _report(self, message: Any, chunks: int, meta: Mapping[str, Any]) -> None:
        kind = type(message).__name__.removesuffix("Chunk")
        node = meta.get("langgraph_node")
        task_id = str(meta.get("langgraph_checkpoint_ns", "")).split("|")[-1].partition(":")[2]
        step = self.reporter.step_of(task_id)
        if kind == "ToolMessage":
            error = str(message.content) if getattr(message, "status", "") == "error" else None
            self.reporter.tool_result(message.tool_call_id, message.name,
                                      to_jsonable(message.content), error=error, step=step,
                                      framework={"node": node})  # fmt: skip
            return
        if message.content:
            role = _ROLES.get(kind, kind)
            detail = {"message_id": message.id, "type": kind, "chunks": chunks}
            self.reporter.message(role, to_jsonable(message.content), name=node, step=step,
                                  framework=detail)  # fmt: skip
        for call in getattr(message, "tool_calls", None) or ():
            self.reporter.tool_call(call.get("id"), call.get("name"),
                                    to_jsonable(call.get("args")), step=step,
                                    framework={"node": node})  # fmt: skip
        meta_usage = getattr(message, "usage_metadata", None)
        if meta_usage:
            model = (getattr(message, "response_metadata", None) or {}).get("model_name")
            self.usage = add_usage(
                self.usage,
                input_tokens=meta_usage.get("input_tokens"),
                output_tokens=meta_usage.get("output_tokens"),
                total_tokens=meta_usage.get("total_tokens"),
                model=model,
            )


_ROLES = {"AIMessage": "assistant", "HumanMessage": "user", "SystemMessage": "system"}
