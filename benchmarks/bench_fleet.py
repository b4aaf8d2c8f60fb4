"""FleetService throughput and scheduling latency (issue 5's goals), on SQLite and PostgreSQL.

A cycle is one task's lease -> heartbeat -> receipt, with every event and projection written;
tasks are independent and the work is a no-op. Measured with 1 and 4 workers, in-process
(threads) and as separate processes, leasing 1 or 10 tasks per call, on SQLite at
synchronous=FULL and NORMAL (WAL) and on PostgreSQL with fsync on. Also: the latency from a
parent's accepted receipt (``post_receipt`` returned) to its child leased, p50/p95, and the
same from before ``post_receipt`` (``receipt_and_lease``: both calls, an upper bound).
FLEETFORGE_BENCH_QUICK=1 runs fewer tasks.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from fleetforge.contracts import FleetReceipt
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store
from fleetforge.ids import new_id
from fleetforge.testing.postgres import find_postgres_bin, postgres_server

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _fleet_worker import work  # noqa: E402

QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
TASKS = 1000 if QUICK else 5000
CPUS = os.cpu_count() or 0

GOALS: dict[str, tuple[str, float]] = {
    "sqlite_full_1w_threads_max1_tasks_per_s": (">=", 1000),
    "sqlite_normal_1w_threads_max1_tasks_per_s": (">=", 2000),
    "postgres_4w_procs_max1_tasks_per_s": (">=", 1000),
    "postgres_4w_procs_max10_tasks_per_s": (">=", 2000),
    "sqlite_normal_parent_child_p50_ms": ("<=", 5.0),
    "postgres_parent_child_p50_ms": ("<=", 5.0),
}


def _submit(fleet: SyncFleetService, tasks: int) -> None:
    per_run = 50
    spec = {
        "name": "bench",
        "seed": 1,
        "steps": [{"id": f"s{i}", "type": "tool", "tool": "noop"} for i in range(per_run)],
    }
    for _ in range(tasks // per_run):
        fleet.submit_run(spec)


def _threads(url: str, workers: int, max_tasks: int) -> float:
    with open_store(url) as store:
        fleet = SyncFleetService(store)
        _submit(fleet, TASKS)
        for w in range(workers):
            fleet.register_worker({"worker_id": f"t{w}"})
        results: list[tuple[int, float]] = []
        start = time.monotonic()
        threads = [
            threading.Thread(target=lambda w=w: results.append(work(fleet, f"t{w}", max_tasks)))
            for w in range(workers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sum(n for n, _ in results) == TASKS
    return TASKS / (max(last for _, last in results) - start)


def _processes(url: str, workers: int, max_tasks: int) -> float:
    with open_store(url) as store:
        _submit(SyncFleetService(store), TASKS)
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_fleet_worker.py"), url, f"p{w}", str(max_tasks)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    start = time.monotonic()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=1800)[0].split() for p in procs]
    assert sum(int(o[0]) for o in outputs) == TASKS
    return TASKS / (max(float(o[1]) for o in outputs) - start)


def _parent_child(url: str, chains: int = 200) -> dict[str, float]:
    """Latency from a parent's accepted receipt to its child leased, in ms.

    The receipt is accepted, and the child made ready, in ``post_receipt``'s transaction; the
    poster knows it once the call returns. ``accepted``: from that return to a lease call
    returning the child. ``both_calls``: from before ``post_receipt`` (its scoring and commit
    included) to the child leased, an upper bound.
    """
    accepted, both_calls = [], []
    with open_store(url) as store:
        fleet = SyncFleetService(store)
        fleet.register_worker({"worker_id": "pc"})
        spec = {
            "name": "chain",
            "seed": 1,
            "steps": [
                {"id": "parent", "type": "tool", "tool": "noop"},
                {"id": "child", "type": "tool", "tool": "noop", "depends_on": ["parent"]},
            ],
        }
        for _ in range(chains):
            fleet.submit_run(spec)
            [parent] = fleet.lease_task("pc")
            assert parent.lease is not None
            receipt = FleetReceipt.model_validate(
                {
                    "receipt_id": new_id("rcp"),
                    "run_id": parent.task.run_id,
                    "step_id": "parent",
                    "task_id": parent.task.task_id,
                    "attempt": 1,
                    "worker_id": "pc",
                    "fencing_token": parent.lease.fencing_token,
                    "result": {"outcome": "success", "output": 1},
                }
            )
            begin = time.perf_counter()
            fleet.post_receipt(receipt)
            returned = time.perf_counter()
            [child] = fleet.lease_task("pc")
            leased = time.perf_counter()
            accepted.append((leased - returned) * 1000)
            both_calls.append((leased - begin) * 1000)
            assert child.task.step_id == "child"
            fleet.post_receipt(
                receipt.model_copy(
                    update={
                        "receipt_id": new_id("rcp"),
                        "step_id": "child",
                        "task_id": child.task.task_id,
                        "fencing_token": child.lease.fencing_token if child.lease else 1,
                    }
                )
            )
    figures = {}
    for name, samples in (("parent_child", accepted), ("receipt_and_lease", both_calls)):
        samples.sort()
        figures[f"{name}_p50_ms"] = statistics.median(samples)
        figures[f"{name}_p95_ms"] = samples[int(len(samples) * 0.95) - 1]
    return figures


def _measure(prefix: str, fresh_url: object, *, thread_counts=(1, 4)) -> dict[str, float]:
    figures: dict[str, float] = {}
    for workers in thread_counts:
        for max_tasks in (1, 10):
            figures[f"{prefix}_{workers}w_threads_max{max_tasks}_tasks_per_s"] = _threads(
                fresh_url(), workers, max_tasks
            )  # type: ignore[operator]
    for max_tasks in (1, 10):
        figures[f"{prefix}_4w_procs_max{max_tasks}_tasks_per_s"] = _processes(
            fresh_url(), 4, max_tasks
        )  # type: ignore[operator]
    for name, value in _parent_child(fresh_url()).items():  # type: ignore[operator]
        figures[f"{prefix}_{name}"] = value
    return figures


def run() -> dict[str, float]:
    figures: dict[str, float] = {"cpus": float(CPUS), "tasks": float(TASKS)}
    counter = iter(range(1000))
    with tempfile.TemporaryDirectory(prefix="fleetforge-bench-") as tmp:
        for mode in ("full", "normal"):
            figures |= _measure(
                f"sqlite_{mode}",
                lambda m=mode: f"sqlite:///{tmp}/{m}{next(counter)}.db?synchronous={m}",
            )
    bindir = find_postgres_bin()
    if bindir is None:
        print("PostgreSQL server programs not found: skipping the PostgreSQL figures")
        return figures
    with postgres_server(bindir, durable=True) as admin:
        import psycopg

        def fresh() -> str:
            name = f"fleet_bench_{next(counter)}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
            return admin.rpartition("/")[0] + f"/{name}"

        figures |= _measure("postgres", fresh)
    return figures
