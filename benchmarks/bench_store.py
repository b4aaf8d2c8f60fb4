"""Event store latency and throughput (issue 4's goals), on SQLite and PostgreSQL.

For each store size (SQLite: 10k and 1M events; PostgreSQL: 10k and 200k), built with batch
appends of realistic run events:

- single-event append p50/p95, each with its projection update (a step event of a live run);
- batch append throughput (1,000-event transactions);
- query of 100 events of one run, p50/p95 (models built, as the API returns them);
- replay (rebuild every projection from the events), events/s.

SQLite runs with `synchronous=NORMAL` in WAL mode (the default); PostgreSQL is a private server
with fsync on, on this machine's disk. FLEETFORGE_BENCH_QUICK=1 shrinks the large sizes.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fleetforge.contracts import RunSpec
from fleetforge.contracts.events import EVENT_TYPES
from fleetforge.fleet.store import EventStore, open_store
from fleetforge.fleet.store._base import EventRow, iso
from fleetforge.ids import new_id
from fleetforge.testing.postgres import find_postgres_bin, postgres_server

QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
SQLITE_SIZES = (10_000, 50_000 if QUICK else 1_000_000)
POSTGRES_SIZES = (10_000, 20_000 if QUICK else 200_000)
CPUS = os.cpu_count() or 0

GOALS: dict[str, tuple[str, float]] = {}
for _n in SQLITE_SIZES:
    _k = f"sqlite_{_n // 1000}k"
    GOALS[f"{_k}_append_p50_ms"] = ("<=", 0.5)
    GOALS[f"{_k}_query100_p50_ms"] = ("<=", 1.0)
    GOALS[f"{_k}_replay_events_per_s"] = (">=", 20_000)
GOALS["sqlite_query100_p95_ratio_large_vs_10k"] = ("<=", 2.0)
for _n in POSTGRES_SIZES:
    GOALS[f"postgres_{_n // 1000}k_append_p50_ms"] = ("<=", 2.0)

SPEC = RunSpec.model_validate(
    {
        "name": "bench",
        "seed": 1,
        "labels": {"bench": "store"},
        "steps": [{"id": f"s{i}", "type": "agent", "agent": "a"} for i in range(8)],
    }
).model_dump(mode="json")


def _run_rows(run_id: str, start: datetime, steps: int = 8) -> list[EventRow]:
    """One run's events: submitted, started, then ready/started/completed per step, completed."""
    rows: list[EventRow] = []
    t = start

    def add(type_: str, data: dict[str, Any]) -> None:
        nonlocal t
        t += timedelta(microseconds=250)
        rows.append(EventRow(0, new_id("evt"), run_id, type_, iso(t), data))

    add(
        "run_submitted",
        {"spec": SPEC, "spec_digest": "sha256:" + "0" * 64, "idempotency_key": None},
    )
    add("run_started", {"by": None, "reason": ""})
    for i in range(steps):
        add("step_ready", {"step_id": f"s{i}"})
        add("step_started", {"step_id": f"s{i}", "task_id": f"{run_id}_s{i}", "attempt": 1})
        add("step_completed", {"step_id": f"s{i}", "output": {"text": "x" * 80, "n": i}})
    add("run_completed", {"outputs": {"s0": {"n": 0}}})
    return rows


def _fill(store: EventStore, total: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    batch: list[EventRow] = []
    written = store.count()
    while written + len(batch) < total:
        batch += _run_rows(new_id("run"), start)
        start += timedelta(seconds=1)
        if len(batch) >= 1000:
            store.append_rows(batch)
            written += len(batch)
            batch = []
    if batch:
        store.append_rows(batch)


def _percentiles(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        begin = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - begin) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def _measure(store: EventStore, prefix: str, size: int) -> dict[str, float]:
    _fill(store, size)
    # a long-lived run with 100+ events to query and to append to
    big = new_id("run")
    store.append_rows(_run_rows(big, datetime(2026, 6, 1, tzinfo=UTC), steps=40))
    ready = EVENT_TYPES["step_ready"]
    step = iter(range(10**9))

    def append_one() -> None:
        store.append(ready(event_id=new_id("evt"), run_id=big, at=datetime.now(UTC),
                           data={"step_id": f"s{next(step) % 40}"}))  # fmt: skip

    for _ in range(50):
        append_one()  # warm up
    append_p50, append_p95 = _percentiles(append_one, 1000)

    batches = []
    for _ in range(5):
        rows: list[EventRow] = []
        while len(rows) < 1000:
            rows += _run_rows(new_id("run"), datetime(2026, 7, 1, tzinfo=UTC))
        batches.append(rows)
    begin = time.perf_counter()
    for rows in batches:
        store.append_rows(rows)
    batch_rate = sum(map(len, batches)) / (time.perf_counter() - begin)

    def query_100() -> None:
        assert len(store.query(run_id=big, limit=100)) == 100

    for _ in range(20):
        query_100()
    query_p50, query_p95 = _percentiles(query_100, 300)

    events = store.count()
    begin = time.perf_counter()
    replayed = store.rebuild()
    replay_rate = replayed / (time.perf_counter() - begin)
    assert replayed == events
    return {
        f"{prefix}_append_p50_ms": append_p50,
        f"{prefix}_append_p95_ms": append_p95,
        f"{prefix}_batch_append_events_per_s": batch_rate,
        f"{prefix}_query100_p50_ms": query_p50,
        f"{prefix}_query100_p95_ms": query_p95,
        f"{prefix}_replay_events_per_s": replay_rate,
        f"{prefix}_events": float(events),
    }


def run() -> dict[str, float]:
    figures: dict[str, float] = {"cpus": float(CPUS)}
    with tempfile.TemporaryDirectory(prefix="fleetforge-bench-") as tmp:
        for size in SQLITE_SIZES:
            url = f"sqlite:///{Path(tmp) / f'{size}.db'}"
            with open_store(url) as store:
                assert getattr(store.backend, "synchronous", "") == "normal"
                figures |= _measure(store, f"sqlite_{size // 1000}k", size)
    small, large = (f"sqlite_{n // 1000}k_query100_p95_ms" for n in SQLITE_SIZES)
    figures["sqlite_query100_p95_ratio_large_vs_10k"] = figures[large] / figures[small]
    bindir = find_postgres_bin()
    if bindir is None:
        print("PostgreSQL server programs not found: skipping the PostgreSQL figures")
        return figures
    with postgres_server(bindir, durable=True) as admin:
        import psycopg

        for size in POSTGRES_SIZES:
            name = f"bench_{size}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
            with open_store(admin.rpartition("/")[0] + f"/{name}") as store:
                figures |= _measure(store, f"postgres_{size // 1000}k", size)
    return figures
