"""What trust costs (issue 21, attestation half), on SQLite and PostgreSQL.

- **Added cost per task cycle**: one cycle is ``lease_task(max_tasks=1)`` + ``complete_task``
  of a no-op tool step (runs of 50 independent steps, so a run's chain head is signed once per
  50 cycles, as in the engine benchmark). The same cycles run on one store by two services, one
  signing (the fleet key) and one with trust off (``signing=False``, what
  ``FLEETFORGE_TRUST=off`` selects), interleaved in blocks so drift hits both; the figure is
  the difference of the medians, in ms. The goal (issue 21) is <= 1 ms for mint token + sign +
  chain; this half measures sign + chain.
- **Offline verify**: receipts per second (of CPU time) of ``verify_bundle`` over a loaded
  bundle of one run of many receipts, with every check ``fleetforge verify`` runs (the
  ``CHECKS`` list: chain, signatures, chain head, artifacts, projection replay of ~5 events per
  receipt into an in-memory SQLite, capabilities), and of the chain and signature checks
  alone. The notes give each check's share.

SQLite runs with its defaults (WAL, synchronous=NORMAL); PostgreSQL is a private server, fsync
off (as the test servers). FLEETFORGE_BENCH_QUICK=1 shrinks the counts.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore, open_store
from fleetforge.fleet.trust.bundle import build_bundle, load_bundle
from fleetforge.fleet.trust.keys import SigningKey, TrustStore
from fleetforge.fleet.trust.verify import CHECKS, check_chain, check_signatures, verify_bundle
from fleetforge.testing.postgres import find_postgres_bin, postgres_server

QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
CYCLES = 400 if QUICK else 2000  # per mode and store
BLOCK = 50
VERIFY_RECEIPTS = 500 if QUICK else 2000

GOALS: dict[str, tuple[str, float]] = {
    "sqlite_added_ms_per_cycle": ("<=", 1.0),
    "postgres_added_ms_per_cycle": ("<=", 1.0),
    "verify_all_checks_receipts_per_s": (">=", 5000.0),
    "verify_chain_and_signatures_receipts_per_s": (">=", 5000.0),
}
NOTES: list[str] = []


def _spec(steps: int) -> dict[str, object]:
    steps_ = [{"id": f"s{i}", "type": "tool", "tool": "noop"} for i in range(steps)]
    return {"name": "bench-trust", "seed": 1, "steps": steps_}


def _cycle_times(fleet: SyncFleetService, n: int) -> list[float]:
    times: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        [entry] = fleet.lease_task("bench", max_tasks=1, lease_seconds=60)
        fleet.complete_task(entry.task.task_id, entry.lease.fencing_token, None)
        times.append(time.perf_counter() - start)
    return times


def _added(prefix: str, store: EventStore, key: SigningKey) -> dict[str, float]:
    on = SyncFleetService(store, signing=key)
    off = SyncFleetService(store, signing=False)
    on.register_worker({"worker_id": "bench", "tools": ["*"]})
    for _ in range(-(-(2 * CYCLES + 2 * BLOCK) // 50)):
        on.submit_run(_spec(50))
    _cycle_times(on, BLOCK)  # warm both
    _cycle_times(off, BLOCK)
    signed: list[float] = []
    plain: list[float] = []
    for _ in range(CYCLES // BLOCK):
        plain += _cycle_times(off, BLOCK)
        signed += _cycle_times(on, BLOCK)
    on_ms, off_ms = statistics.median(signed) * 1e3, statistics.median(plain) * 1e3
    NOTES.append(
        f"{prefix}: task cycle median {on_ms:.3f} ms signed vs {off_ms:.3f} ms trust off "
        f"({len(signed)} cycles each, interleaved in blocks of {BLOCK})"
    )
    return {
        f"{prefix}_cycle_signed_ms": on_ms,
        f"{prefix}_cycle_trust_off_ms": off_ms,
        f"{prefix}_added_ms_per_cycle": on_ms - off_ms,
    }


def _rate(receipts: int, work: Callable[[], object], repeat: int = 3) -> float:
    """Receipts per second of CPU time (verification is CPU-bound and single-threaded; other
    load on the machine does not count against it), best of ``repeat``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return receipts / best


def _verify(tmp: Path, key: SigningKey) -> dict[str, float]:
    trust = TrustStore()
    trust.add(key.entry())
    with open_store(f"sqlite:///{tmp / 'verify.db'}") as store:
        fleet = SyncFleetService(store, signing=key, artifacts=ArtifactStore(tmp / "cas"))
        fleet.register_worker({"worker_id": "bench", "tools": ["*"]})
        run = fleet.submit_run(_spec(VERIFY_RECEIPTS))
        for entry in iter(lambda: fleet.lease_task("bench", max_tasks=50), []):
            for e in entry:
                fleet.complete_task(e.task.task_id, e.lease.fencing_token, {"n": e.task.step_id})
        build_bundle(store, run.run_id, artifacts=None, trust=trust).write(tmp / "b.json")
    bundle = load_bundle(tmp / "b.json")
    assert verify_bundle(bundle, trust) == []
    size = (tmp / "b.json").stat().st_size
    NOTES.append(
        f"verify: one run of {VERIFY_RECEIPTS} receipts, {len(bundle.events)} events, "
        f"bundle {size / 1e6:.1f} MB; CPU time, best of 3; all checks = "
        f"{', '.join(c.__name__ for c in CHECKS)} (what `fleetforge verify` runs)"
    )
    shares = {
        c.__name__.removeprefix("check_"): VERIFY_RECEIPTS
        / _rate(VERIFY_RECEIPTS, lambda c=c: verify_bundle(bundle, trust, checks=[c]))
        for c in CHECKS
    }
    NOTES.append(
        "verify: CPU time per check, "
        + ", ".join(f"{name} {t * 1e3:.0f} ms" for name, t in shares.items())
    )
    return {
        "verify_all_checks_receipts_per_s": _rate(
            VERIFY_RECEIPTS, lambda: verify_bundle(bundle, trust)
        ),
        "verify_chain_and_signatures_receipts_per_s": _rate(
            VERIFY_RECEIPTS,
            lambda: verify_bundle(bundle, trust, checks=[check_chain, check_signatures]),
        ),
    }


def run() -> dict[str, float]:
    NOTES.clear()
    key = SigningKey.generate("bench")
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with open_store(f"sqlite:///{Path(tmp) / 'fleet.db'}") as store:
            figures |= _added("sqlite", store, key)
        bindir = find_postgres_bin()
        if bindir is None:
            NOTES.append("no PostgreSQL server programs: the postgres figures are missing")
        else:
            with postgres_server(bindir) as url, open_store(url) as store:
                figures |= _added("postgres", store, key)
        figures |= _verify(Path(tmp), key)
    return figures
