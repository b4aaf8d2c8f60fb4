"""Hello Fleet: a four-agent team on one fleet, offline, deterministic for a given seed.

- **planner** (LangGraph): a scripted chat model outlines the topic, saves the outline through the
  ``workspace`` pack (``workspace.write``) and answers ``{outline, sections}``;
- **researcher** (AutoGen): reads the outline back (``workspace.read``) and answers ``{facts}``;
- **writer** (CrewAI): drafts the article, writes ``draft.md`` through ``workspace.write`` and
  stores it in the content-addressed artifact store;
- **reviewer** (plain Python): checks the draft covers every section; its receipt is scored by
  the step's ``json_schema`` scorer.

Each agent runs on its own :class:`~fleetforge.worker.Worker`, leasing its step's task by role,
and opens the ``workspace`` pack with its own grant for each task. The scripted models choose
their words from (seed, step), so a seed always gives the same run.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from fleetforge import armory
from fleetforge.client import FleetClient
from fleetforge.contracts import FleetArtifactRef, Run
from fleetforge.worker import TaskRun, Worker

__all__ = ["SPEC_PATH", "DemoResult", "load_spec", "run_hello_fleet"]

SPEC_PATH = Path(__file__).with_name("hello_fleet.json")
_ANGLES = [
    "why an append-only log",
    "projections you can rebuild",
    "leases and fencing tokens",
    "receipts as proof of work",
    "replaying to debug",
    "scaling from SQLite to PostgreSQL",
]


def load_spec() -> dict[str, Any]:
    """The Hello Fleet run spec (a copy ships in examples/hello_fleet/run_spec.json)."""
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


def _rng(task: TaskRun) -> random.Random:
    return random.Random(f"{task.task.seed}:{task.task.step_id}")


async def _workspace(task: TaskRun) -> Any:
    grant = list(task.task.worker.tools) or ["workspace.*"]
    return armory.open([armory.get_pack("workspace")], grant=grant, recorder=task.adapter)


# ── planner: LangGraph ──────────────────────────────────────────────────────────────────────


async def planner(task: TaskRun) -> Any:
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, MessagesState, StateGraph

    from fleetforge.adapters.langgraph import LangGraphAdapter

    topic = str(task.inputs["topic"])
    sections = _rng(task).sample(_ANGLES, 3)
    outline = f"# {topic.capitalize()}\n" + "".join(f"\n## {s}" for s in sections)
    plan = {"outline": outline, "sections": sections}
    save = {"name": "workspace.write", "args": {"path": "outline.md", "content": outline},
            "id": "call_outline"}  # fmt: skip
    model = FakeMessagesListChatModel(
        responses=[AIMessage(content="", tool_calls=[save]), AIMessage(content=json.dumps(plan))]
    )
    async with await _workspace(task) as kit:
        tools = {t.name: t for t in kit.tools("langgraph")}

        async def think(state: Any) -> dict[str, Any]:
            return {"messages": [await model.ainvoke(state["messages"])]}

        async def act(state: Any) -> dict[str, Any]:
            calls = getattr(state["messages"][-1], "tool_calls", None) or []
            results = [
                ToolMessage(str(await tools[c["name"]].ainvoke(c["args"])), tool_call_id=c["id"],
                            name=c["name"])
                for c in calls
            ]  # fmt: skip
            return {"messages": results}

        def route(state: Any) -> str:
            return "act" if getattr(state["messages"][-1], "tool_calls", None) else END

        graph = StateGraph(MessagesState)
        graph.add_node("think", think)
        graph.add_node("act", act)
        graph.add_edge(START, "think")
        graph.add_conditional_edges("think", route, ["act", END])
        graph.add_edge("act", "think")
        agent = LangGraphAdapter(
            graph.compile(checkpointer=InMemorySaver()),
            inputs=lambda i: {"messages": [HumanMessage(f"Outline an article about {i['topic']}")]},
            output=lambda state: json.loads(state["messages"][-1].content),
        )
        return await agent.run(task.adapter, task.inputs)


# ── researcher: AutoGen ─────────────────────────────────────────────────────────────────────


async def researcher(task: TaskRun) -> Any:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, RequestUsage
    from autogen_ext.models.replay import ReplayChatCompletionClient

    from fleetforge.adapters.autogen import AutoGenAdapter

    sections = list(task.inputs["sections"])
    rng = _rng(task)
    facts = {s: [f"{s}: fact {rng.randint(1, 99)}" for _ in range(2)] for s in sections}
    read = CreateResult(
        finish_reason="function_calls",
        content=[
            FunctionCall(
                id="call_read", name="workspace.read", arguments=json.dumps({"path": "outline.md"})
            )
        ],
        usage=RequestUsage(prompt_tokens=40, completion_tokens=12),
        cached=False,
    )
    info = {"vision": False, "function_calling": True, "json_output": False,
            "family": "unknown", "structured_output": False}  # fmt: skip
    client = ReplayChatCompletionClient([read, json.dumps({"facts": facts})], model_info=info)  # type: ignore[arg-type]
    async with await _workspace(task) as kit:
        agent = AssistantAgent(
            "researcher", model_client=client, tools=kit.tools("autogen"), reflect_on_tool_use=True
        )
        adapter = AutoGenAdapter(
            agent,
            task=lambda i: f"Collect facts about {i['topic']} for: {', '.join(i['sections'])}",
            output=lambda result: json.loads(result.messages[-1].content),
        )
        return await adapter.run(task.adapter, task.inputs)


# ── writer: CrewAI ──────────────────────────────────────────────────────────────────────────


async def writer(task: TaskRun) -> Any:
    from fleetforge.adapters.crewai import CrewAIAdapter, import_crewai

    crewai = import_crewai()
    outline = str(task.inputs["outline"])
    notes = task.inputs.get("notes") or {}
    facts = notes.get("facts", {}) if isinstance(notes, dict) else {}
    lines = outline.splitlines()
    body = []
    for line in lines:
        body.append(line)
        if line.startswith("## "):
            body.extend(f"- {fact}" for fact in facts.get(line[3:], []))
    draft = "\n".join(body) + "\n"

    class ScriptedLLM(crewai.BaseLLM):  # type: ignore[misc, name-defined]
        def __init__(self, replies: list[str]) -> None:
            super().__init__(model="scripted-writer")
            self._replies = list(replies)

        def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
            return self._replies.pop(0)

        def get_context_window_size(self) -> int:
            return 8192

    action = json.dumps({"path": "draft.md", "content": draft})
    llm = ScriptedLLM([
        f"Thought: save the draft\nAction: workspace.write\nAction Input: {action}",
        "Thought: saved\nFinal Answer: draft.md",
    ])  # fmt: skip
    async with await _workspace(task) as kit:
        agent = crewai.Agent(role="writer", goal="write the article", backstory="concise",
                             llm=llm, tools=kit.tools("crewai"), verbose=False)  # fmt: skip
        job = crewai.Task(description="Write the article about {topic}.",
                          expected_output="the path of the draft", agent=agent)  # fmt: skip
        crew = crewai.Crew(agents=[agent], tasks=[job], verbose=False)
        crew_adapter = CrewAIAdapter(crew, inputs=lambda i: {"topic": i.get("style", "")})
        path = await crew_adapter.run(task.adapter, complete=False)
        written = await kit.call_text("workspace.read", {"path": str(path).strip()})
    stored = await task.client.put_artifact(
        written.encode(), media_type="text/markdown", name="draft.md", kind="report",
        run_id=task.task.run_id, step_id=task.task.step_id, task_id=task.task.task_id,
    )  # fmt: skip
    task.artifacts.append(FleetArtifactRef.model_validate(stored.model_dump(mode="json")))
    return {"draft": written, "path": "draft.md", "artifact": stored.digest}


# ── reviewer: plain Python ──────────────────────────────────────────────────────────────────


def reviewer(task: TaskRun) -> Any:
    draft = str(task.inputs["draft"])
    headings = [line[3:] for line in draft.splitlines() if line.startswith("## ")]
    task.adapter.emit(
        "message", {"role": "reviewer", "content": f"checked {len(headings)} sections"}
    )
    return {"approved": len(headings) == 3, "sections": headings}


# ── running the team ────────────────────────────────────────────────────────────────────────

ROLES: dict[str, Callable[[TaskRun], Any | Awaitable[Any]]] = {
    "planner": planner,
    "researcher": researcher,
    "writer": writer,
    "reviewer": reviewer,
}


@dataclass
class DemoResult:
    """What a Hello Fleet run did."""

    run: Run
    seconds: float
    steps: list[dict[str, Any]] = field(default_factory=list)


async def run_hello_fleet(
    client: FleetClient,
    *,
    spec: dict[str, Any] | None = None,
    on_change: Callable[[Run], None] | None = None,
    timeout_s: float = 120.0,
) -> DemoResult:
    """Submit Hello Fleet and run its four workers until the run is final."""
    started = time.monotonic()
    run = await client.submit_run(spec or load_spec())
    workers = [
        Worker(
            client,
            handler,
            worker_id=f"hello-{role}",
            capabilities={
                "role": role,
                "tools": ["workspace.*"],
                "trust_level": "internal",
                "frameworks": [FRAMEWORKS_BY_ROLE[role]],
            },
            lease_seconds=60,
            adapter_name=FRAMEWORKS_BY_ROLE[role],
            poll_seconds=0.2,
        )
        for role, handler in ROLES.items()
    ]
    last: dict[str, str] = {}
    async with anyio.create_task_group() as tg:
        for worker in workers:
            tg.start_soon(worker.run)
        with anyio.fail_after(timeout_s):
            while True:
                run = await client.get_run(run.run_id)
                now = {s.step_id: str(s.status) for s in run.steps} | {"": str(run.status)}
                if now != last and on_change is not None:
                    on_change(run)
                last = now
                if run.status.is_final:
                    break
                await anyio.sleep(0.1)
        for worker in workers:
            worker.stop()
    return DemoResult(run=run, seconds=time.monotonic() - started)


FRAMEWORKS_BY_ROLE = {"planner": "langgraph", "researcher": "autogen", "writer": "crewai",
                      "reviewer": "python"}  # fmt: skip
