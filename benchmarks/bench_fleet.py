"""The fleet's write path (issues 5 and 20), on SQLite and PostgreSQL, as counts and ratios.

A cycle is one task's lease -> heartbeat -> receipt through ``SyncFleetService``, every event and
projection written; tasks are independent no-ops. Measured here:

1. **Counts per cycle** (exact, independent of load; see ``_counts.py`` for how): SQL
   statements, BEGIN/COMMIT pairs, write transactions, client round trips (PostgreSQL), WAL
   commits = fsyncs (SQLite at FULL) / ``pg_stat_wal.wal_sync`` (PostgreSQL), events and
   projection rows written, WAL bytes; for the no-op cycle and the cycle with 4 envelopes.
2. **Throughput**: 1 and 4 workers (threads, and separate processes), leasing 1 or 10 tasks per
   call, on SQLite at synchronous=FULL and NORMAL (WAL) and on PostgreSQL with fsync on; the
   4-envelope cycle (start, two emits, complete, all posted before the receipt) beside the
   no-op one, and their ratio. "batched" figures use ``complete_tasks`` (+ ``heartbeat_many``),
   and exist only when the service has it; otherwise the ratios use the max10 figures and say
   ``unbatched``.
3. **Ratios against the peer queues** measured by ``../shared/bench/queue_peers/run.sh`` (JSON
   from ``$FLEETFORGE_PEERS_JSON``, default /tmp/qpeers_results.json); without it, the absolute
   figures only.
4. **What users run**: the SDK ``Worker`` (concurrency 4, no-op handler) over
   ``FleetClient.local`` on the embedded SQLite store (synchronous=NORMAL), against a naive
   SQLite WAL NORMAL claim/complete loop run in this process (``_naive_sqlite.py``).
5. **Adding a server**: two ``fleetforge serve --stateless`` on one PostgreSQL with two HTTP SDK
   Workers each (processes, concurrency 4, a bound token each) against one serve with four.
6. **Latency**: parent -> child p50/p95 (a parent's accepted receipt to its child leased) on
   both stores, and wide-run flatness: receipt p50 in a run of one N-item map against 10-step
   runs (N = 10,000; 1,000 with FLEETFORGE_BENCH_QUICK=1).

FLEETFORGE_BENCH_QUICK=1 runs fewer tasks (and fewer cells) so the whole takes ~3 minutes;
FLEETFORGE_BENCH_TASKS=N sets the tasks per throughput cell (default 5,000; 400 when quick).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from fleetforge.contracts import FleetReceipt
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore, open_store
from fleetforge.ids import new_id
from fleetforge.testing.postgres import find_postgres_bin, postgres_server

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _counts import PgWire, SqliteCounter, pg_wal_snapshot, pg_waldump_stats, transactions  # noqa: E402
from _fleet_worker import BATCH_API, batch_cycle, cycle, work  # noqa: E402
from _naive_sqlite import naive_rate  # noqa: E402

QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
TASKS = int(os.environ.get("FLEETFORGE_BENCH_TASKS", 400 if QUICK else 5000))
ENVELOPES = 4
COUNT_CYCLES = 50  # counted per kind after 10 warm-up ones: one 50-step run completes in them
SDK_TASKS = int(os.environ.get("FLEETFORGE_BENCH_TASKS", 400 if QUICK else 5000))
SERVE_TASKS = 200 if QUICK else 2000
WIDE_ITEMS = 1000 if QUICK else 10_000
# a wide run not done by then is reported unfinished (its receipts so far still give the p50)
WIDE_LIMIT_S = float(os.environ.get("FLEETFORGE_BENCH_WIDE_LIMIT_S", 120 if QUICK else 1800))
CHAINS = 100 if QUICK else 200
CPUS = os.cpu_count() or 0
PEERS_JSON = Path(os.environ.get("FLEETFORGE_PEERS_JSON", "/tmp/qpeers_results.json"))
MODE = "batched" if BATCH_API else "max10"  # the mode of the headline (goal) figures

# Issue 20's goals, as ratios measured in one run (the issue restates issue 5's absolute
# tasks/s goals this way: the machine's speed varies 2x by day). The peer ratios are added by
# _peers() when the peers' JSON is there.
GOALS: dict[str, tuple[str, float]] = {
    "sqlite_normal_parent_child_p50_ms": ("<=", 5.0),
    "postgres_parent_child_p50_ms": ("<=", 5.0),
    f"sqlite_full_1w_{MODE}_env4_vs_noop_ratio": (">=", 0.5),
    f"postgres_4w_procs_{MODE}_env4_vs_noop_ratio": (">=", 0.5),
    "sdk_worker_c4_local_vs_naive_sqlite_normal_ratio": (">=", 0.10),
    "postgres_two_serves_vs_one_ratio": (">=", 1.0),
    "sqlite_normal_wide_vs_10step_receipt_p50_ratio": ("<=", 1.5),
    "postgres_wide_vs_10step_receipt_p50_ratio": ("<=", 1.5),
}
NOTES: list[str] = []  # printed after the table and kept in the JSON (run.py)


def _note(text: str) -> None:
    NOTES.append(text)
    print(text, flush=True)


def _submit(fleet: SyncFleetService, tasks: int, per_run: int = 50) -> None:
    spec = {
        "name": "bench",
        "seed": 1,
        "steps": [{"id": f"s{i}", "type": "tool", "tool": "noop"} for i in range(per_run)],
    }
    for _ in range(-(-tasks // per_run)):
        fleet.submit_run(spec)


# ── 1. counts per cycle ──────────────────────────────────────────────────────────────────────

WARM = 10
# kind: (envelopes per task, batch size; 0 = single calls: lease_task(max_tasks=1), heartbeat,
# post_event(s), post_receipt). A batch of n: heartbeat_many of the n held leases, then one
# complete_tasks of their n receipts (+ envelopes) with lease_next=n, which leases the next n.
KINDS: dict[str, tuple[int, int]] = {"noop": (0, 0), "env4": (ENVELOPES, 0)}
if BATCH_API:
    KINDS |= {"chained": (0, 1), "batched": (0, 10), "batched_env4": (ENVELOPES, 10)}
KIND_TEXT = {
    "noop": "single calls, no-op",
    "env4": "single calls, 4 envelopes",
    "chained": "complete_tasks of 1, lease_next=1",
    "batched": "complete_tasks of 10, lease_next=10",
    "batched_env4": "complete_tasks of 10 + 4 envelopes each",
}


class _Cycles:
    """Counted cycles of one kind, in a steady state (batched: n leased at a time, each call
    completing n and leasing the next n)."""

    def __init__(self, fleet: SyncFleetService, kind: str) -> None:
        self.fleet = fleet
        self.envelopes, self.batch = KINDS[kind]
        self.leased: list[Any] = []

    def tasks_needed(self, cycles: int) -> int:
        return cycles + 2 * self.batch

    def run(self, cycles: int) -> int:
        fleet = self.fleet
        if not self.batch:
            for _ in range(cycles):
                [entry] = fleet.lease_task("counter", max_tasks=1, lease_seconds=60)
                cycle(fleet, entry, self.envelopes)
            return cycles
        if not self.leased:
            self.leased = fleet.lease_task("counter", max_tasks=self.batch, lease_seconds=60)
        done = 0
        while done < cycles:
            done += len(self.leased)
            self.leased = batch_cycle(fleet, "counter", self.leased, self.envelopes, self.batch)
        return done


def _count_table(figures: dict[str, float]) -> None:
    """One line per store and kind: the figures the issue asks for, per task cycle."""
    for store in ("sqlite", "postgres"):
        for kind in KINDS:
            key = f"{store}_{kind}_cycle_"
            if f"{key}statements" not in figures:
                continue
            trips = figures.get(f"{key}round_trips")
            syncs = figures.get(f"{key}wal_syncs", figures.get(f"{key}wal_commits", 0.0))
            _note(
                f"counts per cycle, {store:8} {KIND_TEXT[kind]:40}: "
                f"{figures[f'{key}statements']:5.1f} statements, "
                + (f"{trips:5.1f} round trips, " if trips is not None else "")
                + f"{figures[f'{key}write_transactions']:4.2f} write transactions, "
                + f"{syncs:4.2f} fsyncs, {figures[f'{key}events']:4.1f} events, "
                + f"{figures[f'{key}projection_rows']:4.1f} projection rows"
            )


def _count_sqlite(tmp: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    for kind in KINDS:
        path = Path(tmp) / f"count_{kind}.db"
        counter = SqliteCounter()
        with counter.capturing():
            store = open_store(f"sqlite:///{path}?synchronous=full")
        with store:
            fleet = SyncFleetService(store, clock=ManualClock(datetime.now(UTC)))
            fleet.register_worker({"worker_id": "counter"})
            cycles = _Cycles(fleet, kind)
            _submit(fleet, cycles.tasks_needed(WARM + COUNT_CYCLES))
            cycles.run(WARM)
            per = counter.count(path, store.count, partial(cycles.run, COUNT_CYCLES))
            statements = counter.kinds()
        for name, value in per.items():
            figures[f"sqlite_{kind}_cycle_{name}"] = value
        if kind == "noop":
            top = ", ".join(f"{k} {v / COUNT_CYCLES:g}" for k, v in statements.most_common())
            _note(f"sqlite no-op cycle statements by kind: {top}")
    return figures


def _report_stats(store: EventStore, admin: Any, dbname: str) -> None:
    """Make the store's backend report its statistics now (it is the only one: the cycles run
    in one thread, so the pool never opened a second connection)."""
    backends = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (dbname,)
    ).fetchone()[0]
    if backends != 1:
        raise RuntimeError(f"{backends} connections to {dbname}: the WAL syncs would be partial")
    with store.backend.read() as tx:
        tx.execute("SELECT pg_stat_force_next_flush()")


def _count_postgres(admin_url: str, fresh_db: Callable[[], str]) -> dict[str, float]:
    import psycopg

    bindir = find_postgres_bin()
    assert bindir is not None
    hostport = admin_url.split("@", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    user = admin_url.split("//", 1)[1].split("@", 1)[0]
    proxy = PgWire(host, int(port))
    figures: dict[str, float] = {}
    with psycopg.connect(admin_url, autocommit=True) as admin:
        wal_dir = str(admin.execute("SHOW data_directory").fetchone()[0]) + "/pg_wal"  # type: ignore[index]
        admin.execute("ALTER SYSTEM SET autovacuum = off")
        admin.execute("SELECT pg_reload_conf()")
        try:
            for kind in KINDS:
                dbname = fresh_db().rsplit("/", 1)[1]
                with open_store(proxy.dsn(dbname, user)) as store:
                    fleet = SyncFleetService(store, clock=ManualClock(datetime.now(UTC)))
                    fleet.register_worker({"worker_id": "counter"})
                    cycles = _Cycles(fleet, kind)
                    _submit(fleet, cycles.tasks_needed(WARM + COUNT_CYCLES))
                    cycles.run(WARM)
                    flush = partial(_report_stats, store, admin, dbname)
                    events_before = store.count()
                    before = pg_wal_snapshot(admin, flush)
                    proxy.reset()
                    proxy.recording = True
                    done = cycles.run(COUNT_CYCLES)
                    proxy.recording = False
                    after = pg_wal_snapshot(admin, flush)
                    events = store.count() - events_before
                wal = pg_waldump_stats(bindir, wal_dir, before.lsn, after.lsn)
                tx = transactions(proxy.statements)
                counted = {
                    "statements": len(proxy.statements),
                    "round_trips": proxy.round_trips,
                    "server_turns": proxy.turns,
                    "begin_commit_pairs": tx["commit"],
                    "savepoints": tx["savepoint"],
                    "write_transactions": wal["commits"],
                    "wal_syncs": after.wal_sync - before.wal_sync,
                    "events": events,
                    "rows_written": wal["row_writes"],
                    "projection_rows": wal["row_writes"] - events,
                    "row_locks": wal["row_locks"],
                    "wal_records": wal["records"],
                    "wal_bytes": wal["bytes"],
                    "client_bytes": proxy.client_bytes,
                }
                for name, value in counted.items():
                    figures[f"postgres_{kind}_cycle_{name}"] = value / done
                if kind == "noop":
                    _note(
                        "postgres no-op cycle messages sent: "
                        + ", ".join(f"{k} {v / done:g}" for k, v in proxy.messages.most_common())
                    )
        finally:
            admin.execute("ALTER SYSTEM RESET autovacuum")
            admin.execute("SELECT pg_reload_conf()")
            proxy.close()
    return figures


# ── 2. throughput ────────────────────────────────────────────────────────────────────────────


def _threads(
    url: str, workers: int, max_tasks: int, envelopes: int = 0, batched: bool = False
) -> float:
    with open_store(url) as store:
        fleet = SyncFleetService(store)
        _submit(fleet, TASKS)
        for w in range(workers):
            fleet.register_worker({"worker_id": f"t{w}"})
        results: list[tuple[int, float]] = []
        start = time.monotonic()
        threads = [
            threading.Thread(
                target=lambda w=w: results.append(
                    work(fleet, f"t{w}", max_tasks, envelopes, batched)
                )
            )
            for w in range(workers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(n for n, _ in results) == TASKS, results
        assert verify(store) == [], "projections differ from a replay"
    return TASKS / (max(last for _, last in results) - start)


def _processes(
    url: str, workers: int, max_tasks: int, envelopes: int = 0, batched: bool = False
) -> float:
    with open_store(url) as store:
        _submit(SyncFleetService(store), TASKS)
    args = [str(max_tasks), str(envelopes), "batched" if batched else "unbatched"]
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_fleet_worker.py"), url, f"p{w}", *args],
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
    with open_store(url) as store:
        assert verify(store) == [], "projections differ from a replay"
    return TASKS / (max(float(o[1]) for o in outputs) - start)


def _throughput(prefix: str, fresh_url: Callable[[], str]) -> dict[str, float]:
    """The grid of no-op cells (QUICK: only those the goals and ratios read)."""
    figures: dict[str, float] = {}
    threads = [(1, 1), (1, 10), (4, 1), (4, 10)]
    processes = [1, 10]
    if QUICK:
        threads = [] if prefix == "postgres" else [(1, 1), (1, 10)]
        processes = [1, 10] if prefix == "postgres" else []
    for workers, max_tasks in threads:
        figures[f"{prefix}_{workers}w_threads_max{max_tasks}_tasks_per_s"] = _threads(
            fresh_url(), workers, max_tasks
        )
    for max_tasks in processes:
        figures[f"{prefix}_4w_procs_max{max_tasks}_tasks_per_s"] = _processes(
            fresh_url(), 4, max_tasks
        )
    if BATCH_API:
        if prefix == "postgres":
            figures["postgres_4w_procs_batched_tasks_per_s"] = _processes(
                fresh_url(), 4, 10, batched=True
            )
        else:
            figures[f"{prefix}_1w_threads_batched_tasks_per_s"] = _threads(
                fresh_url(), 1, 10, batched=True
            )
    return figures


def _envelopes(
    prefix: str, fresh_url: Callable[[], str], noop: dict[str, float]
) -> dict[str, float]:
    """The 4-envelope cycle in the headline configuration (batched, else max10; PostgreSQL: 4
    processes, SQLite: 1 worker), and its ratio to the no-op one."""
    if prefix == "postgres":
        name = f"postgres_4w_procs_{MODE}"
        rate = _processes(fresh_url(), 4, 10, ENVELOPES, BATCH_API)
    else:
        name = f"{prefix}_1w_threads_{MODE}"
        rate = _threads(fresh_url(), 1, 10, ENVELOPES, BATCH_API)
    figures = {f"{name}_env{ENVELOPES}_tasks_per_s": rate}
    base = noop.get(f"{name}_tasks_per_s")
    if base:
        ratio_name = f"{name.replace('_threads', '')}_env{ENVELOPES}_vs_noop_ratio"
        figures[ratio_name] = rate / base
        GOALS.setdefault(ratio_name, (">=", 0.5))
    return figures


# ── 6. latency ───────────────────────────────────────────────────────────────────────────────


def _parent_child(url: str, chains: int = CHAINS) -> dict[str, float]:
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


def _drain(fleet: SyncFleetService, deadline: float) -> tuple[list[float], bool]:
    """Lease 10 at a time and post each receipt until the inbox is empty; each receipt's ms,
    and whether it finished before ``deadline``."""
    samples: list[float] = []
    while leased := fleet.lease_task("wide", max_tasks=10, lease_seconds=600):
        for entry in leased:
            receipt = FleetReceipt.success(entry, None)
            begin = time.perf_counter()
            fleet.post_receipt(receipt)
            samples.append((time.perf_counter() - begin) * 1000)
        if time.monotonic() > deadline:
            return samples, False
    return samples, True


def _wide(prefix: str, url: str) -> dict[str, float]:
    """Receipt p50 in a run of one WIDE_ITEMS-item map against 10-step runs' (same store)."""
    with open_store(url) as store:
        fleet = SyncFleetService(store)
        fleet.register_worker({"worker_id": "wide"})
        narrow: list[float] = []
        steps = [{"id": f"s{i}", "type": "tool", "tool": "noop"} for i in range(10)]
        for _ in range(30):
            fleet.submit_run({"name": "ten", "seed": 1, "steps": steps})
            narrow += _drain(fleet, float("inf"))[0]
        spec = {
            "name": "wide",
            "seed": 1,
            "inputs": {"items": list(range(WIDE_ITEMS))},
            "steps": [
                {
                    "id": "each",
                    "type": "map",
                    "over": {"from": "inputs.items"},
                    "step": {"type": "tool", "tool": "noop"},
                }
            ],
        }
        begin = time.monotonic()
        submitted = time.perf_counter()
        run = fleet.submit_run(spec)
        submit_s = time.perf_counter() - submitted
        samples, finished = _drain(fleet, begin + WIDE_LIMIT_S)
        took = time.monotonic() - begin
        status = fleet.get_run(run.run_id).status
    completed = finished and status == "completed"
    if not completed:
        _note(
            f"{prefix}: the {WIDE_ITEMS:,}-item map run did not complete within "
            f"{WIDE_LIMIT_S}s ({len(samples):,} receipts, status {status})"
        )
    wide_p50, narrow_p50 = statistics.median(samples), statistics.median(narrow)
    return {
        f"{prefix}_wide_items": float(WIDE_ITEMS),
        f"{prefix}_wide_completed": float(completed),
        f"{prefix}_wide_receipts": float(len(samples)),
        f"{prefix}_wide_submit_s": submit_s,
        f"{prefix}_wide_run_s": took,
        f"{prefix}_wide_receipt_p50_ms": wide_p50,
        f"{prefix}_wide_receipt_p95_ms": sorted(samples)[int(len(samples) * 0.95) - 1],
        f"{prefix}_10step_receipt_p50_ms": narrow_p50,
        f"{prefix}_wide_vs_10step_receipt_p50_ratio": wide_p50 / narrow_p50,
    }


# ── 4. the SDK Worker against a naive queue ──────────────────────────────────────────────────


def _sdk_worker(tmp: str) -> dict[str, float]:
    import anyio

    from fleetforge.client import FleetClient
    from fleetforge.worker import TaskRun, Worker

    async def noop(task: TaskRun) -> None:
        return None

    url = f"sqlite:///{tmp}/sdk.db"  # the embedded store's default: WAL, synchronous=NORMAL
    with open_store(url) as store:
        _submit(SyncFleetService(store), SDK_TASKS)

    async def drain() -> float:
        async with FleetClient.local(url, artifacts=f"{tmp}/artifacts") as client:
            worker = Worker(client, noop, worker_id="sdk", concurrency=4)
            await worker.register()
            start = time.perf_counter()
            stats = await worker.run(stop_when_idle=True)
            elapsed = time.perf_counter() - start
        assert stats.completed == SDK_TASKS, stats
        return SDK_TASKS / elapsed

    worker_rate = anyio.run(drain)
    naive = naive_rate(Path(tmp) / "naive.db", "NORMAL", 5000)
    _note(
        "sdk_worker_*: a cross-check of the Worker over the service as it stands; "
        "benchmarks/bench_worker.py (the Worker's own bench) is the authoritative figure"
    )
    return {
        "sdk_worker_c4_local_sqlite_normal_tasks_per_s": worker_rate,
        "naive_sqlite_normal_1w_jobs_per_s": naive,
        "sdk_worker_c4_local_vs_naive_sqlite_normal_ratio": worker_rate / naive,
    }


# ── 5. one serve or two on one PostgreSQL ────────────────────────────────────────────────────


def _serves(fresh: Callable[[], str], tmp: str) -> dict[str, float]:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_mcp_transports import fleet_env, http_server

    from fleetforge.fleet.tokens import TokenStore

    rates: dict[str, float] = {}
    for layout, servers in (("one", 1), ("two", 2)):
        url = fresh()
        with open_store(url) as store:
            _submit(SyncFleetService(store), SERVE_TASKS)
            tokens = TokenStore(store)
            clear = [tokens.create(f"hw{i}", ["work"], worker_id=f"hw{i}")[0] for i in range(4)]
        env = fleet_env(Path(tmp) / layout, url)
        with ExitStack() as stack:
            bases = [stack.enter_context(http_server(env, "--stateless")) for _ in range(servers)]
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        str(HERE / "_serve_worker.py"),
                        bases[i % servers],
                        clear[i],
                        f"hw{i}",
                        "4",
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for i in range(4)
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
        done = sum(int(o[0]) for o in outputs)
        assert done == SERVE_TASKS, outputs
        rates[layout] = done / (max(float(o[1]) for o in outputs) - start)
        spans = ", ".join(f"{o[0]} in {float(o[1]) - start:.1f}s" for o in outputs)
        _note(f"serve, {layout}: tasks per HTTP worker: {spans}")
    return {
        "postgres_one_serve_4_http_workers_tasks_per_s": rates["one"],
        "postgres_two_serves_2_http_workers_each_tasks_per_s": rates["two"],
        "postgres_two_serves_vs_one_ratio": rates["two"] / rates["one"],
    }


# ── 3. peers ─────────────────────────────────────────────────────────────────────────────────


def _peers(figures: dict[str, float]) -> dict[str, float]:
    """The issue's goal ratios against the peers' JSON (its median table)."""
    if not PEERS_JSON.exists():
        _note(
            f"no peers JSON at {PEERS_JSON}: the ratios against pgqueuer, DBOS and naive SQLite "
            "need it (run ../shared/bench/queue_peers/run.sh --jobs 5000 --workers 1,4 "
            "--repeat 3 first, or set FLEETFORGE_PEERS_JSON)"
        )
        return {}
    data = json.loads(PEERS_JSON.read_text())
    rows = data.get("table") or data.get("rows") or []
    peer = {
        (r["system"], int(r["workers"])): float(r["process_jobs_s"])
        for r in rows
        if r.get("process_jobs_s")
    }
    age_min = (time.time() - PEERS_JSON.stat().st_mtime) / 60
    _note(
        f"peers: {PEERS_JSON} written {age_min:.0f} min before this point, "
        f"{len(rows)} cells ({'median of repeats' if 'table' in data else 'single run'})"
    )
    out: dict[str, float] = {}
    for (system, workers), rate in sorted(peer.items()):
        out[f"peer_{system.replace('-', '_')}_{workers}w_jobs_per_s"] = rate
    label = "batched" if BATCH_API else "max10_unbatched"
    pairs = [
        ("postgres_4w_procs", "pgqueuer", 4, 0.5),
        ("postgres_4w_procs", "dbos-pg", 4, 10.0),
        ("sqlite_full_1w_threads", "sqlite-wal-full", 1, 0.3),
        ("sqlite_normal_1w_threads", "sqlite-wal-normal", 1, 0.15),
    ]
    for ours, system, workers, goal in pairs:
        mine = figures.get(f"{ours}_{'batched' if BATCH_API else 'max10'}_tasks_per_s")
        theirs = peer.get((system, workers))
        if mine is None or theirs is None:
            _note(
                f"ratio {ours} vs {system} w={workers}: missing figure "
                f"({'ours' if mine is None else system})"
            )
            continue
        peer_name = f"{system.replace('-', '_')}_{workers}w"
        name = f"ratio_{ours.replace('_threads', '')}_{label}_vs_{peer_name}"
        out[name] = mine / theirs
        GOALS[name] = (">=", goal)
    return out


# ── all ──────────────────────────────────────────────────────────────────────────────────────


def _load() -> float:
    return os.getloadavg()[0]


def run() -> dict[str, float]:
    NOTES.clear()
    figures: dict[str, float] = {
        "cpus": float(CPUS),
        "tasks": float(TASKS),
        "batch_api": float(BATCH_API),
        "load_1m_start": _load(),
    }
    if not BATCH_API:
        _note(
            "SyncFleetService has no complete_tasks: every figure is unbatched; the goal "
            "ratios use the max10 figures and say so"
        )
    counter = iter(range(100_000))
    started = time.monotonic()

    def lap(what: str) -> None:
        print(
            f"  bench_fleet: {what} done at {time.monotonic() - started:.0f}s (load {_load():.2f})",
            flush=True,
        )

    with tempfile.TemporaryDirectory(prefix="fleetforge-bench-") as tmp:
        figures |= _count_sqlite(tmp)
        lap("SQLite counts")
        for mode in ("full", "normal"):

            def fresh(m: str = mode) -> str:
                return f"sqlite:///{tmp}/{m}{next(counter)}.db?synchronous={m}"

            noop = _throughput(f"sqlite_{mode}", fresh)
            figures |= noop
            if mode == "full":
                figures |= _envelopes("sqlite_full", fresh, noop)
            for name, value in _parent_child(fresh()).items():
                figures[f"sqlite_{mode}_{name}"] = value
            lap(f"SQLite {mode}")
        figures |= _wide("sqlite_normal", f"sqlite:///{tmp}/wide.db?synchronous=normal")
        lap("SQLite wide run")
        figures |= _sdk_worker(tmp)
        lap("SDK Worker vs naive SQLite")
        bindir = find_postgres_bin()
        if bindir is None:
            _note("PostgreSQL server programs not found: skipping the PostgreSQL figures")
        else:
            with postgres_server(bindir, durable=True) as admin:
                import psycopg

                def fresh_pg() -> str:
                    name = f"fleet_bench_{next(counter)}"
                    with psycopg.connect(admin, autocommit=True) as conn:
                        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
                    return admin.rpartition("/")[0] + f"/{name}"

                figures |= _count_postgres(admin, fresh_pg)
                lap("PostgreSQL counts")
                noop = _throughput("postgres", fresh_pg)
                figures |= noop
                figures |= _envelopes("postgres", fresh_pg, noop)
                for name, value in _parent_child(fresh_pg()).items():
                    figures[f"postgres_{name}"] = value
                lap("PostgreSQL throughput")
                figures |= _wide("postgres", fresh_pg())
                lap("PostgreSQL wide run")
                try:  # HTTP servers under load can fail where the service did not: say so
                    figures |= _serves(fresh_pg, tmp)
                except Exception as exc:  # keep every other figure
                    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
                    _note(f"serve, one vs two: FAILED ({type(exc).__name__}: {first})")
                lap("serve: one vs two")
    _count_table(figures)
    figures |= _peers(figures)
    figures["load_1m_end"] = _load()
    if QUICK:
        _note(
            f"QUICK: {TASKS} tasks per cell and only the cells the goals read, a "
            f"{WIDE_ITEMS:,}-item wide run (10,000 in full mode), {SDK_TASKS} SDK tasks, "
            f"{SERVE_TASKS} tasks through serve"
        )
    return figures
