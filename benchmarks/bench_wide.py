"""Scheduling cost per receipt against the run's width (issue 20, deliverable 5).

A receipt's latency (``complete_task``, the whole transaction: fencing, scoring, the events, the
projections, the scheduling that follows and the commit) in a wide run and in runs of 10 steps,
measured side by side on one store: after every 100 receipts of the wide run, a run of 10
independent steps is submitted and worked to its end (each run has a worker role of its own).
Interleaving matters on this machine: its fsync latency moves 2-5x within minutes (other work
shares the disk), so a reference measured before or after would compare loads, not runs.

Wide runs, each on a fresh store:

- ``map10k``: a planner step whose output lists 10,000 items, then a map step over them (all
  items enqueued at once);
- ``map10k_par100``: the same with ``max_parallel: 100`` (each receipt enqueues the next item);
- ``flat10k``: one run of 10,000 independent steps.

Workers lease 100 tasks at a time; only ``complete_task`` is timed. The goal is flatness: each
wide run's receipt p50 within 1.5x of the 10-step runs' measured alongside (``*_ratio``). Every
store is checked with ``replay --verify`` afterwards. SQLite is a WAL file at synchronous=NORMAL,
PostgreSQL a private server with fsync on. FLEETFORGE_BENCH_QUICK=1 uses 2,000 items.

``python benchmarks/bench_wide.py [sqlite] [postgres]`` prints the figures as JSON;
``python benchmarks/run.py wide`` prints them as the table of every benchmark.
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
SMALL_EVERY = 100  # wide receipts between two runs of 10 steps
CPUS = os.cpu_count() or 0

GOALS: dict[str, tuple[str, float]] = {
    f"{store}_{shape}_ratio": ("<=", 1.5)
    for store in ("sqlite", "postgres")
    for shape in ("map10k", "map10k_par100", "flat10k")
}


def _tool(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "tool", "tool": "noop", **fields}


def _spec(name: str, steps: list[dict[str, Any]], role: str) -> dict[str, Any]:
    return {"name": name, "seed": 1, "steps": steps, "defaults": {"worker": {"role": role}}}


def _complete(fleet: SyncFleetService, role: str, output: Callable[[str], Any],
              samples: list[float], limit: int) -> int:  # fmt: skip
    """Lease (as ``role``) and complete up to ``limit`` tasks; each ``complete_task`` timed (ms)
    into ``samples``. How many were completed."""
    done = 0
    while done < limit:
        leased = fleet.lease_task(role, max_tasks=min(100, limit - done), lease_seconds=600)
        if not leased:
            break
        for entry in leased:
            assert entry.lease is not None
            task = entry.task
            begin = time.perf_counter()
            fleet.complete_task(task.task_id, entry.lease.fencing_token, output(task.step_id))
            samples.append((time.perf_counter() - begin) * 1000)
        done += len(leased)
    return done


def _wide_spec(shape: str) -> tuple[dict[str, Any], Callable[[str], Any]]:
    if shape == "flat10k":
        steps = [_tool(f"s{i}") for i in range(WIDTH)]
        return _spec("wide-flat", steps, "wide"), lambda _: {"ok": True}
    each: dict[str, Any] = {"id": "each", "type": "map", "depends_on": ["plan"],
                            "step": {"type": "tool", "tool": "noop"},
                            "over": {"from": "steps.plan.output#/items"}}  # fmt: skip
    if shape == "map10k_par100":
        each["max_parallel"] = 100
    items = {"items": list(range(WIDTH))}
    return _spec("wide-map", [_tool("plan"), each], "wide"), (
        lambda step: items if step == "plan" else {"ok": True}
    )


def _side_by_side(fleet: SyncFleetService, shape: str) -> tuple[list[float], list[float]]:
    """The wide run's receipt latencies, and those of the 10-step runs worked between them."""
    spec, output = _wide_spec(shape)
    small = _spec("small", [_tool(f"s{i}") for i in range(10)], "small")
    run = fleet.submit_run(spec)
    wide_samples: list[float] = []
    small_samples: list[float] = []
    while _complete(fleet, "wide", output, wide_samples, SMALL_EVERY):
        reference = fleet.submit_run(small)
        assert _complete(fleet, "small", lambda _: {"ok": True}, small_samples, 10) == 10
        assert fleet.get_run(reference.run_id).status == "completed"
    final = fleet.get_run(run.run_id)
    assert final.status == "completed", final.status
    if shape != "flat10k":
        assert len(final.outputs["each"]) == WIDTH
    return wide_samples, small_samples


SHAPES = ("map10k", "map10k_par100", "flat10k")


def _p(samples: list[float], q: float) -> float:
    return sorted(samples)[int(len(samples) * q)]


def _measure(prefix: str, fresh: Callable[[], str]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for shape in SHAPES:
        with open_store(fresh()) as store:
            fleet = SyncFleetService(store)
            for role in ("wide", "small"):
                fleet.register_worker({"worker_id": role, "role": role, "tools": ["*"]})
            begin = time.perf_counter()
            wide, small = _side_by_side(fleet, shape)
            figures[f"{prefix}_{shape}_run_s"] = time.perf_counter() - begin
            differences = verify(store)
            assert not differences, f"{prefix} {shape}: replay differs: {differences[0]}"
        key = f"{prefix}_{shape}"
        figures[f"{key}_receipt_p50_ms"] = statistics.median(wide)
        figures[f"{key}_receipt_p95_ms"] = _p(wide, 0.95)
        figures[f"{key}_steps10_receipt_p50_ms"] = statistics.median(small)
        figures[f"{key}_steps10_receipt_p95_ms"] = _p(small, 0.95)
        figures[f"{key}_ratio"] = statistics.median(wide) / statistics.median(small)
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
