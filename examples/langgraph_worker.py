"""A LangGraph agent as a fleet worker, offline: python examples/langgraph_worker.py

Builds a two-node graph (research calls a `search` tool, write drafts) on LangChain's fake chat
model, submits a one-step run to an embedded fleet (SQLite in a temporary directory, or
$FLEETFORGE_STORE), and lets a Worker lease the task and complete it through the adapter.
"""

from __future__ import annotations

import tempfile
from typing import Any

import anyio
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from fleetforge.adapters.langgraph import LangGraphAdapter
from fleetforge.client import FleetClient
from fleetforge.worker import Worker


@tool
def search(q: str) -> str:
    """Search the knowledge base."""
    return f"results for {q}"


def build_graph(topic: str) -> Any:
    call = {"name": "search", "args": {"q": topic}, "id": "call_1"}
    researcher = FakeMessagesListChatModel(responses=[AIMessage(content="", tool_calls=[call])])
    writer = FakeMessagesListChatModel(responses=[AIMessage(content=f"draft about {topic}")])

    def research(state: MessagesState) -> dict[str, Any]:
        asked = researcher.invoke(state["messages"])
        found = [ToolMessage(search.invoke(c["args"]), tool_call_id=c["id"], name=c["name"])
                 for c in asked.tool_calls]  # fmt: skip
        return {"messages": [asked, *found]}

    def write(state: MessagesState) -> dict[str, Any]:
        return {"messages": [writer.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("research", research)
    graph.add_node("write", write)
    graph.add_edge(START, "research")
    graph.add_edge("research", "write")
    graph.add_edge("write", END)
    return graph.compile(checkpointer=InMemorySaver())


async def main(store: str) -> Any:
    spec = {"name": "langgraph-example", "seed": 1, "inputs": {"topic": "leases"},
            "steps": [{"id": "draft", "type": "agent", "agent": "writer",
                       "inputs": {"topic": {"from": "inputs.topic"}}}]}  # fmt: skip
    agent = LangGraphAdapter(
        build_graph("leases"),
        inputs=lambda given: {"messages": [HumanMessage(f"write about {given['topic']}")]},
    )
    async with FleetClient.local(store, artifacts=tempfile.mkdtemp()) as fleet:
        run = await fleet.submit_run(spec)
        await Worker(fleet, agent.as_handler(), worker_id="langgraph-worker").run(
            stop_when_idle=True
        )
        done = await fleet.get_run(run.run_id)
    print(f"{done.run_id} {done.status}: {done.outputs['draft']}")
    return done.outputs["draft"]


if __name__ == "__main__":
    import os

    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(main, os.environ.get("FLEETFORGE_STORE") or f"sqlite:///{tmp}/fleet.db")
