"""What users run (issue 20): the SDK ``Worker`` against a naive SQLite queue, in one process.

The Worker (concurrency 4 and 1, a no-op async handler, strict envelope validation) drains
independent tasks over ``FleetClient.local`` on the embedded SQLite store (its default,
synchronous=NORMAL): each task is leased, its ``start`` and ``complete`` envelopes delivered and
its receipt recorded. The baseline is a naive claim/complete loop on SQLite WAL at
synchronous=NORMAL (the SQL of ``../shared/bench/queue_peers``: one thread, ``BEGIN IMMEDIATE``,
claim = UPDATE ... RETURNING, done = UPDATE), measured in the same process, interleaved with the
Worker (rounds alternate; medians). Goal: Worker c4 >= 0.10x the naive loop.

Also the counts that do not depend on load, from the engine calls the Worker makes (wrapped on
the engine instance): engine calls per task, write transactions per task, and envelopes per
call that carried envelopes. (benchmarks/bench_fleet.py measures the engine alone, bench_sdk.py
the Worker over every transport.) FLEETFORGE_BENCH_QUICK=1 runs fewer tasks and rounds.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).parent))
from _naive_sqlite import naive_rate

QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
TASKS = 400 if QUICK else 2000
ROUNDS = 2 if QUICK else 3
CALLS = ("lease_task", "heartbeat", "heartbeat_many", "post_event", "post_events",
         "complete_task", "complete_tasks", "fail_task", "release_task")  # fmt: skip

GOALS: dict[str, tuple[str, float]] = {"worker_c4_vs_naive_normal": (">=", 0.10)}


def _count_calls(fleet: Any, counts: Counter[str]) -> None:
    """Count the engine calls made on ``fleet`` (a SyncFleetService), their items and the
    envelopes they carried, and the store's write transactions."""

    def wrap(name: str) -> None:
        method = getattr(fleet, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            items = args[0] if name.endswith(("_tasks", "_many", "_events")) and args else None
            if name == "post_event":
                counts["envelopes"] += 1
                counts["calls_with_envelopes"] += 1
            elif name in ("post_events", "complete_tasks") and items is not None:
                carried = (
                    len(items)
                    if name == "post_events"
                    else sum(len(getattr(i, "envelopes", None) or ()) for i in items)
                )
                counts["envelopes"] += carried
                counts["calls_with_envelopes"] += 1 if carried else 0
            return method(*args, **kwargs)

        setattr(fleet, name, counted)

    for name in CALLS:
        wrap(name)
    store = fleet.store
    transaction = store.transaction

    def counted_transaction(*args: Any, **kwargs: Any) -> Any:
        counts["write_transactions"] += 1
        return transaction(*args, **kwargs)

    store.transaction = counted_transaction


async def _worker_rate(root: Path, n: int, concurrency: int) -> tuple[float, Counter[str]]:
    from fleetforge.client import FleetClient
    from fleetforge.worker import TaskRun, Worker

    async def noop(task: TaskRun) -> int:
        return 1

    url = f"sqlite:///{root}/worker{n}.db"  # the embedded store's default: synchronous=NORMAL
    counts: Counter[str] = Counter()
    async with FleetClient.local(url, artifacts=root / "artifacts") as client:
        fleet = client.transport.fleet.sync  # type: ignore[attr-defined]
        steps = [{"id": f"s{i}", "type": "tool", "tool": "t"} for i in range(50)]
        for _ in range(TASKS // 50):
            fleet.submit_run({"name": "bench", "seed": 1, "steps": steps})
        worker = Worker(client, noop, worker_id=f"bench-{n}", concurrency=concurrency)
        await worker.register()
        _count_calls(fleet, counts)
        start = time.perf_counter()
        stats = await worker.run(stop_when_idle=True)
        elapsed = time.perf_counter() - start
    assert (stats.completed, stats.errors) == (TASKS, 0), stats
    return TASKS / elapsed, counts


def run() -> dict[str, float]:
    figures: dict[str, float] = {
        "cpus": float(os.cpu_count() or 0),
        "load_1min": os.getloadavg()[0],
        "tasks": float(TASKS),
    }
    rates: dict[str, list[float]] = {"naive": [], "c4": [], "c1": []}
    counts: dict[str, Counter[str]] = {}
    with tempfile.TemporaryDirectory(prefix="fleetforge-bench-worker-") as tmp:
        root = Path(tmp)
        n = 0
        for _ in range(ROUNDS):
            for which in ("naive", "c4", "c1"):
                n += 1
                if which == "naive":
                    rates[which].append(naive_rate(root / f"naive{n}.db", "NORMAL", TASKS))
                    continue
                rate, counted = anyio.run(_worker_rate, root, n, int(which[1:]))
                rates[which].append(rate)
                counts[which] = counted
    naive = statistics.median(rates["naive"])
    figures["naive_sqlite_normal_tasks_per_s"] = naive
    for which in ("c4", "c1"):
        rate = statistics.median(rates[which])
        figures[f"worker_{which}_tasks_per_s"] = rate
        figures[f"worker_{which}_vs_naive_normal"] = rate / naive
        c = counts[which]
        calls = sum(c[name] for name in CALLS)
        figures[f"worker_{which}_engine_calls_per_task"] = calls / TASKS
        figures[f"worker_{which}_write_transactions_per_task"] = c["write_transactions"] / TASKS
        figures[f"worker_{which}_lease_calls_per_task"] = c["lease_task"] / TASKS
        figures[f"worker_{which}_envelopes_per_call"] = c["envelopes"] / max(
            c["calls_with_envelopes"], 1
        )
    figures["load_1min_after"] = os.getloadavg()[0]
    return figures
