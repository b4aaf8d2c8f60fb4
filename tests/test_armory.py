"""The armory against real MCP servers: manifests, grants, refusals, recording, cleanup, start
failures, secrets; and each framework calling a pack tool with its fake model."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from fleetforge import armory
from fleetforge.adapter import AgentRunAdapter, AgentRunContext, MemorySink
from fleetforge.errors import ContractError, FleetForgeError, ForbiddenError
from fleetforge.testing.fake_models import REPLAY_MODEL_INFO, scripted_crewai_llm

pytestmark = pytest.mark.anyio

SERVER = str(Path(__file__).with_name("mcp_test_server.py"))


def pack(**fields: Any) -> armory.Pack:
    body = {
        "name": "testpack",
        "version": "1",
        "prefix": "t.",
        "servers": [{"name": "s", "command": sys.executable, "args": [SERVER]}],
        "tools": {"requires": {"fail": "t.danger", "*": "t.safe"}},
    } | fields
    return armory.parse_pack(body, source="test")


def children() -> set[int]:
    """PIDs of this process's live child processes (from /proc)."""
    mine = str(os.getpid())
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if parts[1] == mine and parts[0] != "Z":
            found.add(int(stat.parent.name))
    return found


# ── manifests ───────────────────────────────────────────────────────────────────────────────


def test_a_bad_manifest_names_each_problem_by_its_toml_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "9bad"\nversion = "1"\n\n[[servers]]\nname = "a"\n\n[[servers]]\n'
        'name = "b"\nurl = "ftp://nope"\n\n[tools]\nincluded = ["x"]\n'
    )
    with pytest.raises(ContractError) as caught:
        armory.load_pack(bad)
    where = {d.pointer for d in caught.value.details}
    assert {"name", "servers[0].command", "servers[1].url", "tools.included"} <= where
    bad.write_text("name = [")
    with pytest.raises(ContractError, match="not valid TOML"):
        armory.load_pack(bad)


def test_builtin_and_home_packs(tmp_path: Path) -> None:
    assert {"fleet", "workspace"} <= set(armory.builtin_packs())
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "mine.toml").write_text(
        f'name = "mine"\nversion = "2"\n[[servers]]\nname = "s"\ncommand = "{sys.executable}"\n'
    )
    found = armory.find_packs(home=tmp_path)
    assert found["mine"].manifest.version == "2"
    assert armory.get_pack("mine", home=tmp_path).source.endswith("mine.toml")


# ── a kit ───────────────────────────────────────────────────────────────────────────────────


async def test_grant_filtering_refusals_and_recording() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    async with armory.open(
        [pack()], grant=["t.safe"], recorder=lambda k, d: seen.append((k, d))
    ) as kit:
        names = {t.name: t.allowed for t in kit.available(include_refused=True)}
        assert names == {"t.echo": True, "t.secret_length": True, "t.fail": False}
        assert [t.name for t in kit.available()] == ["t.echo", "t.secret_length"]
        assert await kit.call_text("t.echo", {"text": "hi"}) == "hi"
        with pytest.raises(ForbiddenError, match=r"grant does not cover 't\.danger'"):
            await kit.call("t.fail", {})
        with pytest.raises(ForbiddenError, match=r"no tool 't\.nope'"):
            await kit.call("t.nope", {})
    kinds = [k for k, _ in seen]
    assert kinds == ["tool_called", "tool_refused", "tool_refused"]
    called = seen[0][1]
    assert called["tool"] == "t.echo"
    assert called["outcome"] == "ok"
    assert called["arguments_digest"].startswith("sha256:")
    assert called["duration_ms"] >= 0


async def test_include_exclude() -> None:
    only = pack(tools={"include": ["echo", "fail"], "exclude": ["fail"]})
    async with armory.open([only]) as kit:
        assert [t.name for t in kit.available(include_refused=True)] == ["t.echo"]


async def test_servers_stop_on_exit_error_and_cancellation() -> None:
    before = children()
    async with armory.open([pack()]) as kit:
        assert len(children() - before) == 1
        await kit.call_text("t.echo", {"text": "x"})
    assert children() - before == set()

    with pytest.raises(RuntimeError, match="in the block"):
        async with armory.open([pack()]):
            raise RuntimeError("in the block")
    assert children() - before == set()

    with anyio.move_on_after(0.5):
        async with armory.open([pack()]):
            await anyio.sleep(30)
    assert children() - before == set()


async def test_a_server_that_fails_to_start_is_named_with_its_stderr() -> None:
    broken = {"name": "broken", "command": sys.executable, "args": [SERVER, "--crash"],
              "env": {"TOOL_SECRET": "env://SEKRIT"}}  # fmt: skip
    crashing = pack(servers=[broken])
    with pytest.raises(FleetForgeError) as caught:
        async with armory.open([crashing], environ={"SEKRIT": "hunter2-xyz"}):
            pass
    text = str(caught.value)
    assert "pack 'testpack', server 'broken' failed to start" in text
    assert "cannot start: missing config" in text
    assert "hunter2-xyz" not in text  # the secret is redacted from the stderr tail
    assert "secret=***" in text


async def test_secret_refs_reach_the_server_but_never_events_or_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("s3cr3t-value\n")
    with_secret = pack(servers=[{"name": "s", "command": sys.executable, "args": [SERVER],
                                 "env": {"TOOL_SECRET": f"file://{secret_file}"}}])  # fmt: skip
    sink = MemorySink()
    context = AgentRunContext(run_id="run_1", step_id="s", task_id="run_1.s", seed=1)
    adapter = AgentRunAdapter(context, sink)
    adapter.start()
    async with armory.open([with_secret], recorder=adapter) as kit:
        assert await kit.call_text("t.secret_length") == str(len("s3cr3t-value"))
        with pytest.raises(ContractError) as failed:
            await kit.call_text("t.fail", {"reason": "nope"})
    recorded = json.dumps([e.model_dump(mode="json") for e in sink.envelopes])
    assert "tool_called" in recorded
    for text in (recorded, caplog.text, str(failed.value), armory.get_pack.__doc__ or ""):
        assert "s3cr3t-value" not in text


# ── framework-native tools ──────────────────────────────────────────────────────────────────


async def test_langgraph_gets_working_tools(tmp_path: Path) -> None:
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage

    async with armory.open([pack()], grant=["t.safe"]) as kit:
        tools = {t.name: t for t in kit.tools("langgraph")}
        call = {"name": "t_echo", "args": {"text": "from langgraph"}, "id": "c1"}
        model = FakeMessagesListChatModel(responses=[AIMessage(content="", tool_calls=[call])])
        asked = await model.ainvoke("go")
        [c] = asked.tool_calls
        result = await tools[c["name"]].ainvoke(c["args"])
    assert "from langgraph" in json.dumps(result)


async def test_autogen_gets_working_tools() -> None:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, RequestUsage
    from autogen_ext.models.replay import ReplayChatCompletionClient

    info = REPLAY_MODEL_INFO
    asked = CreateResult(
        finish_reason="function_calls",
        content=[
            FunctionCall(id="c1", name="t_echo", arguments=json.dumps({"text": "from autogen"}))
        ],
        usage=RequestUsage(prompt_tokens=1, completion_tokens=1),
        cached=False,
    )
    async with armory.open([pack()], grant=["t.safe"]) as kit:
        agent = AssistantAgent(
            "a",
            model_client=ReplayChatCompletionClient([asked], model_info=info),  # type: ignore[arg-type]
            tools=kit.tools("autogen"),
        )
        result = await agent.run(task="echo")
    executions = [m for m in result.messages if type(m).__name__ == "ToolCallExecutionEvent"]
    assert "from autogen" in executions[0].content[0].content  # type: ignore[attr-defined]


async def test_crewai_gets_working_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetforge.adapters.crewai import import_crewai

    from .test_adapters import crewai_scenario  # noqa: F401 - sets up CrewAI's quiet import

    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    crewai = import_crewai()

    async with armory.open([pack()], grant=["t.safe"]) as kit:
        tools = kit.tools("crewai")
        script = ['Thought: echo\nAction: t_echo\nAction Input: {"text": "from crewai"}',
                  "Thought: done\nFinal Answer: echoed"]  # fmt: skip
        agent = crewai.Agent(role="r", goal="g", backstory="b", verbose=False, tools=tools,
                             llm=scripted_crewai_llm(script))  # fmt: skip
        job = crewai.Task(description="echo", expected_output="x", agent=agent)
        crew = crewai.Crew(agents=[agent], tasks=[job], verbose=False)
        calls: list[Any] = []
        kit.recorder = lambda kind, data: calls.append((kind, data))
        output = await anyio.to_thread.run_sync(crew.kickoff)
    assert str(output.raw) == "echoed"
    assert [(k, d["tool"], d["outcome"]) for k, d in calls] == [("tool_called", "t.echo", "ok")]
