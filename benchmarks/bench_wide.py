"""Scheduling cost per receipt against the run's width (issue 20, deliverable 5).

A receipt's latency (``complete_task``, the whole transaction: fencing, scoring, the events, the
projections and the scheduling that follows) in three runs, each on a fresh store:

- ``steps10``: runs of 10 independent steps (the small-run reference; every receipt measured,
  the one that completes its run included);
- ``map10k``: a planner step whose output lists 10,000 items, then a map step over them (all
  items enqueued at once);
- ``map10k_par100``: the same with ``max_parallel: 100`` (each receipt enqueues the next item);
- ``flat10k``: one run of 10,000 independent steps.

Workers lease 100 tasks at a time; only ``complete_task`` is timed. The goal is flatness: each
wide run's receipt p50 within 1.5x of ``steps10``'s (``*_ratio``). Every store is checked with
``replay --verify`` afterwards. SQLite is a WAL file at synchronous=NORMAL, PostgreSQL a private
server with fsync on. FLEETFORGE_BENCH_QUICK=1 uses 2,000 items.

``python benchmarks/bench_wide.py [sqlite] [postgres]`` prints the figures as JSON (to compare
two checkouts run one after the other).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store
from fleetforge.testing.postgres import find_postgres_bin, postgres_server

QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
WIDTH = 2_000 if QUICK else 10_000
SMALL_RECEIPTS = 2_000  # receipts measured over runs of 10 steps
CPUS = os.cpu_count() or 0

GOALS: dict[str, tuple[str, float]] = {
    f"{store}_{shape}_ratio": ("<=", 1.5)
    for store in ("sqlite", "postgres")
    for shape in ("map10k", "map10k_par100", "flat10k")
}


def _tool(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "tool", "tool": "noop", **fields}


def _drain(fleet: SyncFleetService, output: Callable[[str], Any]) -> list[float]:
    """Lease and complete every queued task; the latency of each ``complete_task`` in ms."""
    samples: list[float] = []
    while True:
        leased = fleet.lease_task("bench", max_tasks=100, lease_seconds=600)
        if not leased:
            return samples
        for entry in leased:
            assert entry.lease is not None
            task = entry.task
            begin = time.perf_counter()
            fleet.complete_task(task.task_id, entry.lease.fencing_token, output(task.step_id))
            samples.append((time.perf_counter() - begin) * 1000)


def _small(fleet: SyncFleetService) -> list[float]:
    spec = {"name": "small", "seed": 1, "steps": [_tool(f"s{i}") for i in range(10)]}
    samples: list[float] = []
    while len(samples) < SMALL_RECEIPTS:
        run = fleet.submit_run(spec)
        samples += _drain(fleet, lambda _: {"ok": True})
        assert fleet.get_run(run.run_id).status == "completed"
    return samples


def _map(fleet: SyncFleetService, max_parallel: int | None) -> list[float]:
    each = {"id": "each", "type": "map", "depends_on": ["plan"], "step": {"type": "tool",
            "tool": "noop"}, "over": {"from": "steps.plan.output#/items"}}  # fmt: skip
    if max_parallel is not None:
        each["max_parallel"] = max_parallel
    spec = {"name": "wide-map", "seed": 1, "steps": [_tool("plan"), each]}
    run = fleet.submit_run(spec)
    items = {"items": list(range(WIDTH))}
    samples = _drain(fleet, lambda step: items if step == "plan" else {"ok": True})
    final = fleet.get_run(run.run_id)
    assert final.status == "completed", final.status
    assert len(final.outputs["each"]) == WIDTH
    return samples


def _flat(fleet: SyncFleetService) -> list[float]:
    spec = {"name": "wide-flat", "seed": 1, "steps": [_tool(f"s{i}") for i in range(WIDTH)]}
    run = fleet.submit_run(spec)
    samples = _drain(fleet, lambda _: {"ok": True})
    assert fleet.get_run(run.run_id).status == "completed"
    return samples


SHAPES: dict[str, Callable[[SyncFleetService], list[float]]] = {
    "steps10": _small,
    "map10k": lambda fleet: _map(fleet, None),
    "map10k_par100": lambda fleet: _map(fleet, 100),
    "flat10k": _flat,
}


def _measure(prefix: str, fresh: Callable[[], str]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for shape, drive in SHAPES.items():
        with open_store(fresh()) as store:
            fleet = SyncFleetService(store)
            fleet.register_worker({"worker_id": "bench", "tools": ["*"]})
            begin = time.perf_counter()
            samples = drive(fleet)
            figures[f"{prefix}_{shape}_run_s"] = time.perf_counter() - begin
            differences = verify(store)
            assert not differences, f"{prefix} {shape}: replay differs: {differences[0]}"
        figures[f"{prefix}_{shape}_receipt_p50_ms"] = statistics.median(samples)
        figures[f"{prefix}_{shape}_receipt_p95_ms"] = sorted(samples)[int(len(samples) * 0.95)]
    small = figures[f"{prefix}_steps10_receipt_p50_ms"]
    for shape in SHAPES:
        if shape != "steps10":
            figures[f"{prefix}_{shape}_ratio"] = figures[f"{prefix}_{shape}_receipt_p50_ms"] / small
    return figures


@contextmanager
def _postgres() -> Iterator[Callable[[], str] | None]:
    bindir = find_postgres_bin()
    if bindir is None:
        print("PostgreSQL server programs not found: skipping the PostgreSQL figures")
        yield None
        return
    with postgres_server(bindir, durable=True) as admin:
        import psycopg

        counter = iter(range(1000))

        def fresh() -> str:
            name = f"fleet_wide_{next(counter)}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
            return admin.rpartition("/")[0] + f"/{name}"

        yield fresh


def run(stores: tuple[str, ...] = ("sqlite", "postgres")) -> dict[str, float]:
    figures: dict[str, float] = {"cpus": float(CPUS), "width": float(WIDTH)}
    if "sqlite" in stores:
        with tempfile.TemporaryDirectory(prefix="fleetforge-bench-") as tmp:
            counter = iter(range(1000))
            figures |= _measure("sqlite", lambda: f"sqlite:///{tmp}/wide{next(counter)}.db")
    if "postgres" in stores:
        with _postgres() as fresh:
            if fresh is not None:
                figures |= _measure("postgres", fresh)
    return figures


if __name__ == "__main__":
    wanted = tuple(sys.argv[1:]) or ("sqlite", "postgres")
    print(json.dumps(run(wanted), indent=2))
