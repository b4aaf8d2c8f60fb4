"""Envelope delivery under repetition, outside CI: ``make stress`` (python -m tests.stress).

1. Each framework example (examples/*_worker.py) N times (default 50), each in a process of
   its own on a fresh SQLite fleet: the run completes and its stored ``task_event`` sequence
   numbers are 0, 1, 2, ... with no gap, ``start`` first and ``complete`` last.
2. The once flaky ``test_worker_runs_the_adapter_on_a_fleet[autogen-local]`` N times in a row,
   each in its own pytest process.
3. Wide runs at full size (issue 20): the map of 10,000 items completes on both stores and its
   counters equal replay (``tests/test_wide_runs.py`` with FLEETFORGE_STRESS=1; CI runs 1,000).
4. Followers under concurrent appends (tests/test_store_follow_concurrent.py) at full size: 8
   writer threads x 1,000 transactions (some holding their commit open), ``follow_rows`` and a
   pager reading at the same time, on SQLite and on a private PostgreSQL: each reader saw every
   seq of the table, in order.
5. Trust at lease (issue 21): 8 concurrent workers x 500 tasks on both stores; no task of a run
   with `min_trust` is leased by a worker below it (tests/test_trust_authz.py; CI runs 48).
6. Requirements at lease (issue 23): 8 workers with mixed environments x 500 tasks with mixed
   requirements on both stores; every task leased by a worker that meets it
   (tests/test_requirements.py; CI runs 120).

Prints one line per check and a summary; exits 1 when any run had a gap or failed.
``python -m tests.stress --runs 5`` for a quick look, ``--only followers`` for one check.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).parents[1]
EXAMPLES = ("langgraph_worker", "autogen_worker", "crewai_worker")
FLAKY = "tests/test_adapters.py::test_worker_runs_the_adapter_on_a_fleet[autogen-local]"
WIDE = "tests/test_wide_runs.py::test_a_wide_map_completes"
REQUIREMENTS = (
    "tests/test_requirements.py::"
    "test_every_task_is_leased_only_by_a_worker_that_meets_its_requirements"
)
TRUST = (
    "tests/test_trust_authz.py::test_eight_concurrent_workers_never_lease_a_task_above_their_trust"
)


async def _check(tmp: Path) -> str | None:
    """None when the run completed with every envelope in order, else what was wrong."""
    from fleetforge.client import FleetClient

    async with FleetClient.local(f"sqlite:///{tmp / 'fleet.db'}", artifacts=tmp / "cas") as client:
        [run] = (await client.list_runs()).runs
        events = await client.run_events(run.run_id, limit=10_000)
    envelopes = [e.data.envelope for e in events if e.type == "task_event"]  # type: ignore[attr-defined]
    seqs = [e.seq for e in envelopes]
    if run.status != "completed":
        return f"run {run.status}"
    if seqs != list(range(len(seqs))):
        return f"gap: {seqs}"
    if envelopes[0].kind != "start" or envelopes[-1].kind != "complete":
        return f"kinds {[e.kind for e in envelopes]}"
    return None


def examples(runs: int) -> bool:
    """Each example in a process of its own, as a user runs it (cold imports and all)."""
    ok = True
    for name in EXAMPLES:
        bad: list[str] = []
        started = time.monotonic()
        for n in range(runs):
            with tempfile.TemporaryDirectory(prefix="fleetforge-stress-") as tmp:
                env = os.environ | {"FLEETFORGE_STORE": f"sqlite:///{tmp}/fleet.db"}
                done = subprocess.run(
                    [sys.executable, str(ROOT / "examples" / f"{name}.py")],
                    env=env, capture_output=True, text=True, check=False, timeout=300,
                )  # fmt: skip
                if done.returncode != 0:
                    bad.append(f"run {n}: exit {done.returncode}: {done.stderr[-500:]}")
                    continue
                problem = anyio.run(_check, Path(tmp))
            if problem is not None:
                bad.append(f"run {n}: {problem}")
        took = time.monotonic() - started
        print(f"{name}: {runs - len(bad)}/{runs} runs with every envelope in order ({took:.0f}s)")
        for line in bad:
            print(f"  {line}")
        ok &= not bad
    return ok


def flaky_test(runs: int) -> bool:
    passed = 0
    started = time.monotonic()
    for n in range(runs):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", FLAKY],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode == 0:
            passed += 1
        else:
            print(f"  run {n} failed:\n{done.stdout[-2000:]}")
    took = time.monotonic() - started
    print(f"{FLAKY}: {passed}/{runs} passed in a row ({took:.0f}s)")
    return passed == runs


def wide_runs() -> bool:
    """The wide-run test at the issue's size, once on each store (PostgreSQL must run)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=900", WIDE],
        cwd=ROOT, capture_output=True, text=True, check=False,
        env=os.environ | {"FLEETFORGE_STRESS": "1", "CI": "true"},
    )  # fmt: skip
    took = time.monotonic() - started
    print(f"{WIDE} at 10,000 items: {'passed' if done.returncode == 0 else 'FAILED'} ({took:.0f}s)")
    if done.returncode != 0:
        print(done.stdout[-2000:])
    return done.returncode == 0


def trust() -> bool:
    """8 workers x 500 tasks, on both stores: no task of a run with `min_trust` is leased by a
    worker below it (issue 21; CI runs 48 tasks)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=900", TRUST],
        cwd=ROOT, capture_output=True, text=True, check=False,
        env=os.environ | {"FLEETFORGE_STRESS": "1", "CI": "true"},
    )  # fmt: skip
    took = time.monotonic() - started
    print(f"{TRUST} at 500 tasks: {'passed' if done.returncode == 0 else 'FAILED'} ({took:.0f}s)")
    if done.returncode != 0:
        print(done.stdout[-2000:])
    return done.returncode == 0


def requirements() -> bool:
    """8 workers x 500 tasks, on both stores: every task leased by a worker that meets its
    workspace requirements (issue 23; CI runs 120 tasks)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=900",
         REQUIREMENTS],
        cwd=ROOT, capture_output=True, text=True, check=False,
        env=os.environ | {"FLEETFORGE_REQUIREMENTS_TASKS": "500", "CI": "true"},
    )  # fmt: skip
    took = time.monotonic() - started
    verdict = "passed" if done.returncode == 0 else "FAILED"
    print(f"{REQUIREMENTS} at 500 tasks: {verdict} ({took:.0f}s)")
    if done.returncode != 0:
        print(done.stdout[-2000:])
    return done.returncode == 0


def followers(transactions: int = 1000) -> bool:
    from fleetforge.testing.postgres import find_postgres_bin, postgres_server
    from tests.test_store_follow_concurrent import WRITERS, check, follow_while_writing

    ok = True
    bindir = find_postgres_bin()
    with tempfile.TemporaryDirectory(prefix="fleetforge-stress-follow-") as tmp:
        urls = {"sqlite": f"sqlite:///{tmp}/fleet.db"}
        with postgres_server(bindir) if bindir else contextlib.nullcontext("") as pg:
            if pg:
                urls["postgres"] = pg
            else:
                print("followers [postgres]: PostgreSQL server programs not found")
                ok = False
            for name, url in urls.items():
                started = time.monotonic()
                try:
                    seen = follow_while_writing(url, writers=WRITERS, transactions=transactions)
                    check(seen)
                    verdict = f"both readers saw all {len(seen.table)} events in order"
                except AssertionError as exc:
                    verdict, ok = f"FAILED: {exc}", False
                took = time.monotonic() - started
                print(f"followers [{name}]: {WRITERS} writers x {transactions} transactions: "
                      f"{verdict} ({took:.0f}s)")  # fmt: skip
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    checks = ["examples", "flaky", "wide", "followers", "trust", "requirements"]
    parser.add_argument("--only", choices=checks, action="append",
                        help="run only these checks (repeatable); default: all")  # fmt: skip
    args = parser.parse_args(argv)
    only = set(args.only or checks)
    ok = True
    with tempfile.TemporaryDirectory(prefix="fleetforge-stress-home-") as home:
        # CrewAI writes under $HOME and its storage dir: keep both out of the real home
        os.environ.update(HOME=home, CREWAI_STORAGE_DIR=str(Path(home) / "crewai"))
        if "examples" in only:
            ok &= examples(args.runs)
        if "flaky" in only:
            ok &= flaky_test(args.runs)
        if "wide" in only:
            ok &= wide_runs()
        if "followers" in only:
            ok &= followers()
        if "trust" in only:
            ok &= trust()
        if "requirements" in only:
            ok &= requirements()
    print("stress: no envelope lost" if ok else "stress: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
