"""A CrewAI crew as a fleet worker, offline: python examples/crewai_worker.py

Two agents and two tasks (research with a `search` tool, then write) on a scripted BaseLLM,
run by a Worker for a task leased from an embedded fleet. CrewAI's telemetry stays off.
"""

from __future__ import annotations

import tempfile
from typing import Any

import anyio

from fleetforge.adapters.crewai import CrewAIAdapter, import_crewai
from fleetforge.client import FleetClient
from fleetforge.testing.fake_models import scripted_crewai_llm
from fleetforge.worker import Worker

crewai = import_crewai()  # telemetry off unless you set CREWAI_DISABLE_TELEMETRY yourself
from crewai.tools import BaseTool  # noqa: E402


class Search(BaseTool):  # type: ignore[misc]
    name: str = "search"
    description: str = "Search the knowledge base."

    def _run(self, q: str) -> str:
        return f"results for {q}"


def build_crew(topic: str) -> Any:
    researcher = crewai.Agent(
        role="researcher", goal="find facts", backstory="careful", verbose=False, tools=[Search()],
        llm=scripted_crewai_llm([
            f'Thought: search\nAction: search\nAction Input: {{"q": "{topic}"}}',
            f"Thought: done\nFinal Answer: results for {topic}",
        ]),
    )  # fmt: skip
    final = f"Thought: done\nFinal Answer: draft about {topic}"
    writer = crewai.Agent(role="writer", goal="write", backstory="clear", verbose=False,
                          llm=scripted_crewai_llm([final]))  # fmt: skip
    tasks = [
        crewai.Task(description="research {topic}", expected_output="notes", agent=researcher),
        crewai.Task(description="write about {topic}", expected_output="a draft", agent=writer),
    ]
    return crewai.Crew(agents=[researcher, writer], tasks=tasks, verbose=False)


async def main(store: str) -> Any:
    spec = {"name": "crewai-example", "seed": 1, "inputs": {"topic": "leases"},
            "steps": [{"id": "draft", "type": "agent", "agent": "writer",
                       "inputs": {"topic": {"from": "inputs.topic"}}}]}  # fmt: skip
    agent = CrewAIAdapter(build_crew("leases"))
    async with FleetClient.local(store, artifacts=tempfile.mkdtemp()) as fleet:
        run = await fleet.submit_run(spec)
        await Worker(fleet, agent.as_handler(), worker_id="crewai-worker").run(stop_when_idle=True)
        done = await fleet.get_run(run.run_id)
    print(f"{done.run_id} {done.status}: {done.outputs['draft']}")
    return done.outputs["draft"]


if __name__ == "__main__":
    import os

    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(main, os.environ.get("FLEETFORGE_STORE") or f"sqlite:///{tmp}/fleet.db")
