"""An AutoGen team as a fleet worker, offline: python examples/autogen_worker.py

A round-robin team (a researcher with a `search` tool, then a writer) on AutoGen's
ReplayChatCompletionClient, run by a Worker for a task leased from an embedded fleet.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

import anyio
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

from fleetforge.adapters.autogen import AutoGenAdapter
from fleetforge.client import FleetClient
from fleetforge.testing.fake_models import REPLAY_MODEL_INFO
from fleetforge.worker import Worker


def search(q: str) -> str:
    """Search the knowledge base."""
    return f"results for {q}"


def build_team(topic: str) -> Any:
    asked = CreateResult(
        finish_reason="function_calls",
        content=[FunctionCall(id="call_1", name="search", arguments=json.dumps({"q": topic}))],
        usage=RequestUsage(prompt_tokens=12, completion_tokens=6),
        cached=False,
    )
    researcher = AssistantAgent(
        "researcher",
        model_client=ReplayChatCompletionClient([asked], model_info=REPLAY_MODEL_INFO),  # type: ignore[arg-type]
        tools=[search],
    )
    writer = AssistantAgent(
        "writer",
        model_client=ReplayChatCompletionClient(
            [f"draft about {topic}"], model_info=REPLAY_MODEL_INFO
        ),  # type: ignore[arg-type]
    )
    return RoundRobinGroupChat([researcher, writer], termination_condition=MaxMessageTermination(3),
                               emit_team_events=True)  # fmt: skip


async def main(store: str) -> Any:
    spec = {"name": "autogen-example", "seed": 1, "inputs": {"topic": "leases"},
            "steps": [{"id": "draft", "type": "agent", "agent": "writer",
                       "inputs": {"topic": {"from": "inputs.topic"}}}]}  # fmt: skip
    agent = AutoGenAdapter(build_team("leases"), task=lambda given: f"write about {given['topic']}")
    async with FleetClient.local(store, artifacts=tempfile.mkdtemp()) as fleet:
        run = await fleet.submit_run(spec)
        await Worker(fleet, agent.as_handler(), worker_id="autogen-worker").run(stop_when_idle=True)
        done = await fleet.get_run(run.run_id)
    print(
        f"{done.run_id} {done.status}: {done.outputs['draft']} (tokens: {done.usage.total_tokens})"
    )
    return done.outputs["draft"]


if __name__ == "__main__":
    import os

    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(main, os.environ.get("FLEETFORGE_STORE") or f"sqlite:///{tmp}/fleet.db")
