"""No task is ever leased twice while a lease is live: proved from the event log, both stores.

N worker processes race over M tasks (independent tool steps). Each leases 1-5 tasks at a time
with a 1 s lease, then per task (chosen by the task id, first lease only): abandons it (no
heartbeat: the lease expires and another worker gets attempt 2; once it lapsed the abandoner
posts a receipt with its stale token, which must be refused), releases it, or heartbeats (30 s)
and posts its receipt; half of the workers post their receipts in one ``complete_tasks`` call
that also leases their next tasks (``lease_next``), the others one ``post_receipt`` each.
Afterwards every ``task_leased``, ``task_heartbeat``,
``task_lease_expired``, ``task_released``, receipt and failure event is read back in ``seq``
order and checked: a task is leased only when no lease of it is live, with a larger fencing
token; a lease ends (expiry, release, receipt) only under its own token, and an expiry only after
its ``expires_at``; each task ends with exactly one accepted receipt; projections == replay.

Sizes: 4 processes x 300 tasks per store in ``make test``; ``make stress`` runs the issue's
8 processes x 2,000 tasks (``FLEETFORGE_LEASE_FULL=1``). The workers run as
``python -m tests.test_lease_exclusive URL WORKER_ID``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from fleetforge.contracts import FleetInboxEntry, FleetReceipt
from fleetforge.errors import LeaseLostError
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventRow, open_store
from fleetforge.operations.batches import TaskCompletion

ROOT = Path(__file__).parents[1]
FULL = os.environ.get("FLEETFORGE_LEASE_FULL") == "1"
PROCESSES, TASKS = (8, 2000) if FULL else (4, 300)
LEASE_S = 1.0  # what a lease call asks for; a heartbeat extends it to 30 s
IDLE_S = 2.5  # a worker stops once nothing came for this long (> LEASE_S + an expiry scan)
OUTCOMES = ("completed", "released", "abandoned", "stale_refused", "stale_accepted", "lost")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 if FULL else 120)]


# ── the worker process ───────────────────────────────────────────────────────────────────────


def _fate(entry: FleetInboxEntry) -> str:
    """What the worker does with a leased task: the same whoever leases it; only its first
    lease (fencing token 1) may be abandoned or released, later ones complete it."""
    assert entry.lease is not None
    if entry.lease.fencing_token > 1:
        return "complete"
    digit = hashlib.sha256(entry.task.task_id.encode()).digest()[0] % 10
    return {0: "abandon", 1: "release"}.get(digit, "complete")


def _work(fleet: SyncFleetService, worker_id: str) -> Counter[str]:
    done: Counter[str] = Counter()
    abandoned: list[tuple[float, FleetInboxEntry]] = []
    number = int(worker_id.removeprefix("w"))
    batch, chained = 1 + number % 5, number % 2 == 1
    leased: list[FleetInboxEntry] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < IDLE_S or abandoned:
        # a lease that lapsed (with a margin for the clocks): its receipt must be refused
        while abandoned and abandoned[0][0] < time.monotonic():
            _, stale = abandoned.pop(0)
            try:
                fleet.post_receipt(FleetReceipt.success(stale, "stale"))
                done["stale_accepted"] += 1
            except LeaseLostError:
                done["stale_refused"] += 1
        if not leased:
            leased = fleet.lease_task(worker_id, max_tasks=batch, lease_seconds=LEASE_S)
        if not leased:
            time.sleep(0.02)
            continue
        idle_since = time.monotonic()
        keep: list[FleetInboxEntry] = []
        for entry in leased:  # first every heartbeat, so no kept lease lapses meanwhile
            assert entry.lease is not None
            task_id, token = entry.task.task_id, entry.lease.fencing_token
            fate = _fate(entry)
            try:
                if fate == "abandon":
                    abandoned.append((time.monotonic() + LEASE_S + 0.5, entry))
                    done["abandoned"] += 1
                elif fate == "release":
                    fleet.release_task(task_id, token, reason="test")
                    done["released"] += 1
                else:
                    fleet.heartbeat(task_id, token, lease_seconds=30)
                    keep.append(entry)
            except LeaseLostError:  # this slow worker's lease lapsed: another one has it
                done["lost"] += 1
        leased = []
        if chained and keep:  # the receipts and the next lease in one transaction
            items = [
                TaskCompletion(task_id=e.task.task_id, fencing_token=token, output=worker_id)
                for e in keep
                if (token := e.lease.fencing_token if e.lease else 0)
            ]
            batch_done = fleet.complete_tasks(
                items, worker_id=worker_id, lease_next=batch, lease_seconds=LEASE_S
            )
            lost = len(batch_done.failures)
            assert all(f.error["code"] == "LeaseLostError" for f in batch_done.failures), batch_done
            done["completed"] += len(items) - lost
            done["lost"] += lost
            leased = list(batch_done.leased)
            continue
        for entry in keep:
            try:
                fleet.post_receipt(FleetReceipt.success(entry, worker_id))
                done["completed"] += 1
            except LeaseLostError:
                done["lost"] += 1
    return done


def main(url: str, worker_id: str) -> None:
    with open_store(url) as store:
        fleet = SyncFleetService(store)
        fleet.register_worker({"worker_id": worker_id})
        print("ready", flush=True)
        sys.stdin.readline()
        done = _work(fleet, worker_id)
    print(" ".join(str(done[k]) for k in OUTCOMES), flush=True)


# ── the check, from the log ──────────────────────────────────────────────────────────────────


@dataclass
class _Lease:
    token: int
    expires_at: datetime
    seq: int


def _task_of(row: EventRow) -> str:
    data = row.data
    return str(data["task_id"] if "task_id" in data else data["receipt"]["task_id"])


def _when(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


def lease_violations(rows: list[EventRow]) -> tuple[list[str], Counter[str]]:
    """What in the log breaks lease exclusivity, and how many accepted receipts each task has."""
    live: dict[str, _Lease] = {}
    last_token: dict[str, int] = {}
    posted_token: dict[tuple[str, str], int] = {}  # (task, receipt id) -> its fencing token
    accepted: Counter[str] = Counter()
    bad: list[str] = []

    def end(task: str, token: int | None, row: EventRow, what: str) -> None:
        lease = live.pop(task, None)
        if lease is None:
            bad.append(f"seq {row.seq}: {what} of {task}, which no live lease holds")
        elif token is not None and token != lease.token:
            bad.append(
                f"seq {row.seq}: {what} of {task} with token {token}, the live lease's "
                f"is {lease.token} (seq {lease.seq})"
            )

    for row in rows:
        data, kind = row.data, row.type
        if kind not in _LEASE_EVENTS:
            continue
        task = _task_of(row)
        if kind == "task_leased":
            token = int(data["fencing_token"])
            if task in live:
                bad.append(
                    f"seq {row.seq}: {task} leased (token {token}) while the lease of "
                    f"seq {live[task].seq} (token {live[task].token}) was live"
                )
            if token <= last_token.get(task, 0):
                bad.append(
                    f"seq {row.seq}: {task} leased with token {token}, not above {last_token[task]}"
                )
            last_token[task] = token
            live[task] = _Lease(token, _when(data["expires_at"]), row.seq)
        elif kind == "task_heartbeat":
            lease = live.get(task)
            if lease is None or lease.token != int(data["fencing_token"]):
                bad.append(f"seq {row.seq}: heartbeat of {task} without its live lease")
            else:
                lease.expires_at = _when(data["expires_at"])
        elif kind == "task_lease_expired":
            lease = live.get(task)
            if lease is not None and _when(row.at) <= lease.expires_at:
                bad.append(
                    f"seq {row.seq}: the lease of {task} expired at {row.at}, before its "
                    f"expires_at {lease.expires_at.isoformat()}"
                )
            end(task, int(data["fencing_token"]), row, "expiry")
        elif kind == "task_released":
            end(task, int(data["fencing_token"]), row, "release")
        elif kind == "receipt_posted":
            receipt = data["receipt"]
            posted_token[task, receipt["receipt_id"]] = int(receipt["fencing_token"])
            lease = live.get(task)
            if lease is None or lease.token != int(receipt["fencing_token"]):
                bad.append(
                    f"seq {row.seq}: a receipt of {task} recorded under token "
                    f"{receipt['fencing_token']}, not a live lease's"
                )
        elif kind in ("receipt_accepted", "receipt_rejected"):
            token = posted_token.get((task, data["receipt_id"]))
            end(task, token, row, "receipt")
            accepted[task] += kind == "receipt_accepted"
        elif kind == "receipt_recorded":  # issue 20's one receipt event
            receipt = data["receipt"]
            end(task, int(receipt["fencing_token"]), row, "receipt")
            accepted[task] += receipt.get("status") == "accepted"
        elif kind in ("task_failed", "task_paused"):
            live.pop(task, None)  # after a rejected receipt, or a failure/pause under the lease
    return bad, accepted


_LEASE_EVENTS = {
    "task_leased",
    "task_heartbeat",
    "task_lease_expired",
    "task_released",
    "receipt_posted",
    "receipt_accepted",
    "receipt_rejected",
    "receipt_recorded",
    "task_failed",
    "task_paused",
}


# ── the test ─────────────────────────────────────────────────────────────────────────────────


def test_no_task_is_leased_twice_while_its_lease_is_live(store_url: str) -> None:
    with open_store(store_url) as store:
        fleet = SyncFleetService(store)
        steps = [{"id": f"s{i}", "type": "tool", "tool": "noop"} for i in range(50)]
        for _ in range(TASKS // 50):
            fleet.submit_run({"name": "leases", "seed": 1, "steps": steps})
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.test_lease_exclusive", store_url, f"w{i}"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    try:
        for proc in procs:  # all started and registered: go together
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=1700 if FULL else 100)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert [proc.returncode for proc in procs] == [0] * PROCESSES, outputs
    done = Counter({k: sum(int(o.split()[i]) for o in outputs) for i, k in enumerate(OUTCOMES)})
    assert done["completed"] == TASKS, done
    assert done["stale_accepted"] == 0, done
    assert done["abandoned"] > 0, done  # both other paths were exercised
    assert done["released"] > 0, done
    assert done["stale_refused"] == done["abandoned"], done

    with open_store(store_url) as store:
        rows = list(store.iter_rows())
        bad, accepted = lease_violations(rows)
        assert bad == [], "\n".join(bad[:20])
        assert len(accepted) == TASKS
        assert set(accepted.values()) == {1}, accepted.most_common(3)
        kinds = Counter(row.type for row in rows)
        assert kinds["task_lease_expired"] >= done["abandoned"]  # the abandoned leases lapsed
        assert kinds["task_released"] == done["released"]
        assert verify(store) == []


def test_the_check_catches_a_double_lease() -> None:
    """The log check itself: a second lease while the first is live, a lease ended under another
    token, and an expiry before its time are each reported."""

    def row(seq: int, kind: str, at: str, **data: Any) -> EventRow:
        return EventRow(seq, f"evt_{seq}", "run_1", kind, at, {"task_id": "t", **data})

    t0, t1, t2 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"
    leased = row(1, "task_leased", t0, fencing_token=1, expires_at=t1)
    bad, _ = lease_violations([leased, row(2, "task_leased", t0, fencing_token=2, expires_at=t1)])
    assert len(bad) == 1
    assert "while the lease of seq 1" in bad[0]
    bad, _ = lease_violations([leased, row(2, "task_released", t0, fencing_token=7)])
    assert len(bad) == 1
    assert "token 7" in bad[0]
    bad, _ = lease_violations([leased, row(2, "task_lease_expired", t0, fencing_token=1)])
    assert len(bad) == 1
    assert "before its expires_at" in bad[0]
    fine = [
        leased,
        row(2, "task_lease_expired", t2, fencing_token=1),
        row(3, "task_leased", t2, fencing_token=2, expires_at=t2),
    ]
    assert lease_violations(fine)[0] == []


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
