"""FleetService under load and failure, on both stores: random DAGs, many workers, a crash."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetforge.contracts import FleetInboxEntry, FleetReceipt
from fleetforge.errors import LeaseLostError
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore
from tests.fleet_workers import complete

ROOT = Path(__file__).parents[1]


def _url(store: EventStore) -> str:
    return store.url if store.backend.name == "sqlite" else str(store.backend.dsn)  # type: ignore[attr-defined]


def _receipt(entry: FleetInboxEntry, output: Any) -> FleetReceipt:
    return FleetReceipt.success(entry, output)


@st.composite
def dags(draw: st.DrawFn) -> dict[str, Any]:
    """Up to 50 agent steps; each depends on earlier ones and reads some of their outputs."""
    n = draw(st.integers(1, 50))
    steps = []
    for i in range(n):
        deps = sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
        inputs: dict[str, Any] = {f"from_s{d}": {"from": f"steps.s{d}.output#/value"} for d in deps}
        inputs["own"] = i
        steps.append(
            {
                "id": f"s{i}",
                "type": "agent",
                "agent": "a",
                "depends_on": [f"s{d}" for d in deps],
                "inputs": inputs,
            }
        )
    order = draw(st.permutations(range(n)))
    return {
        "name": "random-dag",
        "seed": draw(st.integers(1, 2**31)),
        "steps": [steps[i] for i in order],
    }


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=dags(), batch=st.integers(1, 5), shuffle_seed=st.integers(0, 1000))
def test_random_dags_complete_in_topological_order(
    store: EventStore, spec: dict[str, Any], batch: int, shuffle_seed: int
) -> None:
    fleet = SyncFleetService(store, clock=ManualClock())
    fleet.register_worker({"worker_id": "w"})
    run = fleet.submit_run(spec)
    deps = {s["id"]: s["depends_on"] for s in spec["steps"]}
    value = {s["id"]: hash((s["id"], spec["seed"])) % 1000 for s in spec["steps"]}
    done: list[str] = []
    shuffler = random.Random(shuffle_seed)
    while leased := fleet.lease_task("w", max_tasks=batch):
        shuffler.shuffle(leased)
        for entry in leased:
            sid = entry.task.step_id
            assert all(d in done for d in deps[sid]), f"{sid} ran before its dependencies"
            expected = {f"from_{d}": value[d] for d in deps[sid]} | {"own": int(sid[1:])}
            assert entry.task.inputs == expected
            fleet.post_receipt(_receipt(entry, {"value": value[sid]}))
            done.append(sid)
    assert sorted(done) == sorted(deps)
    assert fleet.get_run(run.run_id).status == "completed"


def _thousand_tasks(fleet: SyncFleetService) -> str:
    spec = {
        "name": "load",
        "seed": 3,
        "inputs": {"items": list(range(1000))},
        "steps": [
            {
                "id": "each",
                "type": "map",
                "over": {"from": "inputs.items"},
                "step": {"type": "tool", "tool": "noop"},
            }
        ],
    }
    return fleet.submit_run(spec).run_id


def _check_exactly_once(store: EventStore, run_id: str) -> None:
    leases = Counter(
        e.data.task_id for e in store.query(run_id=run_id, types=["task_leased"], limit=10_000)
    )
    recorded = store.query(run_id=run_id, types=["receipt_recorded"], limit=10_000)
    accepted = Counter(
        e.data.receipt.task_id for e in recorded if e.data.receipt.status == "accepted"
    )
    assert len(leases) == 1000
    assert set(leases.values()) == {1}  # no task was ever leased twice
    assert set(accepted.values()) == {1}
    assert len(accepted) == 1000
    # concurrent receipts still form one hash chain, in the log's order
    previous = None
    for event in recorded:
        assert event.data.receipt.prev_hash == previous
        previous = event.data.receipt.hash


@pytest.mark.slow
def test_eight_worker_threads_complete_each_task_exactly_once(store: EventStore) -> None:
    fleet = SyncFleetService(store)
    run_id = _thousand_tasks(fleet)
    for i in range(8):
        fleet.register_worker({"worker_id": f"t{i}", "trust_level": "privileged"})
    counts: list[int] = []
    threads = [
        threading.Thread(target=lambda w=f"t{i}": counts.append(complete(fleet, w, max_tasks=3)))
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sum(counts) == 1000
    assert fleet.get_run(run_id).status == "completed"
    _check_exactly_once(store, run_id)
    assert verify(store) == []


@pytest.mark.slow
def test_eight_worker_processes_complete_each_task_exactly_once(store: EventStore) -> None:
    fleet = SyncFleetService(store)
    run_id = _thousand_tasks(fleet)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.fleet_workers", "work", _url(store), f"p{i}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    counts = [int(p.communicate(timeout=300)[0].strip() or 0) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8
    assert sum(counts) == 1000
    final = fleet.get_run(run_id)
    assert final.status == "completed"
    assert final.outputs["each"] == list(range(1000))
    _check_exactly_once(store, run_id)
    assert verify(store) == []  # replay rebuilds what the concurrent writers projected


@pytest.mark.slow
def test_a_killed_worker_loses_its_task_to_the_next(store: EventStore) -> None:
    setup = SyncFleetService(store)
    run = setup.submit_run(
        {"name": "crash", "seed": 9, "steps": [{"id": "a", "type": "agent", "agent": "x"}]}
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fleet_workers", "hold", _url(store), "doomed", "2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    dead = FleetInboxEntry.model_validate_json(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    # the survivor's clock is past the dead worker's lease: no sleeping for it to lapse
    later = SyncFleetService(store, clock=ManualClock(datetime.now(UTC) + timedelta(seconds=5)))
    later.register_worker({"worker_id": "survivor"})
    [entry] = later.lease_task("survivor")
    assert (entry.task.task_id, entry.attempt) == (dead.task.task_id, 2)
    assert later.post_receipt(_receipt(entry, "done")).status == "accepted"
    with pytest.raises(LeaseLostError, match="stale fencing token 1"):
        later.post_receipt(_receipt(dead, "from beyond"))
    recorded = store.query(run_id=run.run_id, types=["receipt_recorded"])
    accepted = [e for e in recorded if e.data.receipt.status == "accepted"]
    assert len(accepted) == 1
    assert later.get_run(run.run_id).status == "completed"
    assert verify(store) == []


_NO_ANSWER = object()


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    width=st.integers(1, 4),
    actions=st.lists(
        st.tuples(
            st.sampled_from(["lease", "pause", "complete", "expire", "resume"]), st.integers(0, 99)
        ),
        max_size=30,
    ),
)
def test_pauses_resumes_and_expiries_in_any_order_keep_the_run_consistent(
    store: EventStore, width: int, actions: list[tuple[str, int]]
) -> None:
    clock = ManualClock()
    fleet = SyncFleetService(store, clock=clock)
    fleet.register_worker({"worker_id": "w"})
    steps = [{"id": f"s{i}", "type": "agent", "agent": "a"} for i in range(width)]
    run_id = fleet.submit_run({"name": "pauses", "seed": 5, "steps": steps}).run_id
    held: dict[str, FleetInboxEntry] = {}  # task id -> its current lease
    answers: dict[str, Any] = {}  # task id -> the value its next lease must carry
    paused: set[str] = set()
    expiries: Counter[str] = Counter()
    for action, n in actions:
        if action == "lease":
            for entry in fleet.lease_task("w", lease_seconds=10, max_tasks=2):
                task_id = entry.task.task_id
                assert task_id not in held, "leased twice at once"
                assert task_id not in paused, "a paused task was leased"
                got = entry.resume.value if entry.resume else _NO_ANSWER
                assert got == answers.get(task_id, _NO_ANSWER)
                held[task_id] = entry
        elif action in ("pause", "complete") and held:
            task_id = sorted(held)[n % len(held)]
            entry = held.pop(task_id)
            assert entry.lease is not None
            if action == "pause":
                fleet.pause_task(task_id, entry.lease.fencing_token, waiting_for=[n])
                paused.add(task_id)
            else:
                fleet.post_receipt(_receipt(entry, n))
        elif action == "expire":
            clock.advance(11)
            fleet.expire_leases(force=True)
            expiries.update(held.keys())
            held.clear()
        elif action == "resume" and paused:
            values = {task_id: n + i for i, task_id in enumerate(sorted(paused))}
            fleet.resume_run(run_id, values=values)
            answers |= values
            paused.clear()
        run = fleet.get_run(run_id)
        if max(expiries.values(), default=0) >= fleet.max_lease_expiries:
            assert run.status == "failed"  # a task that keeps losing its lease fails the run
            return
        assert {w.task_id for w in run.waiting_for_input} == paused
        assert run.status == "paused" if paused else run.status in {"running", "completed"}
    if paused:
        fleet.resume_run(run_id)
        answers |= dict.fromkeys(paused)
    for entry in held.values():
        fleet.post_receipt(_receipt(entry, 0))
    while leased := fleet.lease_task("w", max_tasks=5):
        for entry in leased:
            got = entry.resume.value if entry.resume else _NO_ANSWER
            assert got == answers.get(entry.task.task_id, _NO_ANSWER)
            fleet.post_receipt(_receipt(entry, 0))
    assert fleet.get_run(run_id).status == "completed"
    assert verify(store) == []
