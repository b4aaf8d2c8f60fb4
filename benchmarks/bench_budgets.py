"""What run-level budgets cost on the write path (issue 23).

``*_cycle_budget_ratio``: the task cycle ``lease_task`` -> ``post_event`` (one envelope) ->
``post_receipt`` of a run with a budget (never reached), whose envelope and receipt carry usage
(so each cycle writes one ``usage_reported`` event and checks the budget at the end of the unit),
over the same cycle of a run without a budget whose envelope and receipt carry no usage (what a
cycle cost before budgets). Informational: the issue sets no goal for it. The two runs live in
two stores of the same shape, worked in alternating blocks of 50 tasks so both see the same load;
each store is checked with ``replay --verify``.

``python benchmarks/run.py budgets``. FLEETFORGE_BENCH_QUICK=1 uses 500 tasks.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fleetforge.contracts import FleetReceipt, FleetUsage
from fleetforge.contracts.envelope import EmitEnvelope
from fleetforge.fleet.alerts.config import AlertSettings
from fleetforge.fleet.prices import ModelPrice, PriceTable
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store
from fleetforge.testing.postgres import find_postgres_bin, postgres_server

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


def _compare(fresh: Callable[[], str]) -> float:
    budget = {"max_tokens": 10**12, "max_cost_usd": 10**6, "max_wall_s": 10**6}
    with open_store(fresh()) as plain_store, open_store(fresh()) as budget_store:
        fleets = {}
        for name, store, limits in (("plain", plain_store, None),
                                    ("budget", budget_store, budget)):  # fmt: skip
            fleet = fleets[name] = SyncFleetService(store, alerts=AlertSettings(), prices=PRICES)
            fleet.register_worker({"worker_id": "w", "tools": ["*"]})
            fleet.submit_run(_spec(name, limits))
        times: dict[str, list[float]] = {"plain": [], "budget": []}
        for block in range(TASKS // BLOCK):
            for name in ("plain", "budget") if block % 2 else ("budget", "plain"):
                times[name] += _cycles(fleets[name], BLOCK, usage=name == "budget")
        [run] = fleets["budget"].list_runs().runs
        status = fleets["budget"].get_run(run.run_id).budget
        if status is None or status.tokens < TASKS * 120 or status.exceeded is not None:
            raise AssertionError(f"the budgeted run did not count its usage: {status}")
        for store in (plain_store, budget_store):
            if verify(store):
                raise AssertionError(f"replay differs from the projections of {store.url}")
    return statistics.median(times["budget"]) / statistics.median(times["plain"])


@contextmanager
def _stores() -> Iterator[dict[str, Callable[[], str]]]:
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(100))
        stores: dict[str, Callable[[], str]] = {
            "sqlite": lambda: f"sqlite:///{tmp}/budgets{next(counter)}.db"
        }
        bindir = find_postgres_bin()
        if bindir is None:
            NOTES.append("PostgreSQL server programs not found: no PostgreSQL figures")
            yield stores
            return
        with postgres_server(bindir, durable=True) as admin:
            import psycopg

            def fresh() -> str:
                name = f"fleet_budgets_{next(counter)}"
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
                return admin.rpartition("/")[0] + f"/{name}"

            stores["postgres"] = fresh
            yield stores


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with _stores() as stores:
        for backend, fresh in stores.items():
            figures[f"{backend}_cycle_budget_ratio"] = round(_compare(fresh), 3)
    NOTES.append(
        "cycle = lease + one envelope + receipt; budget run: usage on both, a budget never "
        "reached; plain run: no budget, no usage"
    )
    return figures
