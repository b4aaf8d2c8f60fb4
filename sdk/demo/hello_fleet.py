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
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from fleetforge import armory
from fleetforge.client import FleetClient
from fleetforge.contracts import FleetArtifactRef, Run
from fleetforge.errors import ContractError, UsageError
from fleetforge.testing.fake_models import REPLAY_MODEL_INFO, scripted_crewai_llm
from fleetforge.worker import TaskRun, Worker

__all__ = [
    "SPEC_PATH",
    "DemoResult",
    "RealModel",
    "load_spec",
    "missing_extras",
    "run_hello_fleet",
    "team",
]

# the extras the four agents need, and a module of each that must be importable
_EXTRAS = {
    "langgraph": ("langgraph", "langchain_core"),
    "autogen": ("autogen_agentchat", "autogen_ext"),
    "crewai": ("crewai",),
}

SPEC_PATH = Path(__file__).with_name("hello_fleet.json")
_ANGLES = [
    "why an append-only log",
    "projections you can rebuild",
    "leases and fencing tokens",
    "receipts as proof of work",
    "replaying to debug",
    "scaling from SQLite to PostgreSQL",
]


@dataclass(frozen=True)
class RealModel:
    """An OpenAI-compatible chat model for every agent instead of the scripted ones: OpenAI
    itself (``OPENAI_API_KEY``), or any server that speaks its API (``OPENAI_BASE_URL``, e.g.
    a local Ollama or vLLM)."""

    name: str
    base_url: str | None = None
    api_key: str = "not-needed"

    @classmethod
    def from_env(cls, name: str, environ: Mapping[str, str] | None = None) -> RealModel:
        env = os.environ if environ is None else environ
        key, base = env.get("OPENAI_API_KEY"), env.get("OPENAI_BASE_URL")
        if not key and not base:
            raise UsageError(
                f"--model {name} needs OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (a server "
                "speaking the OpenAI API, e.g. http://127.0.0.1:11434/v1 for Ollama)"
            )
        return cls(name=name, base_url=base, api_key=key or "not-needed")

    def openai(self) -> Any:
        from openai import AsyncOpenAI

        return AsyncOpenAI(api_key=self.api_key, base_url=self.base_url)


def _loose_json(text: str, fallback: Any) -> Any:
    """The JSON object in a model's reply (fenced or not), else ``fallback``."""
    start, end = text.find("{"), text.rfind("}")
    try:
        value = json.loads(text[start : end + 1]) if start >= 0 < end else None
    except json.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else fallback


def missing_extras() -> list[str]:
    """The extras (langgraph, autogen, crewai) whose frameworks are not installed here; the
    demo needs all three. Looks the modules up without importing them."""
    import importlib.util

    def found(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    return [extra for extra, modules in _EXTRAS.items() if not all(map(found, modules))]


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


async def planner(task: TaskRun, model: RealModel | None = None) -> Any:
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, MessagesState, StateGraph

    from fleetforge.adapters.langgraph import LangGraphAdapter

    topic = str(task.inputs["topic"])
    sections = _rng(task).sample(_ANGLES, 3)
    if model is not None:
        async with model.openai() as openai_client:
            reply = await openai_client.chat.completions.create(
                model=model.name,
                response_format={"type": "json_object"},
                messages=[
                    {"role": "system", "content": 'Answer only JSON: {"sections": [three short '
                     'section titles]} for a short article.'},
                    {"role": "user", "content": f"Topic: {topic}"},
                ],
            )  # fmt: skip
        chosen = _loose_json(reply.choices[0].message.content or "", {}).get("sections")
        if isinstance(chosen, list) and len(chosen) >= 3:
            sections = [str(s) for s in chosen[:3]]
    outline = f"# {topic.capitalize()}\n" + "".join(f"\n## {s}" for s in sections)
    plan = {"outline": outline, "sections": sections}
    save = {"name": "workspace_write", "args": {"path": "outline.md", "content": outline},
            "id": "call_outline"}  # fmt: skip
    brain = FakeMessagesListChatModel(  # the graph's model turns, around the plan above
        responses=[AIMessage(content="", tool_calls=[save]), AIMessage(content=json.dumps(plan))]
    )
    async with await _workspace(task) as kit:
        tools = {t.name: t for t in kit.tools("langgraph")}

        async def think(state: Any) -> dict[str, Any]:
            return {"messages": [await brain.ainvoke(state["messages"])]}

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


async def researcher(task: TaskRun, model: RealModel | None = None) -> Any:
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
                id="call_read", name="workspace_read", arguments=json.dumps({"path": "outline.md"})
            )
        ],
        usage=RequestUsage(prompt_tokens=40, completion_tokens=12),
        cached=False,
    )
    info = REPLAY_MODEL_INFO
    client: Any = ReplayChatCompletionClient([read, json.dumps({"facts": facts})], model_info=info)  # type: ignore[arg-type]
    if model is not None:
        from autogen_ext.models.openai import OpenAIChatCompletionClient

        where = {"base_url": model.base_url} if model.base_url else {}
        client = OpenAIChatCompletionClient(
            model=model.name,
            api_key=model.api_key,
            model_info=info,  # type: ignore[arg-type]
            **where,  # type: ignore[arg-type]
        )
    async with await _workspace(task) as kit:
        agent = AssistantAgent(
            "researcher", model_client=client, tools=kit.tools("autogen"), reflect_on_tool_use=True,
            system_message='Read outline.md with workspace_read, then answer only JSON: '
            '{"facts": {"<section>": ["fact", "fact"]}}.',
        )  # fmt: skip
        adapter = AutoGenAdapter(
            agent,
            task=lambda i: f"Collect facts about {i['topic']} for: {', '.join(i['sections'])}",
            output=lambda result: _loose_json(
                str(result.messages[-1].content),
                {"facts": {"notes": str(result.messages[-1].content)}},
            ),
        )
        try:
            return await adapter.run(task.adapter, task.inputs)
        finally:
            await client.close()


# ── writer: CrewAI ──────────────────────────────────────────────────────────────────────────


async def writer(task: TaskRun, model: RealModel | None = None) -> Any:
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

    action = json.dumps({"path": "draft.md", "content": draft})
    llm = scripted_crewai_llm([
        f"Thought: save the draft\nAction: workspace_write\nAction Input: {action}",
        "Thought: saved\nFinal Answer: draft.md",
    ])  # fmt: skip
    if model is not None:
        llm = crewai.LLM(model=f"openai/{model.name}", api_key=model.api_key,
                         base_url=model.base_url)  # fmt: skip
    async with await _workspace(task) as kit:
        agent = crewai.Agent(role="writer", goal="write the article", backstory="concise",
                             llm=llm, tools=kit.tools("crewai"), verbose=False)  # fmt: skip
        job = crewai.Task(
            description="Write a short markdown article from this outline and notes, keeping "
            "its '# ' title and '## ' sections, save it with workspace_write as draft.md and "
            f"answer draft.md.\n\nOutline:\n{outline}\n\nNotes:\n{json.dumps(facts)}",
            expected_output="the path of the draft", agent=agent,
        )  # fmt: skip
        crew = crewai.Crew(agents=[agent], tasks=[job], verbose=False)
        crew_adapter = CrewAIAdapter(crew, inputs=lambda i: {"topic": i.get("style", "")})
        path = await crew_adapter.run(task.adapter, complete=False)
        try:
            written = await kit.call_text("workspace.read", {"path": "draft.md"})
        except ContractError:  # a real model may answer the draft instead of saving it
            written = str(path) if "# " in str(path) else draft
            await kit.call_text("workspace.write", {"path": "draft.md", "content": written})
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
    return {"approved": len(headings) >= 3, "sections": headings}


# ── running the team ────────────────────────────────────────────────────────────────────────


def team(model: RealModel | None = None) -> dict[str, Callable[[TaskRun], Any | Awaitable[Any]]]:
    """The four handlers by role; with ``model``, the agents use it instead of scripts."""
    return {
        "planner": partial(planner, model=model),
        "researcher": partial(researcher, model=model),
        "writer": partial(writer, model=model),
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
    model: RealModel | None = None,
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
        for role, handler in team(model).items()
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
