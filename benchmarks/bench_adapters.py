"""Adapter cost (issues 8 and 17): what a framework adapter adds to a run, envelopes delivered.

Each framework runs the conformance scenario (two steps, one tool call, the framework's own
fake model) natively — consuming its own streaming API (LangGraph ``astream`` with the
adapter's stream modes, AgentChat ``run_stream``, CrewAI ``kickoff``) and doing nothing with the
items — and through its FleetForge adapter (strict validation), in interleaved pairs; figures
are medians. Two fake models:

- **instant** (answers at once): the adapter's absolute cost, per run and per envelope, into a
  queue (``adapter_*``) and with every envelope delivered to a fleet (``delivered_*``), in wall
  time and in CPU time of all the process's threads (``*_cpu_*``: steadier on a busy machine);
- **20 ms** per model call (nearer the fastest real providers than an instant fake): the
  overhead of the adapter with guaranteed delivery, as a share of the run. Goal: <= 5 %.

"Delivered" is what a Worker does (fleetforge.worker): one :class:`~fleetforge._delivery.Courier`
runs beside the runs and posts each run's envelopes to a fleet (in process, SQLite file in a
temporary directory) every 20 ms while the framework runs; when it ends, its last envelopes ride
with its success receipt in one ``complete_tasks`` call. The native runs post their receipt the
same way (no envelopes): a framework run under a fleet reports its result either way, so both
sides of a pair pay for the receipt and the difference is what the adapter and the delivery of
its envelopes add. Scenarios are built and tasks leased before the clock starts. ``*_cpu_*``
figures use the CPU time of all the process's threads (steadier than wall time on a busy
machine); ``*_20ms_cpu_overhead_pct`` is the extra CPU time as a share of the native run's
wall time.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
RUNS = 20 if QUICK else 60
LATENCY = 0.020
FRAMEWORKS = ("langgraph", "autogen", "crewai")
WORKER = "bench"
Delivery = tuple[Any, Any]
"""A running Courier and a task leased to ``WORKER`` (an inbox entry): where a run reports."""

GOALS: dict[str, tuple[str, float]] = {
    f"{name}_20ms_overhead_pct": ("<=", 5.0) for name in FRAMEWORKS
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


async def _leased(client: Any, count: int) -> list[Any]:
    """``count`` leased tasks, one per run, for adapters to post envelopes to."""
    spec = {"name": "bench", "seed": 4, "inputs": {"topic": "leases"},
            "steps": [{"id": "draft", "type": "agent", "agent": "bench",
                       "inputs": {"topic": {"from": "inputs.topic"}}}]}  # fmt: skip
    for _ in range(count):
        await client.submit_run(spec)
    await client.register_worker({"worker_id": WORKER})
    entries: list[Any] = []
    while len(entries) < count:
        want = min(100, count - len(entries))
        entries += await client.lease_task(WORKER, lease_seconds=3600, max_tasks=want)
    return entries


async def _adapted(framework: Any, context: Any, deliver: Delivery | None) -> int:
    """One adapted run; with ``deliver``, delivered as a Worker does: the courier posts the
    envelopes while the framework runs, the last ones ride with the receipt."""
    from fleetforge._delivery import Outbox
    from fleetforge.adapter import AgentRunAdapter, QueueSink

    sink = QueueSink()
    adapter = AgentRunAdapter(context, sink)
    if deliver is None:
        await framework.run(adapter)
        return len(sink.drain())
    courier, entry = deliver
    task, token = entry.task.task_id, entry.lease.fencing_token
    outbox = Outbox(courier.calls.client, task, token, sink, worker_id=WORKER, courier=courier)
    courier.watch(outbox)
    try:
        await framework.run(adapter)
    finally:
        courier.unwatch(outbox)
    await courier.complete(outbox, adapter.output, usage=adapter.usage)
    assert outbox.problem is None, outbox.problem
    assert not len(sink), f"{len(sink)} envelopes left undelivered"
    return outbox.delivered


async def _receipt(deliver: Delivery, output: Any) -> None:
    """A native run's success receipt, posted as the Worker posts one (no envelopes)."""
    from fleetforge._delivery import Outbox
    from fleetforge.adapter import QueueSink

    courier, entry = deliver
    task, token = entry.task.task_id, entry.lease.fencing_token
    outbox = Outbox(courier.calls.client, task, token, QueueSink(), worker_id=WORKER,
                    courier=courier)  # fmt: skip
    await courier.complete(outbox, output)


async def _pairs(
    native: Callable[[int], Awaitable[None]], adapted: Callable[[int], Awaitable[int]]
) -> dict[str, float]:
    """Interleaved pairs (the order alternates; the collector runs between runs, not inside
    them): medians of wall and CPU (all threads) ms, native and adapted; envelopes per run."""
    times: dict[str, list[float]] = {k: [] for k in ("native", "adapted", "native_cpu",
                                                     "adapted_cpu")}  # fmt: skip
    envelopes = 0

    async def timed(which: str, n: int) -> None:
        nonlocal envelopes
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        if which == "native":
            await native(n)
        else:
            envelopes += await adapted(n)
        times[which].append((time.perf_counter() - start) * 1000)
        times[f"{which}_cpu"].append((time.process_time() - cpu) * 1000)

    gc.disable()
    try:
        for n in range(RUNS):
            for which in ("adapted", "native") if n % 2 else ("native", "adapted"):
                await timed(which, n)
    finally:
        gc.enable()
    medians = {key: statistics.median(values) for key, values in times.items()}
    return medians | {"envelopes": envelopes / RUNS}


async def _measure(name: str, root: Path) -> dict[str, float]:
    from fleetforge._delivery import Courier, WorkerCalls
    from fleetforge.adapter import AgentRunContext
    from fleetforge.client import FleetClient
    from tests.test_adapters import CONTEXT, OUTPUT, SCENARIOS

    build = SCENARIOS[name]
    figures: dict[str, float] = {}
    async with (
        FleetClient.local(f"sqlite:///{root / name}.db", artifacts=root / "cas") as client,
        anyio.create_task_group() as services,
    ):
        entries = await _leased(client, 4 * RUNS + 4)
        courier = Courier(WorkerCalls(client, WORKER))  # one per Worker, as it runs one
        await services.start(courier.run)

        def delivering() -> tuple[AgentRunContext, Delivery]:
            entry = entries.pop()
            return AgentRunContext.from_entry(entry), (courier, entry)

        for latency in (0.0, LATENCY):
            await _native(name, build(latency=latency))  # warm up both paths
            await _receipt(delivering()[1], OUTPUT)
            await _adapted(build(latency=latency), *delivering())
            variants: dict[str, tuple[list[tuple[Any, ...]], list[Delivery | None]]] = {}
            if not latency:
                queued = [AgentRunContext(**{**vars(CONTEXT), "task_id": f"t{n}"})
                          for n in range(RUNS)]  # fmt: skip
                variants["adapter"] = ([(build(), ctx, None) for ctx in queued], [None] * RUNS)
            variants["delivered"] = (
                [(build(latency=latency), *delivering()) for _ in range(RUNS)],
                [delivering()[1] for _ in range(RUNS)],
            )
            for variant, (runs, receipts) in variants.items():
                plain = [build(latency=latency) for _ in range(RUNS)]

                async def native(n: int, plain: list[Any] = plain,
                                 receipts: list[Delivery | None] = receipts) -> None:  # fmt: skip
                    await _native(name, plain[n])
                    given = receipts[n]
                    if given is not None:
                        await _receipt(given, OUTPUT)

                async def adapted(n: int, runs: list[tuple[Any, ...]] = runs) -> int:
                    return await _adapted(*runs[n])

                m = await _pairs(native, adapted)
                per_run = m["envelopes"]
                if latency:
                    cpu = m["adapted_cpu"] - m["native_cpu"]
                    figures[f"{name}_20ms_native_run_ms"] = m["native"]
                    figures[f"{name}_20ms_delivered_run_ms"] = m["adapted"]
                    figures[f"{name}_20ms_overhead_ms"] = m["adapted"] - m["native"]
                    figures[f"{name}_20ms_overhead_pct"] = (m["adapted"] / m["native"] - 1) * 100
                    figures[f"{name}_20ms_cpu_overhead_ms"] = cpu
                    figures[f"{name}_20ms_cpu_overhead_pct"] = cpu / m["native"] * 100
                    continue
                if variant == "adapter":
                    figures[f"{name}_envelopes_per_run"] = per_run
                    figures[f"{name}_instant_native_run_ms"] = m["native"]
                wall = m["adapted"] - m["native"]
                cpu = m["adapted_cpu"] - m["native_cpu"]
                figures[f"{name}_{variant}_cost_per_run_ms"] = wall
                figures[f"{name}_{variant}_cost_per_envelope_us"] = wall / per_run * 1000
                figures[f"{name}_{variant}_cpu_per_envelope_us"] = cpu / per_run * 1000
        services.cancel_scope.cancel()
    return figures


def run() -> dict[str, float]:
    figures: dict[str, float] = {"cpus": float(os.cpu_count() or 0), "runs": float(RUNS)}
    with tempfile.TemporaryDirectory(prefix="fleetforge-bench-adapters-") as tmp:
        root = Path(tmp)
        os.environ.setdefault("CREWAI_STORAGE_DIR", str(root / "crewai"))
        for name in FRAMEWORKS:
            figures |= anyio.run(_measure, name, root)
    return figures
