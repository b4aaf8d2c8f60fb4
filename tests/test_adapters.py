"""Framework adapters, offline with each framework's own fake model: the conformance scenario,
the error path, one payload shape and one message per reply, and a real fleet (in process, over
MCP stdio and HTTP) running each as a Worker."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from fleetforge.adapter import AgentRunAdapter, AgentRunContext, MemorySink
from fleetforge.adapters._base import FrameworkAdapter
from fleetforge.adapters.payloads import PAYLOAD_KEYS
from fleetforge.client import FleetClient
from fleetforge.contracts import parse_envelope
from fleetforge.testing.adapter_conformance import (
    OUTPUT,
    TOPIC,
    assert_conforms,
    assert_error_path,
    payload_keys,
    search,
)
from fleetforge.testing.fake_models import REPLAY_MODEL_INFO, scripted_crewai_llm
from fleetforge.worker import Worker

from .test_mcp_transports import FLEETFORGE, fleet_env, http_server

pytestmark = pytest.mark.anyio


# ── the scenario in each framework ──────────────────────────────────────────────────────────


def langgraph_scenario(*, fail: bool = False, latency: float = 0.0) -> FrameworkAdapter:
    """The scenario on LangGraph; ``latency``: seconds each model call takes (benchmarks)."""
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, MessagesState, StateGraph

    from fleetforge.adapters.langgraph import LangGraphAdapter

    search_tool = tool(search)
    call = {"name": "search", "args": {"q": TOPIC}, "id": "call_1"}
    sleep = latency or None
    researcher = FakeMessagesListChatModel(
        responses=[AIMessage(content="", tool_calls=[call])], sleep=sleep
    )
    writer = FakeMessagesListChatModel(responses=[AIMessage(content=OUTPUT)], sleep=sleep)

    def research(state: MessagesState) -> dict[str, Any]:
        asked = researcher.invoke(state["messages"])
        answers = [
            ToolMessage(content=search_tool.invoke(c["args"]), tool_call_id=c["id"], name=c["name"])
            for c in asked.tool_calls
        ]
        return {"messages": [asked, *answers]}

    def write(state: MessagesState) -> dict[str, Any]:
        if fail:
            raise RuntimeError("the writer broke")
        return {"messages": [writer.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("research", research)
    graph.add_node("write", write)
    graph.add_edge(START, "research")
    graph.add_edge("research", "write")
    graph.add_edge("write", END)
    return LangGraphAdapter(
        graph.compile(checkpointer=InMemorySaver()),
        inputs=lambda i: {"messages": [HumanMessage(f"write about {i['topic']}")]},
    )


def autogen_scenario(*, fail: bool = False, latency: float = 0.0) -> FrameworkAdapter:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_agentchat.conditions import MaxMessageTermination
    from autogen_agentchat.teams import RoundRobinGroupChat
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, RequestUsage
    from autogen_ext.models.replay import ReplayChatCompletionClient

    from fleetforge.adapters.autogen import AutoGenAdapter

    info = REPLAY_MODEL_INFO

    class Replay(ReplayChatCompletionClient):  # type: ignore[misc]
        async def create(self, *args: Any, **kwargs: Any) -> Any:
            if latency:
                await anyio.sleep(latency)
            return await super().create(*args, **kwargs)

    asked = CreateResult(
        finish_reason="function_calls",
        content=[FunctionCall(id="call_1", name="search", arguments=json.dumps({"q": TOPIC}))],
        usage=RequestUsage(prompt_tokens=10, completion_tokens=5),
        cached=False,
    )
    researcher = AssistantAgent(
        "researcher",
        model_client=Replay([asked], model_info=info),
        tools=[search],
    )
    writer = AssistantAgent(
        "writer",
        model_client=Replay([] if fail else [OUTPUT], model_info=info),
    )
    team = RoundRobinGroupChat([researcher, writer], termination_condition=MaxMessageTermination(3),
                               emit_team_events=True)  # fmt: skip
    return AutoGenAdapter(team, task=lambda i: f"write about {i['topic']}")


def crewai_scenario(*, fail: bool = False, latency: float = 0.0) -> FrameworkAdapter:
    from fleetforge.adapters.crewai import CrewAIAdapter, import_crewai

    crewai = import_crewai()
    from crewai.tools import BaseTool

    class Search(BaseTool):  # type: ignore[misc]
        name: str = "search"
        description: str = "Search the knowledge base."

        def _run(self, q: str) -> str:
            return search(q)

    researcher = crewai.Agent(
        role="researcher", goal="find facts", backstory="careful", verbose=False,
        llm=scripted_crewai_llm([
            f'Thought: I should search\nAction: search\nAction Input: {{"q": "{TOPIC}"}}',
            f"Thought: I know enough\nFinal Answer: results for {TOPIC}",
        ], delay=latency),
        tools=[Search()],
    )  # fmt: skip
    writer = crewai.Agent(
        role="writer", goal="write", backstory="clear", verbose=False,
        llm=scripted_crewai_llm([] if fail else [f"Thought: done\nFinal Answer: {OUTPUT}"],
                                delay=latency),
    )  # fmt: skip
    tasks = [
        crewai.Task(description="research {topic}", expected_output="notes", agent=researcher),
        crewai.Task(description="write about {topic}", expected_output="a draft", agent=writer),
    ]
    crew = crewai.Crew(agents=[researcher, writer], tasks=tasks, verbose=False)
    return CrewAIAdapter(crew)


SCENARIOS: dict[str, Callable[..., FrameworkAdapter]] = {
    "langgraph": langgraph_scenario,
    "autogen": autogen_scenario,
    "crewai": crewai_scenario,
}


@pytest.fixture(autouse=True, scope="module")
def _crewai_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Importing crewai writes a key under $HOME and CrewAI stores memory under its storage
    dir: keep both in a temporary directory."""
    home = tmp_path_factory.mktemp("crewai-home")
    saved = {k: os.environ.get(k) for k in ("HOME", "CREWAI_STORAGE_DIR")}
    os.environ.update(HOME=str(home), CREWAI_STORAGE_DIR=str(home / "storage"))
    from fleetforge.adapters.crewai import import_crewai

    import_crewai()
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


CONTEXT = AgentRunContext(run_id="run_1", step_id="draft", task_id="run_1.draft", seed=4,
                          inputs={"topic": TOPIC})  # fmt: skip


# ── conformance ─────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("framework", sorted(SCENARIOS))
async def test_conformance_scenario(framework: str) -> None:
    sink = MemorySink()
    adapter = AgentRunAdapter(CONTEXT, sink)
    output = await SCENARIOS[framework]().run(adapter)
    assert output == OUTPUT
    assert_conforms(sink.envelopes)
    assert sink.envelopes[0].adapter.name == framework


async def test_every_framework_reports_with_the_same_payload_keys() -> None:
    keys = {}
    for framework, build in SCENARIOS.items():
        sink = MemorySink()
        await build().run(AgentRunAdapter(CONTEXT, sink))
        keys[framework] = payload_keys(sink.envelopes)
    common = {"step_started", "step_finished", "message", "tool_call", "tool_result"}
    for event in common:
        found = {framework: keys[framework].get(event) for framework in SCENARIOS}
        assert all(k == {PAYLOAD_KEYS[event]} for k in found.values()), (event, found)
    steps = [e for e in sink.envelopes if getattr(e, "event", None) == "step_started"]
    assert [(s.payload["step"], s.payload["kind"]) for s in steps] == [(1, "task"), (2, "task")]  # type: ignore[attr-defined]


@pytest.mark.parametrize("framework", sorted(SCENARIOS))
async def test_error_path(framework: str) -> None:
    sink = MemorySink()
    adapter = AgentRunAdapter(CONTEXT, sink)
    with pytest.raises(Exception) as caught:  # noqa: PT011 - each framework raises its own
        await SCENARIOS[framework](fail=True).run(adapter)
    assert_error_path(sink.envelopes)
    assert sink.envelopes[-1].failure_kind == "agent_error"  # type: ignore[attr-defined]
    assert str(caught.value)


def test_missing_framework_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from fleetforge.adapters._base import require
    from fleetforge.errors import UsageError

    real_import = builtins.__import__

    def no_langgraph(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("not_installed_framework"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_langgraph)
    with pytest.raises(UsageError, match=r'pip install "fleetforge\[langgraph\]"'):
        require("not_installed_framework", "langgraph")


# ── a real fleet ────────────────────────────────────────────────────────────────────────────


@asynccontextmanager
async def fleet(transport: str, tmp_path: Path) -> AsyncIterator[FleetClient]:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    if transport == "local":
        async with FleetClient.local(url, artifacts=tmp_path / "artifacts") as client:
            yield client
    elif transport == "stdio":
        async with FleetClient.stdio([FLEETFORGE, "mcp"], env=fleet_env(tmp_path, url)) as client:
            yield client
    else:
        with http_server(fleet_env(tmp_path, url), "--no-auth") as base:
            async with FleetClient.connect(base) as client:
                yield client


@pytest.mark.parametrize("transport", ["local", "stdio", "http"])
@pytest.mark.parametrize("framework", sorted(SCENARIOS))
async def test_worker_runs_the_adapter_on_a_fleet(
    framework: str, transport: str, tmp_path: Path
) -> None:
    spec = {"name": f"{framework}-run", "seed": 4, "inputs": {"topic": TOPIC},
            "steps": [{"id": "draft", "type": "agent", "agent": framework,
                       "inputs": {"topic": {"from": "inputs.topic"}}}]}  # fmt: skip
    async with fleet(transport, tmp_path) as client:
        run = await client.submit_run(spec)
        stats = await Worker(client, SCENARIOS[framework]().as_handler(), worker_id="w").run(
            stop_when_idle=True
        )
        done = await client.get_run(run.run_id)
        events = await client.run_events(run.run_id, limit=1000)
    assert stats.completed == 1
    assert done.outputs == {"draft": OUTPUT}
    envelopes = [
        parse_envelope(e.data.envelope.model_dump(mode="json"))  # type: ignore[attr-defined]
        for e in events
        if e.type == "task_event"
    ]
    assert_conforms(envelopes)
    assert {e.adapter.name for e in envelopes} == {framework}


async def test_concurrent_crewai_kickoffs_do_not_cross_events() -> None:

    runs = [(crewai_scenario(), MemorySink()) for _ in range(3)]

    async def one(framework: FrameworkAdapter, sink: MemorySink, n: int) -> None:
        context = AgentRunContext(run_id=f"run_{n}", step_id="draft", task_id=f"run_{n}.draft",
                                  seed=4, inputs={"topic": TOPIC})  # fmt: skip
        await framework.run(AgentRunAdapter(context, sink))

    async with anyio.create_task_group() as tg:
        for n, (framework, sink) in enumerate(runs):
            tg.start_soon(one, framework, sink, n)
    for _, sink in runs:
        assert_conforms(sink.envelopes)  # exactly one tool call and two steps each


async def test_tasks_on_one_autogen_agent_do_not_see_each_other() -> None:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_ext.models.replay import ReplayChatCompletionClient

    from fleetforge.adapters.autogen import AutoGenAdapter

    replies = ReplayChatCompletionClient(["one", "two", "three"], model_info=REPLAY_MODEL_INFO)  # type: ignore[arg-type]
    agent = AssistantAgent("a", model_client=replies)
    adapter = AutoGenAdapter(agent, task=lambda i: i["q"])
    outputs: list[str] = []

    async def ask(n: int) -> None:
        context = AgentRunContext(run_id="r", step_id="s", task_id=f"r.s{n}", seed=4,
                                  inputs={"q": f"question {n}"})  # fmt: skip
        outputs.append(await adapter.run(AgentRunAdapter(context, MemorySink())))

    await ask(0)
    async with anyio.create_task_group() as tg:  # at once: they take turns on the one agent
        tg.start_soon(ask, 1)
        tg.start_soon(ask, 2)
    assert sorted(outputs) == ["one", "three", "two"]
    seen = [m.content for m in await agent.model_context.get_messages()]
    assert len(seen) == 2  # the last task's question and answer, nothing of the others
    assert seen[0] in {"question 1", "question 2"}


async def test_adapters_given_a_factory_build_one_framework_object_per_task() -> None:

    from fleetforge.adapters.autogen import AutoGenAdapter
    from fleetforge.adapters.crewai import CrewAIAdapter

    async def autogen_team() -> Any:  # an async factory
        return autogen_scenario().agent  # type: ignore[attr-defined]

    adapters = {
        "autogen": AutoGenAdapter(autogen_team, task=lambda i: f"write about {i['topic']}"),
        "crewai": CrewAIAdapter(lambda: crewai_scenario().crew),  # type: ignore[attr-defined]
    }
    sinks = {(name, n): MemorySink() for name in adapters for n in range(3)}

    async def one(name: str, n: int) -> None:
        context = AgentRunContext(run_id=f"run_{n}", step_id="draft", task_id=f"run_{n}.draft",
                                  seed=4, inputs={"topic": TOPIC})  # fmt: skip
        assert await adapters[name].run(AgentRunAdapter(context, sinks[name, n])) == OUTPUT

    async with anyio.create_task_group() as tg:
        for name, n in sinks:
            tg.start_soon(one, name, n)
    for sink in sinks.values():
        assert_conforms(sink.envelopes)


def test_an_adapter_refuses_what_it_cannot_run() -> None:
    from fleetforge.adapters.autogen import AutoGenAdapter
    from fleetforge.errors import UsageError

    with pytest.raises(UsageError, match="AgentChat agent or team"):
        AutoGenAdapter(42)


@pytest.mark.parametrize("name", ["langgraph_worker", "autogen_worker", "crewai_worker"])
async def test_examples_complete_a_task_offline(name: str, tmp_path: Path) -> None:
    import importlib.util

    path = Path(__file__).parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    store = f"sqlite:///{tmp_path / 'fleet.db'}"
    output = await module.main(store)
    assert output == OUTPUT
    async with FleetClient.local(store, artifacts=tmp_path / "artifacts") as client:
        [run] = (await client.list_runs()).runs
        events = await client.run_events(run.run_id, limit=1000)
    envelopes = [e.data.envelope for e in events if e.type == "task_event"]  # type: ignore[attr-defined]
    assert [e.seq for e in envelopes] == list(range(len(envelopes)))  # every one, in order
    assert (envelopes[0].kind, envelopes[-1].kind) == ("start", "complete")


async def test_a_retried_langgraph_task_resumes_from_its_last_checkpoint() -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    from fleetforge.adapters.langgraph import LangGraphAdapter

    class State(TypedDict, total=False):
        topic: str
        notes: str
        draft: str

    calls: list[str] = []

    def research(state: State) -> State:
        calls.append("research")
        return {"notes": f"results for {state['topic']}"}

    def write(state: State) -> State:
        calls.append("write")
        if calls.count("write") == 1:
            raise ConnectionError("model endpoint went away")  # a transient failure
        return {"draft": f"draft from {state['notes']}"}

    graph = StateGraph(State)
    graph.add_node("research", research)
    graph.add_node("write", write)
    graph.add_edge(START, "research")
    graph.add_edge("research", "write")
    graph.add_edge("write", END)
    agent = LangGraphAdapter(graph.compile(checkpointer=InMemorySaver()),
                             output=lambda state: state["draft"])  # fmt: skip

    first, second = MemorySink(), MemorySink()
    with pytest.raises(ConnectionError):
        await agent.run(AgentRunAdapter(CONTEXT, first))
    assert first.envelopes[-1].failure_kind == "transient"  # type: ignore[attr-defined]
    retry = AgentRunContext(**{**vars(CONTEXT), "attempt": 2})
    output = await agent.run(AgentRunAdapter(retry, second))
    assert output == f"draft from results for {TOPIC}"
    assert calls == ["research", "write", "write"]  # research was not run again
    resumed = [e for e in second.envelopes if getattr(e, "event", None) == "custom"]
    assert resumed[0].payload["type"] == "resumed"  # type: ignore[attr-defined]
    assert resumed[0].payload["data"]["next"] == ["write"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", ["local", "http"])
async def test_an_interrupted_langgraph_task_pauses_the_run_until_resumed_with_a_value(
    transport: str, tmp_path: Path
) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt
    from typing_extensions import TypedDict

    from fleetforge.adapters.langgraph import LangGraphAdapter

    class State(TypedDict, total=False):
        topic: str
        draft: str
        verdict: str

    def write(state: State) -> State:
        return {"draft": f"draft about {state['topic']}"}

    def review(state: State) -> State:
        answer = interrupt({"question": f"publish '{state['draft']}'?"})
        return {"verdict": f"{state['draft']}: {answer}"}

    graph = StateGraph(State)
    graph.add_node("write", write)
    graph.add_node("review", review)
    graph.add_edge(START, "write")
    graph.add_edge("write", "review")
    graph.add_edge("review", END)
    agent = LangGraphAdapter(graph.compile(checkpointer=InMemorySaver()),
                             output=lambda state: state["verdict"])  # fmt: skip
    spec = {"name": "reviewed", "seed": 4, "inputs": {"topic": TOPIC},
            "steps": [{"id": "draft", "type": "agent", "agent": "langgraph",
                       "inputs": {"topic": {"from": "inputs.topic"}}},
                      {"id": "after", "type": "agent", "agent": "langgraph",
                       "depends_on": ["draft"]}]}  # fmt: skip

    async def handler(task: Any) -> Any:
        if task.task.step_id == "after":
            return "next step ran"
        return await agent.as_handler()(task)

    async with fleet(transport, tmp_path) as client:
        run = await client.submit_run(spec)
        first = await Worker(client, handler, worker_id="w").run(stop_when_idle=True)
        paused = await client.get_run(run.run_id)
        second_idle = await Worker(client, handler, worker_id="w").run(stop_when_idle=True)
        resumed = await client.resume_run(run.run_id, value="yes")
        second = await Worker(client, handler, worker_id="w").run(stop_when_idle=True)
        done = await client.get_run(run.run_id)
        events = await client.run_events(run.run_id, limit=1000)
    assert (first.paused, first.failed, first.completed) == (1, 0, 0)
    assert paused.status == "paused"
    assert paused.steps[0].status == "waiting"
    assert second_idle.handled == 0  # nothing to lease while the run waits
    assert resumed.status == "running"
    assert second.completed == 2
    assert done.status == "completed"
    assert done.outputs == {"draft": f"draft about {TOPIC}: yes", "after": "next step ran"}
    [pause] = [e for e in events if e.type == "task_paused"]
    question = {"question": f"publish 'draft about {TOPIC}'?"}
    assert pause.data.waiting_for == [question]  # type: ignore[attr-defined]
    kinds = [
        (e.data.envelope.kind, getattr(e.data.envelope, "event", None))  # type: ignore[attr-defined]
        for e in events
        if e.type == "task_event"
    ]
    assert ("emit", "paused") in kinds
    resumes = [
        e.data.envelope.payload  # type: ignore[attr-defined]
        for e in events
        if e.type == "task_event" and getattr(e.data.envelope, "event", None) == "custom"  # type: ignore[attr-defined]
    ]
    assert resumes[0]["type"] == "resumed"
    assert resumes[0]["data"]["resume"] == "yes"
    assert resumes[0]["data"]["next"] == ["review"]


# ── one message per model reply ─────────────────────────────────────────────────────────────


def messages_of(sink: MemorySink) -> list[dict[str, Any]]:
    return [e.payload for e in sink.envelopes if getattr(e, "event", None) == "message"]  # type: ignore[attr-defined]


async def test_langgraph_reports_a_streamed_reply_as_one_message() -> None:
    import itertools

    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.graph import END, START, MessagesState, StateGraph

    from fleetforge.adapters.langgraph import LangGraphAdapter

    answer = " ".join("abcdefghijklmnopqrstuvwxy")  # 49 characters, streamed as 49 chunks
    model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(answer)]))

    def write(state: MessagesState) -> dict[str, Any]:
        reply = model.invoke(state["messages"])  # streams: the graph asks for messages
        return {"messages": [reply, AIMessage("a note", id="note-1")]}

    graph = StateGraph(MessagesState)
    graph.add_node("write", write)
    graph.add_edge(START, "write")
    graph.add_edge("write", END)
    agent = LangGraphAdapter(graph.compile(), inputs=lambda i: {"messages": [HumanMessage("go")]})
    sink = MemorySink()
    await agent.run(AgentRunAdapter(CONTEXT, sink))
    first, second = messages_of(sink)
    assert first["content"] == answer
    assert first["framework"]["chunks"] == len(answer)
    assert (first["role"], first["name"], first["step"]) == ("assistant", "write", 1)
    assert second["content"] == "a note"
    assert second["framework"]["chunks"] == 0
    assert sink.envelopes[-1].output == "a note"  # type: ignore[attr-defined]


async def test_autogen_reports_a_streamed_reply_as_one_message() -> None:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_ext.models.replay import ReplayChatCompletionClient

    from fleetforge.adapters.autogen import AutoGenAdapter

    answer = "one two three four five six seven eight nine ten"
    replies = ReplayChatCompletionClient([answer], model_info=REPLAY_MODEL_INFO)  # type: ignore[arg-type]
    agent = AssistantAgent("writer", model_client=replies, model_client_stream=True)
    sink = MemorySink()
    await AutoGenAdapter(agent, task=lambda i: "write").run(AgentRunAdapter(CONTEXT, sink))
    asked, said = messages_of(sink)
    assert (asked["role"], asked["content"], asked["step"]) == ("user", "write", None)
    assert (said["role"], said["name"], said["content"]) == ("assistant", "writer", answer)
    assert said["framework"]["chunks"] >= 10
