"""Group commit (issue 20): concurrent write units of one store share one transaction.

Each test runs on SQLite (where group commit is on by default) and on PostgreSQL (where it is
off by default, so these tests switch it on). A recording backend logs every COMMIT once it is
done, and can make the next COMMIT fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fleetforge.contracts import FleetReceipt
from fleetforge.errors import LeaseLostError, StoreError, UsageError
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore, Unit, open_backend, open_store
from fleetforge.ids import new_id
from tests.factories import DIGEST, SPEC, event

ROOT = Path(__file__).parents[1]


class Recording:
    """A backend that appends "COMMIT" to ``log`` after each write transaction committed, and
    makes the next ``fail`` commits fail instead (rolled back, StoreError raised)."""

    def __init__(self, real: Any, log: list[Any]) -> None:
        self.real = real
        self.log = log
        self.fail = 0
        self.transient = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    @contextmanager
    def write(self, *, exclusive: bool = False) -> Iterator[Any]:
        with self.real.write(exclusive=exclusive) as tx:
            yield tx
            if self.fail:
                self.fail -= 1
                raise StoreError("injected COMMIT failure", transient=self.transient)
        self.log.append("COMMIT")


@pytest.fixture
def recorded(store_url: str) -> Iterator[tuple[EventStore, Recording]]:
    """A store with group commit on, over a recording backend."""
    recording = Recording(open_backend(store_url), [])
    store = EventStore(recording, group_commit=True)  # type: ignore[arg-type]
    yield store, recording
    store.close()


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def _run_events(run_id: str) -> list[Any]:
    return [
        event("run_submitted", run_id, spec=SPEC, spec_digest=DIGEST),
        event("run_started", run_id),
    ]


def _one_group(
    store: EventStore, bodies: list[Callable[[Unit], None]], log: list[Any]
) -> list[BaseException | None]:
    """Run each body in its own thread and unit; the first leads a group and holds it open
    until all the others are queued behind it. Log ("returned", i) as each ``with`` returns;
    return what each raised (None: it returned)."""
    assert store.group is not None
    outcomes: list[BaseException | None] = [None] * len(bodies)
    entered, release = threading.Event(), threading.Event()
    queued_before = store.group.queued

    def run(i: int) -> None:
        try:
            with store.transaction() as unit:
                if i == 0:
                    entered.set()
                    release.wait(timeout=30)
                bodies[i](unit)
            log.append(("returned", i))
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    threads[0].start()
    assert entered.wait(timeout=30)
    for thread in threads[1:]:
        thread.start()
    _wait_until(lambda: store.group.queued == queued_before + len(bodies) - 1, "the queue")
    release.set()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    return outcomes


def _appending(run_ids: list[str], order: list[int], i: int) -> Callable[[Unit], None]:
    def body(unit: Unit) -> None:
        order.append(i)
        unit.append(_run_events(run_ids[i]))

    return body


def test_concurrent_units_share_one_commit_and_return_after_it(
    recorded: tuple[EventStore, Recording],
) -> None:
    store, recording = recorded
    assert store.group is not None
    log = recording.log
    run_ids = [new_id("run") for _ in range(5)]
    order: list[int] = []
    outcomes = _one_group(store, [_appending(run_ids, order, i) for i in range(5)], log)
    assert outcomes == [None] * 5
    assert log[0] == "COMMIT"  # before any return
    assert log.count("COMMIT") == 1
    assert sorted(log[1:]) == [("returned", i) for i in range(5)]
    assert (store.group.commits, store.group.units) == (1, 5)
    # seq order is the order the units ran in, each unit's events together
    stored = [row.run_id for row in store.iter_rows()]
    assert stored == [run_ids[i] for i in order for _ in range(2)]
    assert len(store.table_rows("runs")) == 5


def test_a_failing_unit_is_undone_alone(recorded: tuple[EventStore, Recording]) -> None:
    store, recording = recorded
    run_ids = [new_id("run") for _ in range(5)]
    order: list[int] = []
    bodies = [_appending(run_ids, order, i) for i in range(5)]

    def raises(unit: Unit) -> None:
        unit.append(_run_events(run_ids[2]))
        unit.flush()  # its events inserted too, not only projected
        raise ValueError("boom")

    def driver_error(unit: Unit) -> None:
        unit.append(_run_events(run_ids[3]))
        unit.tx.execute("SELECT * FROM no_such_table")

    bodies[2], bodies[3] = raises, driver_error
    outcomes = _one_group(store, bodies, recording.log)
    assert isinstance(outcomes[2], ValueError)
    assert isinstance(outcomes[3], StoreError)  # translated in the member's own thread
    assert [outcomes[i] for i in (0, 1, 4)] == [None, None, None]
    assert recording.log.count("COMMIT") == 1
    assert {row.run_id for row in store.iter_rows()} == {run_ids[i] for i in (0, 1, 4)}
    assert {row[0] for row in store.table_rows("runs")} == {run_ids[i] for i in (0, 1, 4)}
    assert verify(store) == []


def test_items_in_savepoints_of_grouped_units_fail_alone(
    recorded: tuple[EventStore, Recording],
) -> None:
    """A batch's items (Unit.savepoint) inside units that share a transaction: a failing item
    undoes only itself (and its unit's memo), a failing unit only itself, and every unit that
    returns does so after the one COMMIT."""
    store, recording = recorded
    run_ids = [new_id("run") for _ in range(12)]
    memos: dict[int, dict[Any, Any]] = {}

    def batch(first: int, failing: Callable[[Unit], None]) -> Callable[[Unit], None]:
        def body(unit: Unit) -> None:
            unit.memo["before"] = True
            with unit.savepoint():
                unit.append(_run_events(run_ids[first]))
            try:
                with unit.savepoint():
                    unit.append(_run_events(run_ids[first + 1]))
                    unit.memo["undone"] = True
                    failing(unit)
            except ValueError:
                pass
            memos[first] = dict(unit.memo)
            with unit.savepoint():
                unit.append(_run_events(run_ids[first + 2]))

        return body

    def raises(unit: Unit) -> None:
        raise ValueError("this item fails")

    def bad_sql(unit: Unit) -> None:
        unit.tx.fetchall("SELECT * FROM no_such_table")

    def unit_fails(unit: Unit) -> None:
        with unit.savepoint():
            unit.append(_run_events(run_ids[9]))
        unit.append(_run_events(run_ids[10]))
        unit.flush()  # its events inserted, then the unit fails
        raise ValueError("this unit fails")

    def plain(unit: Unit) -> None:
        unit.append(_run_events(run_ids[11]))

    bodies = [plain, batch(0, raises), unit_fails, batch(3, raises), batch(6, bad_sql)]
    outcomes = _one_group(store, bodies, recording.log)
    assert outcomes[2] is not None
    assert str(outcomes[2]) == "this unit fails"
    # a driver error in an item ends its unit (as it ends a batch in the service), alone
    assert isinstance(outcomes[4], StoreError)
    assert "no_such_table" in str(outcomes[4])
    assert outcomes[:2] == [None, None]
    assert outcomes[3] is None
    assert recording.log[0] == "COMMIT"
    assert recording.log.count("COMMIT") == 1
    assert sorted(recording.log[1:]) == [("returned", i) for i in (0, 1, 3)]
    kept = {run_ids[i] for i in (0, 2, 3, 5, 11)}
    assert {row.run_id for row in store.iter_rows()} == kept
    assert {row[0] for row in store.table_rows("runs")} == kept
    for first in (0, 3):  # the failed item's savepoint took the unit's memo with it
        assert memos[first] == {}
    assert verify(store) == []


def test_a_failing_leader_lets_the_queued_units_start_over(
    recorded: tuple[EventStore, Recording],
) -> None:
    store, recording = recorded
    run_ids = [new_id("run") for _ in range(4)]
    order: list[int] = []
    bodies = [_appending(run_ids, order, i) for i in range(4)]

    def raises(unit: Unit) -> None:
        unit.append(_run_events(run_ids[0]))
        raise ValueError("the leader failed")

    bodies[0] = raises
    outcomes = _one_group(store, bodies, recording.log)
    assert isinstance(outcomes[0], ValueError)
    assert outcomes[1:] == [None, None, None]
    assert {row.run_id for row in store.iter_rows()} == set(run_ids[1:])
    assert len(store.table_rows("runs")) == 3


def test_a_failing_commit_fails_every_member(recorded: tuple[EventStore, Recording]) -> None:
    store, recording = recorded
    run_ids = [new_id("run") for _ in range(4)]
    order: list[int] = []
    recording.fail = 1
    outcomes = _one_group(store, [_appending(run_ids, order, i) for i in range(4)], recording.log)
    for outcome in outcomes:  # nobody reports success, and each may be run again
        assert isinstance(outcome, StoreError)
        assert outcome.context.get("transient") is True
    assert recording.log == []
    assert store.count() == 0
    assert store.table_rows("runs") == []
    # the store goes on: the next group commits
    outcomes = _one_group(store, [_appending(run_ids, order, i) for i in range(4)], recording.log)
    assert outcomes == [None] * 4
    assert store.count() == 8


def test_group_max_bounds_a_group(store_url: str) -> None:
    recording = Recording(open_backend(store_url), [])
    with EventStore(recording, group_commit=True, group_max=2) as store:  # type: ignore[arg-type]
        assert store.group is not None
        run_ids = [new_id("run") for _ in range(4)]
        order: list[int] = []
        bodies = [_appending(run_ids, order, i) for i in range(4)]
        entered, release = threading.Event(), threading.Event()

        def hold(unit: Unit) -> None:
            entered.set()
            release.wait(timeout=30)
            bodies[0](unit)

        threads = [threading.Thread(target=_unit, args=(store, b)) for b in [hold, *bodies[1:]]]
        threads[0].start()
        assert entered.wait(timeout=30)
        threads[1].start()  # joins the first group, which is then full
        _wait_until(lambda: store.group.queued == 1, "the second unit queued")
        for thread in threads[2:]:
            thread.start()
        if store.backend.name == "sqlite":  # a second group forms behind the first's lock
            _wait_until(lambda: store.group.queued == 2, "a second group")
        else:  # a second group (or two) commits on another connection meanwhile
            _wait_until(lambda: store.count() == 4, "the other units committed")
        release.set()
        for thread in threads:
            thread.join(timeout=60)
        assert store.count() == 8
        assert store.group.units == 4
        commits = recording.log.count("COMMIT")
        assert commits == 2 if store.backend.name == "sqlite" else commits in (2, 3)


def _unit(store: EventStore, body: Callable[[Unit], None]) -> None:
    with store.transaction() as unit:
        body(unit)


def test_after_commit_runs_only_after_a_commit(recorded: tuple[EventStore, Recording]) -> None:
    store, recording = recorded
    with store.transaction() as unit:
        unit.append(_run_events(new_id("run")))
        unit.after_commit(lambda: recording.log.append("callback"))
        assert recording.log == []
    assert recording.log == ["COMMIT", "callback"]
    recording.fail = 1

    def undone() -> None:
        with store.transaction() as unit:
            unit.append(_run_events(new_id("run")))
            unit.after_commit(lambda: recording.log.append("never"))

    with pytest.raises(StoreError):
        undone()
    assert "never" not in recording.log


def test_a_unit_inside_a_unit_is_refused_not_hung(
    recorded: tuple[EventStore, Recording],
) -> None:
    store, _ = recorded
    with (
        store.transaction(),
        pytest.raises(UsageError, match="inside another unit"),
        store.transaction(),
    ):
        pass
    assert store.count() == 0


# ── the service on a grouped store ───────────────────────────────────────────────────────────


def test_a_transient_commit_failure_is_retried_by_the_service(
    recorded: tuple[EventStore, Recording],
) -> None:
    store, recording = recorded
    fleet = SyncFleetService(store)
    recording.fail = 1
    fleet.register_worker({"worker_id": "w"})  # the first COMMIT fails; _retrying runs it again
    assert store.count(types=["worker_registered"]) == 1
    assert recording.log == ["COMMIT"]


def test_the_service_caches_survive_an_undone_unit(
    recorded: tuple[EventStore, Recording],
) -> None:
    store, recording = recorded
    fleet = SyncFleetService(store)
    spec = {"name": "once", "seed": 1, "steps": [{"id": "a", "type": "tool", "tool": "t"}]}
    recording.fail, recording.transient = 1, False
    with pytest.raises(StoreError):  # the run was submitted (and cached) in a unit undone
        fleet.submit_run(spec, idempotency_key="k")
    run = fleet.submit_run(spec, idempotency_key="k")
    assert fleet.submit_run(spec, idempotency_key="k").run_id == run.run_id
    assert [row[0] for row in store.table_rows("runs")] == [run.run_id]
    assert fleet.get_run(run.run_id).steps[0].status == "ready"
    assert verify(store) == []


def test_worker_threads_on_a_grouped_store_match_a_rebuild(store_url: str) -> None:
    sep = "&" if "?" in store_url else "?"
    with open_store(f"{store_url}{sep}group_commit=on") as store:
        assert store.group is not None
        fleet = SyncFleetService(store)
        spec = {
            "name": "grouped",
            "seed": 2,
            "steps": [{"id": f"s{i}", "type": "tool", "tool": "noop"} for i in range(40)],
        }
        run_id = fleet.submit_run(spec).run_id
        stale: list[BaseException] = []

        def work(worker_id: str) -> None:
            fleet.register_worker({"worker_id": worker_id})
            while leased := fleet.lease_task(worker_id, lease_seconds=60):
                for entry in leased:
                    assert entry.lease is not None
                    token = entry.lease.fencing_token
                    try:  # a unit that fails in the middle of others
                        fleet.heartbeat(entry.task.task_id, token + 7, lease_seconds=60)
                    except LeaseLostError as exc:
                        stale.append(exc)
                    fleet.heartbeat(entry.task.task_id, token, lease_seconds=60)
                    fleet.post_receipt(FleetReceipt.success(entry, entry.task.step_id))

        threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(stale) == 40
        leases = Counter(e.data.task_id for e in store.query(run_id=run_id, types=["task_leased"]))
        assert len(leases) == 40
        assert set(leases.values()) == {1}  # none leased twice
        assert fleet.get_run(run_id).status == "completed"
        assert store.group.units > store.group.commits  # units did share transactions
        assert verify(store) == []


# ── crash ────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.slow
def test_a_killed_process_leaves_no_half_written_unit(store_url: str) -> None:
    sep = "&" if "?" in store_url else "?"
    url = f"{store_url}{sep}group_commit=on"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.group_writers", url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    grouped = False
    for _ in range(60):  # let it commit some groups, then kill it mid-stream
        line = proc.stdout.readline().split()
        assert line[0] == "tx"
        grouped |= int(line[1]) > int(line[2])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert grouped, "the writer's units never shared a transaction"
    with open_store(url) as reopened:
        per_run = Counter(row.run_id for row in reopened.iter_rows())
        assert sum(per_run.values()) >= 60 * 5
        assert set(per_run.values()) == {5}  # every unit whole, none partial
        assert len(reopened.table_rows("runs")) == len(per_run)
        assert verify(reopened) == []


# ── URL options ──────────────────────────────────────────────────────────────────────────────


def test_group_commit_is_switched_by_the_store_url(store_url: str) -> None:
    sep = "&" if "?" in store_url else "?"
    default_on = store_url.startswith("sqlite")
    with open_store(store_url) as store:
        assert (store.group is not None) is default_on
    with open_store(f"{store_url}{sep}group_commit=off") as store:
        assert store.group is None
    with open_store(f"{store_url}{sep}group_commit=on&group_max=4") as store:
        assert store.group is not None
        assert store.group.max_units == 4
        store.append(_run_events(new_id("run")))  # the options did not reach the driver
        assert store.count() == 2
    for bad in ("group_commit=maybe", "group_max=0", "group_max=many"):
        with pytest.raises(UsageError, match=bad.split("=")[0]):
            open_store(f"{store_url}{sep}{bad}")
