"""The floor of FleetForge's PostgreSQL write path under issue 20's and issue 21's guarantees.

Can the engine on PostgreSQL reach issue 20's goals (4 worker processes, batched, 5,000 no-op
tasks: >= 0.5x pgqueuer with 4 workers, >= 10x DBOS on PostgreSQL) on this machine? This measures
the least work those guarantees leave per task, done as well as PostgreSQL allows: item 3's
design taken to its limit (benchmarks/_pgfloor.sql, benchmarks/_pgfloor_worker.py). Per worker
call, ONE statement: the receipts of the 10 tasks a worker holds (fencing in the WHERE; the
run's receipt chain compared-and-swapped against the head the DSSE signatures were made on; the
receipt_recorded + step_completed events and every projection row they imply; run completion
with its signed chain head) and the lease of its next 10 (FOR UPDATE SKIP LOCKED; task_leased
events; steps/tasks/workers rows), events last under the store's shared append lock, NOTIFY in
the same flush. Trust on adds, in the 4 Python processes, a real Ed25519 DSSE signature per
receipt (+ one chain-head statement per run in the batch) and a Biscuit token per lease, stored
by a second statement after the lease commits (the token cannot be minted before the statement
picks the task; the lease fixes its id). Trust off: neither.

The store is the product's (open_store: real migrations, tables, triggers, indexes; runs
submitted by SyncFleetService), on a durable throwaway server (fsync on, synchronous_commit on).
After each cell: ``replay --verify`` (projections == a replay of the events), every run's receipt
chain, every task leased exactly once (from the log), every run completed; with trust on, two runs'
bundles through ``verify`` (chain, signatures, chain head, projections, capabilities).

Ratios use the peers' JSON of ../shared/bench/queue_peers/run.sh (``$FLEETFORGE_PEERS_JSON``,
default /tmp/qpeers_results.json) and the product's own figure from benchmarks/results/fleet.json
(``python benchmarks/run.py fleet``) when present: run those first, in the same sitting.
``FLEETFORGE_BENCH_TASKS`` (default 5,000) tasks per cell.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store
from fleetforge.testing.postgres import find_postgres_bin, postgres_server

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _floors import check_bundles, check_replay_and_chains  # noqa: E402

TASKS = int(os.environ.get("FLEETFORGE_BENCH_TASKS", 5000))
PER_RUN = 50  # bench_fleet's runs: 50 independent no-op steps
WORKERS = 4
MAX_TASKS = 10
CPUS = os.cpu_count() or 1
PEERS_JSON = Path(os.environ.get("FLEETFORGE_PEERS_JSON", "/tmp/qpeers_results.json"))
PRODUCT_JSON = HERE / "results" / "fleet.json"
# statements the server runs inside fleetfloor.cycle per call, counted in _pgfloor.sql: per run
# group 9 (run lock, chain head, fencing, tasks, receipts, steps, dependents, events aggregate,
# run_progress; + outputs and runs on the run's last batch), per lease 5 (candidates+update,
# steps, workers, events aggregate, heads), then the append lock and the INSERT
SERVER_STATEMENTS = {"group": 9, "lease": 5, "append": 2}

GOALS: dict[str, tuple[str, float]] = {}
NOTES: list[str] = []


def _note(text: str) -> None:
    NOTES.append(text)
    print(text, flush=True)


def _server_cpu(datadir: str) -> float:
    """CPU seconds of the server so far: the postmaster, its live children, and the children it
    reaped (cutime/cstime), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    master = int(Path(datadir, "postmaster.pid").read_text().split()[0])
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == master:
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        elif ppid == master:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def _db_stats(admin: psycopg.Connection[Any], dbname: str) -> dict[str, float]:
    row = admin.execute(
        "SELECT d.xact_commit, w.wal_sync, w.wal_records, w.wal_bytes "
        "FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = %s",
        (dbname,),
    ).fetchone()
    assert row is not None
    return {"commits": float(row[0]), "wal_syncs": float(row[1]), "wal_records": float(row[2]),
            "wal_bytes": float(row[3])}  # fmt: skip


def _submit(url: str) -> None:
    with open_store(url) as store:
        fleet = SyncFleetService(store)
        spec = {
            "name": "bench",
            "seed": 1,
            "steps": [{"id": f"s{i}", "type": "tool", "tool": "noop"} for i in range(PER_RUN)],
        }
        for _ in range(-(-TASKS // PER_RUN)):
            fleet.submit_run(spec)
        for w in range(WORKERS):
            fleet.register_worker({"worker_id": f"p{w}"})


def _install(url: str, root_private: str, root_public: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((HERE / "_pgfloor.sql").read_text())  # type: ignore[arg-type]
        conn.execute(
            "INSERT INTO trust_keys (name, private_key, public_key, created_at) "
            "VALUES ('capabilities', %s, %s, now()) ON CONFLICT (name) DO NOTHING",
            (root_private, root_public),
        )


def _checks(url: str, trust: bool, home: Path) -> None:
    """What the guarantees need of what the functions wrote (raises when one fails)."""
    tokens_ok = False
    with open_store(url) as store:
        check_replay_and_chains(store)
        with store.backend.read() as tx:
            leased = tx.fetchone(
                "SELECT count(*), count(DISTINCT data->>'task_id') FROM events "
                "WHERE type = 'task_leased'"
            )
            runs = tx.fetchone("SELECT count(*) FILTER (WHERE status = 'completed'), count(*) "
                               "FROM runs")  # fmt: skip
            receipts = tx.fetchone("SELECT count(*) FROM receipts")
            run_ids = [r[0] for r in tx.fetchall("SELECT run_id FROM runs ORDER BY run_id LIMIT 2")]
        assert leased is not None
        assert runs is not None
        assert receipts is not None
        if not (int(leased[0]) == int(leased[1]) == TASKS):
            raise AssertionError(f"task_leased {leased[0]} for {leased[1]} tasks of {TASKS}")
        if int(runs[0]) != int(runs[1]) or int(receipts[0]) != TASKS:
            raise AssertionError(f"runs completed {runs}, receipts {receipts[0]}")
        if trust:  # each task's stored token is the one its task_leased named
            with store.backend.read() as tx:
                tokens = tx.fetchone(
                    "SELECT count(*), count(*) FILTER (WHERE c.capability_id = "
                    "(SELECT e.data->>'capability_id' FROM events e WHERE e.type = 'task_leased' "
                    "AND e.run_id = c.run_id AND e.data->>'task_id' = c.task_id "
                    "ORDER BY e.seq DESC LIMIT 1)) FROM task_capabilities c"
                )
            assert tokens is not None
            tokens_ok = int(tokens[0]) == int(tokens[1]) == TASKS
            if not tokens_ok:
                _note(f"capability rows: {tokens[0]} stored, {tokens[1]} match their lease")
            check_bundles(store, run_ids, home)
    print(
        f"  checks passed: replay == projections, {int(runs[1])} chains intact, {TASKS} tasks "
        f"leased once each, every run completed"
        + (", 2 runs' bundles verify" if trust else "")
        + (", a token row per task naming its lease's id" if trust and tokens_ok else ""),
        flush=True,
    )


def _cell(
    admin_url: str,
    datadir: str,
    name: str,
    trust: bool,
    lanes: bool,
    defer: bool,
    home: Path,
    env: dict[str, str],
) -> dict[str, float]:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
        url = admin_url.rpartition("/")[0] + f"/{name}"
        _submit(url)
        _install(url, env["FLEETFLOOR_ROOT"], env["FLEETFLOOR_ROOT_PUBLIC"])
        mode = ["on" if trust else "off", str(WORKERS if lanes else 0), "defer" if defer else "-"]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "_pgfloor_worker.py"),
                    url,
                    f"p{w}",
                    str(MAX_TASKS),
                    *mode,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for w in range(WORKERS)
        ]
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        admin.execute("CHECKPOINT")  # the submission's dirty pages are not this cell's work
        before = _db_stats(admin, name)
        cpu_before = _server_cpu(datadir)
        start = time.monotonic()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [json.loads(p.communicate(timeout=1800)[0].strip().splitlines()[-1]) for p in procs]
        if any(p.returncode for p in procs):
            raise RuntimeError(f"a floor worker failed: {[p.returncode for p in procs]}")
        elapsed = max(o["last"] for o in outs) - start
        server_cpu = _server_cpu(datadir) - cpu_before
        after = _db_stats(admin, name)
    with psycopg.connect(url, autocommit=True) as conn:  # the functions' statistics live there
        fn = conn.execute(
            "SELECT coalesce(sum(calls), 0), coalesce(sum(total_time), 0) "
            "FROM pg_stat_user_functions WHERE schemaname = 'fleetfloor'"
        ).fetchone()
    done = sum(o["done"] for o in outs)
    if done != TASKS:
        raise AssertionError(f"{done} tasks completed of {TASKS}")
    _checks(url, trust, home)
    with psycopg.connect(admin_url, autocommit=True) as admin:  # no autovacuum of it later
        admin.execute(f"DROP DATABASE {name}")  # type: ignore[arg-type]
    total = {k: sum(o[k] for o in outs) for k in outs[0] if k not in ("start", "last")}
    variant = ("_lanes" if lanes else "") + ("_deferred_tokens" if defer else "")
    prefix = f"pgfloor{variant}_trust_{'on' if trust else 'off'}"
    assert fn is not None
    figures = {
        f"{prefix}_tasks_per_s": TASKS / elapsed,
        f"{prefix}_round_trips_per_task": total["round_trips"] / TASKS,
        f"{prefix}_client_statements_per_task": total["statements"] / TASKS,
        f"{prefix}_calls_per_task": total["calls"] / TASKS,
        f"{prefix}_commits_per_task": (after["commits"] - before["commits"]) / TASKS,
        f"{prefix}_wal_syncs_per_task": (after["wal_syncs"] - before["wal_syncs"]) / TASKS,
        f"{prefix}_wal_bytes_per_task": (after["wal_bytes"] - before["wal_bytes"]) / TASKS,
        f"{prefix}_client_cpu_ms_per_task": 1000 * total["cpu_s"] / TASKS,
        f"{prefix}_server_cpu_ms_per_task": 1000 * server_cpu / TASKS,
        # what this design would do with the machine's cores to itself and no waiting
        f"{prefix}_cpu_bound_tasks_per_s": CPUS * TASKS / (total["cpu_s"] + server_cpu),
        f"{prefix}_function_ms_per_task": float(fn[1]) / TASKS,
        f"{prefix}_cas_conflicts_per_task": total["cas_conflicts"] / TASKS,
        f"{prefix}_receipts_resigned_per_task": total["resigned"] / TASKS,
        f"{prefix}_signatures_per_task": total["signatures"] / TASKS,
        f"{prefix}_mints_per_task": total["mints"] / TASKS,
    }
    for key, value in figures.items():
        print(f"  {key} = {value:,.3f}", flush=True)
    return figures


def _peers(figures: dict[str, float]) -> dict[str, float]:
    if not PEERS_JSON.exists():
        _note(f"no peers JSON at {PEERS_JSON}: run ../shared/bench/queue_peers/run.sh first")
        return {}
    data = json.loads(PEERS_JSON.read_text())
    rows = data.get("table") or data.get("rows") or []
    peer = {
        (r["system"], int(r["workers"])): float(r["process_jobs_s"])
        for r in rows
        if r.get("process_jobs_s")
    }
    age = (time.time() - PEERS_JSON.stat().st_mtime) / 60
    _note(f"peers: {PEERS_JSON} written {age:.0f} min before this point")
    out: dict[str, float] = {}
    for system in ("pgqueuer", "dbos-pg", "pg-naive"):
        if (system, 4) in peer:
            out[f"peer_{system.replace('-', '_')}_4w_jobs_per_s"] = peer[(system, 4)]
    for variant in ("", "_lanes", "_lanes_deferred_tokens"):
        for trust in ("on", "off"):
            mine = figures.get(f"pgfloor{variant}_trust_{trust}_tasks_per_s")
            for system, goal in (("pgqueuer", 0.5), ("dbos-pg", 10.0), ("pg-naive", None)):
                theirs = peer.get((system, 4))
                if mine is None or theirs is None:
                    continue
                name = f"ratio_pgfloor{variant}_trust_{trust}_vs_{system.replace('-', '_')}_4w"
                out[name] = mine / theirs
                if goal is not None and trust == "on":
                    GOALS[name] = (">=", goal)
    return out


def _product(figures: dict[str, float]) -> dict[str, float]:
    if not PRODUCT_JSON.exists():
        _note(f"no {PRODUCT_JSON}: run `python benchmarks/run.py fleet` for the product's figure")
        return {}
    record = json.loads(PRODUCT_JSON.read_text())
    value = record["figures"].get("postgres_4w_procs_batched_tasks_per_s")
    if value is None:
        return {}
    _note(f"product: postgres_4w_procs_batched_tasks_per_s from {PRODUCT_JSON} ({record['when']})")
    out = {"product_postgres_4w_procs_batched_tasks_per_s": float(value)}
    floor = figures.get("pgfloor_trust_on_tasks_per_s")
    if floor:
        out["ratio_pgfloor_trust_on_vs_product"] = floor / float(value)
    return out


def _trust_costs(env: dict[str, str]) -> dict[str, float]:
    """Microseconds per operation of the trust plane's Python work, in this process (median of
    5 rounds of 200): a receipt's DSSE signature, a chain-head statement, a Biscuit mint."""
    import statistics
    from datetime import UTC, datetime, timedelta

    saved = {k: os.environ.get(k) for k in ("FLEETFORGE_HOME", "FLEETFLOOR_ROOT")}
    os.environ |= {k: env[k] for k in saved}
    try:
        from _floors import receipt_template
        from _pgfloor_worker import Floor

        floor = Floor.__new__(Floor)  # the parts the costs need, without a connection
        from fleetforge.fleet.trust.attest import Attestor
        from fleetforge.fleet.trust.keys import load_signing_key

        floor.attestor = Attestor(load_signing_key(Path(env["FLEETFORGE_HOME"])))
        floor.template = receipt_template()
        floor.verdict = {"score": 1.0, "passed": True, "reason": "no scorer: accepted",
                         "scorer": "none"}  # fmt: skip
        floor.worker_id = "p0"
        floor.counts = {"mints": 0}
        import biscuit_auth

        algorithm = biscuit_auth.Algorithm.Ed25519  # type: ignore[attr-defined]
        floor.root = biscuit_auth.PrivateKey.from_bytes(  # type: ignore[call-arg]
            bytes.fromhex(env["FLEETFLOOR_ROOT"]), algorithm
        )
        now = datetime.now(UTC)
        task = {"run_id": "run_x", "task_id": "run_x.s1", "step_id": "s1", "attempt": 1,
                "ft": 1, "cap": "cap_" + "0" * 32}  # fmt: skip
        receipt = floor._receipt(task, None, now)
        ops = {
            "receipt_build_and_hash": lambda: floor._receipt(task, None, now),
            "dsse_sign_receipt": lambda: floor.attestor.receipt(
                receipt, capability_token_id=task["cap"], policy_decisions=[]
            ),
            "dsse_sign_chain_head": lambda: floor.attestor.chain_head(
                "run_x", receipt["hash"], 1, "run_completed", "2026-01-01T00:00:00.000000Z"
            ),
            "biscuit_mint": lambda: floor._mint(task, now + timedelta(seconds=60)),
        }
        out: dict[str, float] = {}
        for name, op in ops.items():
            rounds = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(200):
                    op()
                rounds.append((time.perf_counter() - t0) / 200 * 1e6)
            out[f"trust_{name}_us"] = statistics.median(rounds)
        return out
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run() -> dict[str, float]:
    NOTES.clear()
    bindir = find_postgres_bin()
    if bindir is None:
        _note("PostgreSQL server programs not found: no floor figures")
        return {}
    import biscuit_auth

    from fleetforge.fleet.trust.keys import load_signing_key

    home = Path(tempfile.mkdtemp(prefix="fleetforge-floor-"))
    load_signing_key(home)  # the fleet key the workers sign with
    pair = biscuit_auth.KeyPair()
    env = dict(os.environ)
    env |= {
        "FLEETFORGE_HOME": str(home),
        "FLEETFLOOR_ROOT": pair.private_key.to_bytes().hex(),
        "FLEETFLOOR_ROOT_PUBLIC": pair.public_key.to_bytes().hex(),
    }
    figures: dict[str, float] = {"tasks": float(TASKS), "load_1m_start": os.getloadavg()[0]}
    figures |= _trust_costs(env)
    with postgres_server(bindir, durable=True) as admin_url:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            settings = {
                name: str(admin.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in ("fsync", "synchronous_commit", "wal_sync_method")
            }
            datadir = str(admin.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
        if settings["fsync"] != "on" or settings["synchronous_commit"] != "on":
            raise RuntimeError(f"the floor needs a durable server: {settings}")
        _note(f"server: {settings}")
        # (trust, run-affine leases, token rows deferred to the next call)
        cells = [
            (True, False, False),
            (False, False, False),
            (True, True, False),
            (False, True, False),
            (True, True, True),
        ]
        for i, (trust, lanes, defer) in enumerate(cells):
            what = (
                f"trust {'on' if trust else 'off'}, {'run-affine' if lanes else 'FIFO'} leases"
                + (", token rows deferred to the next call" if defer else "")
            )
            print(f"pgfloor: {what}", flush=True)
            figures |= _cell(admin_url, datadir, f"floor_{i}", trust, lanes, defer, home, env)
    _note(
        "server statements inside one fleetfloor.cycle: 9 per run in the batch (+2 on its last "
        "batch), 5 for the lease, 2 for the append; the client sends 2 per call (the cycle and "
        "NOTIFY) in one round trip, + 1 statement / round trip / commit for the capability "
        "tokens when trust is on"
    )
    figures |= _peers(figures)
    figures |= _product(figures)
    figures["load_1m_end"] = os.getloadavg()[0]
    return figures
