"""Adapter overhead (issue 8's goal): per observed framework event, and as a share of a
fake-model run's wall time, per framework.

Each framework runs the conformance scenario (two steps, one tool call, the framework's own
fake model) N times natively — consuming its own streaming API (LangGraph ``astream`` with the
adapter's stream modes, AgentChat ``run_stream``, CrewAI ``kickoff``) and doing nothing with the
items — and N times through its FleetForge adapter with strict envelope validation into a
draining sink (and, for reference, with validation off). Scenarios are built before the clock
starts. Goal: overhead <= 5 % of the run.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
RUNS = 20 if QUICK else 100

GOALS: dict[str, tuple[str, float]] = {
    f"{name}_overhead_pct": ("<=", 5.0) for name in ("langgraph", "autogen", "crewai")
}


async def _native(name: str, framework: Any) -> None:
    inputs = {"topic": "leases"}
    if name == "langgraph":
        from fleetforge.adapters.langgraph import STREAM_MODES

        config = {"configurable": {"thread_id": f"native-{id(framework)}"}}
        async for _ in framework.graph.astream(framework.inputs(inputs), config,
                                               stream_mode=STREAM_MODES):  # fmt: skip
            pass
    elif name == "autogen":
        async for _ in framework.agent.run_stream(task=framework.task(inputs)):
            pass
        await framework.agent.save_state()
    else:
        await anyio.to_thread.run_sync(lambda: framework.crew.kickoff(inputs=inputs))


async def _measure(name: str, validation: str = "strict") -> dict[str, float]:
    from fleetforge.adapter import AgentRunAdapter, AgentRunContext, QueueSink
    from tests.test_adapters import CONTEXT, SCENARIOS

    build = SCENARIOS[name]
    native = [build() for _ in range(RUNS + 2)]
    adapted = [build() for _ in range(RUNS + 2)]
    for warm in (native.pop(), native.pop()):
        await _native(name, warm)
    sink = QueueSink()
    for n, warm in enumerate((adapted.pop(), adapted.pop())):
        ctx = AgentRunContext(**{**vars(CONTEXT), "task_id": f"warm{n}"})
        await warm.run(AgentRunAdapter(ctx, sink))
    sink.drain()

    # Interleaved pairs, medians: the machine drifts too much for two blocks. The order within
    # a pair alternates (whichever runs first in a pair pays for what the other left behind),
    # and the collector runs between runs, not inside them, as timeit does.
    native_ms: list[float] = []
    adapted_ms: list[float] = []
    envelopes = 0

    async def timed_native(plain: Any) -> None:
        gc.collect()
        start = time.perf_counter()
        await _native(name, plain)
        native_ms.append((time.perf_counter() - start) * 1000)

    async def timed_adapted(framework: Any, n: int) -> None:
        ctx = AgentRunContext(**{**vars(CONTEXT), "task_id": f"t{n}"})
        gc.collect()
        start = time.perf_counter()
        await framework.run(AgentRunAdapter(ctx, sink, validation=validation))  # type: ignore[arg-type]
        adapted_ms.append((time.perf_counter() - start) * 1000)

    gc.disable()
    try:
        for n, (plain, framework) in enumerate(zip(native, adapted, strict=True)):
            if n % 2:
                await timed_adapted(framework, n)
                await timed_native(plain)
            else:
                await timed_native(plain)
                await timed_adapted(framework, n)
            envelopes += len(sink.drain())
    finally:
        gc.enable()
    base, with_adapter = statistics.median(native_ms), statistics.median(adapted_ms)
    per_run = envelopes / len(adapted)
    extra_ms = with_adapter - base
    if validation != "strict":
        return {
            f"{name}_{validation}_overhead_per_event_us": extra_ms / per_run * 1000,
            f"{name}_{validation}_overhead_pct": extra_ms / base * 100,
        }
    return {
        f"{name}_native_run_ms": base,
        f"{name}_adapted_run_ms": with_adapter,
        f"{name}_envelopes_per_run": per_run,
        f"{name}_overhead_per_event_us": extra_ms / per_run * 1000,
        f"{name}_overhead_pct": extra_ms / base * 100,
    }


def run() -> dict[str, float]:
    figures: dict[str, float] = {"cpus": float(os.cpu_count() or 0), "runs": float(RUNS)}
    with tempfile.TemporaryDirectory(prefix="fleetforge-bench-crewai-") as home:
        os.environ.setdefault("CREWAI_STORAGE_DIR", home)
        for name in ("langgraph", "autogen", "crewai"):
            figures |= anyio.run(_measure, name)
            figures |= anyio.run(_measure, name, "off")
    return figures
