"""The SDK (issue 7's goal): envelope build + validate per second, and Worker tasks/s.

Envelopes: an ``AgentRunAdapter`` building ``emit`` envelopes (a new payload each) into a
draining sink, after 200 warm-up envelopes, with validation
``strict`` (pydantic model + the agent_run JSON Schema), ``warn`` and ``off``; goal >= 50,000/s
strict. Worker: one Worker (concurrency 1 and 4) draining 500 independent no-op tasks (start +
complete envelopes posted, heartbeats, receipts) over each transport — in process, MCP stdio and
MCP streamable HTTP — on SQLite (synchronous=NORMAL).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import anyio

from fleetforge.adapter import AgentRunAdapter, AgentRunContext, QueueSink
from fleetforge.client import FleetClient
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store
from fleetforge.worker import TaskRun, Worker

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "tests"))
QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
ENVELOPES = 5_000 if QUICK else 30_000
TASKS = 100 if QUICK else 500
FLEETFORGE = str(Path(sys.executable).with_name("fleetforge"))

GOALS: dict[str, tuple[str, float]] = {"envelopes_strict_per_s": (">=", 50_000)}


def _envelopes(mode: str) -> float:
    context = AgentRunContext(run_id="run_1", step_id="plan", task_id="run_1.plan", seed=1)
    sink = QueueSink()  # as the Worker's: drained as envelopes are posted
    adapter = AgentRunAdapter(context, sink, validation=mode)  # type: ignore[arg-type]
    adapter.start({"topic": "bench"})
    # a new payload each time (as a model's stream gives), so every envelope's payload, seq
    # and timestamp are validated
    payloads = [
        {"role": "assistant", "content": f"thinking about part {i}", "tokens": i}
        for i in range(ENVELOPES)
    ]
    for payload in payloads[:200]:  # warm-up: compiled validators, caches
        adapter.emit("message", payload)
    sink.drain()
    start = time.perf_counter()
    for i, payload in enumerate(payloads):
        adapter.emit("message", payload)
        if i % 100 == 99:
            sink.drain()
    return ENVELOPES / (time.perf_counter() - start)


async def _noop(task: TaskRun) -> int:
    return 1


async def _worker_rate(client: FleetClient, url: str, concurrency: int) -> float:
    with open_store(url) as store:
        fleet = SyncFleetService(store)
        steps = [{"id": f"s{i}", "type": "tool", "tool": "t"} for i in range(50)]
        for _ in range(TASKS // 50):
            fleet.submit_run({"name": "bench", "seed": 1, "steps": steps})
    worker = Worker(client, _noop, worker_id=f"bench-{concurrency}", concurrency=concurrency,
                    validation="strict")  # fmt: skip
    start = time.perf_counter()
    stats = await worker.run(stop_when_idle=True)
    elapsed = time.perf_counter() - start
    assert stats.completed == TASKS, stats
    return TASKS / elapsed


async def _workers(tmp: str) -> dict[str, float]:
    from test_mcp_transports import fleet_env, http_server

    figures: dict[str, float] = {}
    counter = iter(range(100))
    for concurrency in (1, 4):
        url = f"sqlite:///{tmp}/local{next(counter)}.db?synchronous=normal"
        async with FleetClient.local(url, artifacts=f"{tmp}/artifacts") as client:
            figures[f"worker_local_c{concurrency}_tasks_per_s"] = await _worker_rate(
                client, url, concurrency
            )
        url = f"sqlite:///{tmp}/stdio{next(counter)}.db?synchronous=normal"
        env = fleet_env(Path(tmp), url)
        async with FleetClient.stdio([FLEETFORGE, "mcp"], env=env) as client:
            figures[f"worker_stdio_c{concurrency}_tasks_per_s"] = await _worker_rate(
                client, url, concurrency
            )
        url = f"sqlite:///{tmp}/http{next(counter)}.db?synchronous=normal"
        env = fleet_env(Path(tmp), url)
        with http_server(env, "--no-auth") as base:
            async with FleetClient.connect(base) as client:
                figures[f"worker_http_c{concurrency}_tasks_per_s"] = await _worker_rate(
                    client, url, concurrency
                )
    return figures


def run() -> dict[str, float]:
    figures = {
        "envelopes_strict_per_s": _envelopes("strict"),
        "envelopes_warn_per_s": _envelopes("warn"),
        "envelopes_off_per_s": _envelopes("off"),
        "cpus": float(os.cpu_count() or 0),
    }
    with tempfile.TemporaryDirectory(prefix="fleetforge-bench-sdk-") as tmp:
        figures |= anyio.run(_workers, tmp)
    return figures
