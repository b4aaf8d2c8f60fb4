"""What run-level budgets cost on the write path (issue 23).

``*_cycle_budget_ratio``: the task cycle ``lease_task`` -> ``post_event`` (one envelope) ->
``post_receipt`` of a run with a budget (never reached), whose envelope and receipt carry usage
(so each cycle writes one ``usage_reported`` event and checks the budget), over the same cycle of
a run without a budget whose envelope and receipt carry no usage (what a cycle cost before
budgets). ``*_cycle_usage_ratio``: the same for a run without a budget whose envelope and
receipt carry usage (live usage is kept for every run; the receipt's usage also went into
``Run.usage`` before). Informational: the issue sets no goal. The runs live in stores of the
same shape, worked in rotating blocks of 50 tasks so all see the same load; each store is
checked with ``replay --verify``.

``python benchmarks/run.py budgets``. FLEETFORGE_BENCH_QUICK=1 uses 500 tasks.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleetforge.contracts import FleetReceipt, FleetUsage
from fleetforge.contracts.envelope import EmitEnvelope
from fleetforge.fleet.alerts.config import AlertSettings
from fleetforge.fleet.prices import ModelPrice, PriceTable
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store

sys.path.insert(0, str(Path(__file__).parent))
from _stores import fresh_stores

QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
TASKS = 500 if QUICK else 2_000
BLOCK = 50
PRICES = PriceTable(models={"m": ModelPrice(input_per_1k=0.001, output_per_1k=0.002)})

GOALS: dict[str, tuple[str, float]] = {}
NOTES: list[str] = []


def _spec(name: str, budget: dict[str, Any] | None) -> dict[str, Any]:
    steps = [{"id": f"s{i}", "type": "tool", "tool": "noop"} for i in range(TASKS)]
    spec: dict[str, Any] = {"name": name, "seed": 1, "steps": steps}
    if budget:
        spec["budget"] = budget
    return spec


def _cycles(fleet: SyncFleetService, count: int, *, usage: bool) -> list[float]:
    times = []
    for n in range(count):
        started = time.perf_counter()
        [entry] = fleet.lease_task("w")
        assert entry.lease is not None
        task = entry.task
        used = FleetUsage(input_tokens=100 + n, output_tokens=20, model="m") if usage else None
        envelope = EmitEnvelope(run_id=task.run_id, step_id=task.step_id, task_id=task.task_id,
                                adapter={"name": "bench", "version": "1"}, seq=0,
                                at=fleet.clock.now(), seed=task.seed, event="message",
                                payload={"n": n}, usage=used)  # fmt: skip
        fleet.post_event(task.task_id, entry.lease.fencing_token, envelope)
        fleet.post_receipt(FleetReceipt.success(entry, None, usage=used))
        times.append(time.perf_counter() - started)
    return times


def _compare(fresh: Callable[[], str]) -> tuple[float, float]:
    """(budget and usage / neither, usage without a budget / neither), medians."""
    budget = {"max_tokens": 10**12, "max_cost_usd": 10**6, "max_wall_s": 10**6}
    names = ("plain", "usage", "budget")
    with open_store(fresh()) as a, open_store(fresh()) as b, open_store(fresh()) as c:
        fleets = {}
        for name, store in zip(names, (a, b, c), strict=True):
            fleet = fleets[name] = SyncFleetService(store, alerts=AlertSettings(), prices=PRICES)
            fleet.register_worker({"worker_id": "w", "tools": ["*"]})
            fleet.submit_run(_spec(name, budget if name == "budget" else None))
        times: dict[str, list[float]] = {name: [] for name in names}
        for block in range(TASKS // BLOCK):
            for name in names[block % 3 :] + names[: block % 3]:
                times[name] += _cycles(fleets[name], BLOCK, usage=name != "plain")
        [run] = fleets["budget"].list_runs().runs
        status = fleets["budget"].get_run(run.run_id).budget
        if status is None or status.tokens < TASKS * 120 or status.exceeded is not None:
            raise AssertionError(f"the budgeted run did not count its usage: {status}")
        for store in (a, b, c):
            if verify(store):
                raise AssertionError(f"replay differs from the projections of {store.url}")
    base = statistics.median(times["plain"])
    return statistics.median(times["budget"]) / base, statistics.median(times["usage"]) / base


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with fresh_stores("budgets", NOTES) as stores:
        for backend, fresh in stores.items():
            with_budget, with_usage = _compare(fresh)
            figures[f"{backend}_cycle_budget_ratio"] = round(with_budget, 3)
            figures[f"{backend}_cycle_usage_ratio"] = round(with_usage, 3)
    NOTES.append(
        "cycle = lease + one envelope + receipt; over a run with no budget and no usage: "
        "budget = usage on both and a budget never reached; usage = usage on both, no budget"
    )
    return figures
