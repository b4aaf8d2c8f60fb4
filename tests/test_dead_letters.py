"""Dead letters (issue 23): steps failed for good are listed with their last error, attempts and
inputs, across runs, and a list of them is retried, each in its own transaction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fleetforge.cli import app
from fleetforge.errors import ContractError
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore

RETRY = {"max_attempts": 2, "backoff_s": 5, "jitter": 0}


def _spec(name: str, *, fails: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "seed": 3,
        "inputs": {"topic": f"topic of {name}"},
        "steps": [
            {
                "id": "plan",
                "type": "agent",
                "agent": "a",
                "inputs": {"t": {"from": "inputs.topic"}},
                "retry": RETRY,
            },
            {"id": "write", "type": "agent", "agent": "a", "depends_on": ["plan"]},
        ],
        "labels": {"fails": str(fails).lower()},
    }


def _work(fleet: SyncFleetService, clock: ManualClock) -> None:
    """Lease until nothing is left: `plan` of a run labelled fails=true fails every attempt."""
    for _ in range(50):
        leased = fleet.lease_task("w1", max_tasks=10)
        if not leased:
            clock.advance(10)  # past the retry backoff
            leased = fleet.lease_task("w1", max_tasks=10)
            if not leased:
                return
        for entry in leased:
            assert entry.lease is not None
            run = fleet.get_run(entry.task.run_id)
            if run.labels.get("fails") == "true" and entry.task.step_id == "plan":
                fleet.fail_task(entry.task.task_id, entry.lease.fencing_token, "transient",
                                f"model refused (attempt {entry.attempt})")  # fmt: skip
            else:
                from fleetforge.contracts import FleetReceipt

                fleet.post_receipt(FleetReceipt.success(entry, "ok"))
    raise AssertionError("tasks kept coming")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fleet(store: EventStore, clock: ManualClock) -> SyncFleetService:
    service = SyncFleetService(store, clock=clock)
    service.register_worker({"worker_id": "w1", "trust_level": "privileged", "tools": ["*"]})
    return service


def test_dead_letters_list_failed_steps_with_error_attempts_and_inputs(
    fleet: SyncFleetService, clock: ManualClock
) -> None:
    ids = [fleet.submit_run(_spec(f"r{i}", fails=i != 1)).run_id for i in range(4)]
    _work(fleet, clock)
    page = fleet.dead_letters()
    failed = [ids[3], ids[2], ids[0]]  # newest run first; r1 completed
    assert [d.run_id for d in page.dead_letters] == failed
    first = page.dead_letters[0]
    assert (first.step_id, first.type, first.attempts) == ("plan", "agent", 2)
    assert (first.failure_kind, first.error) == ("transient", "model refused (attempt 2)")
    assert first.run_name == "r3"
    assert first.run_status == "failed"
    assert first.failed_at is not None
    assert first.inputs is not None
    assert "topic of r3" in json.dumps(first.inputs)  # the inputs the last attempt was given
    assert page.next_cursor is None

    two = fleet.dead_letters(limit=2)
    assert [d.run_id for d in two.dead_letters] == failed[:2]
    rest = fleet.dead_letters(limit=2, cursor=two.next_cursor)
    assert [d.run_id for d in rest.dead_letters] == failed[2:]
    assert rest.next_cursor is None
    assert [d.run_id for d in fleet.dead_letters(run_id=ids[2]).dead_letters] == [ids[2]]
    assert fleet.dead_letters(run_id=ids[1]).dead_letters == []
    with pytest.raises(ContractError, match="cursor") as caught:
        fleet.dead_letters(cursor="garbage")
    assert caught.value.details[0].pointer == "/cursor"


def test_a_list_of_dead_letters_is_retried_each_on_its_own(
    fleet: SyncFleetService, store: EventStore, clock: ManualClock
) -> None:
    ids = [fleet.submit_run(_spec(f"r{i}", fails=i != 1)).run_id for i in range(3)]
    _work(fleet, clock)
    before = len(store.query_rows(limit=100_000))
    result = fleet.retry_steps(
        [
            {"run_id": ids[0], "step_id": "plan"},
            {"run_id": ids[1], "step_id": "plan"},  # completed: not a dead letter
            {"run_id": ids[2], "step_id": "nope"},
            {"run_id": ids[2], "step_id": "plan"},
        ]
    )
    assert [(r.run_id, r.run_status) for r in result.retried] == [
        (ids[0], "running"),
        (ids[2], "running"),
    ]
    assert [(f.index, f.error["code"]) for f in result.failures] == [
        (1, "ConflictError"),
        (2, "NotFoundError"),
    ]
    assert "only failed or skipped" in result.failures[0].error["message"]
    for bad, pointer in (([{"run_id": float("nan"), "step_id": "a"}], "/steps/0/run_id"),
                         ([{"run_id": ids[0]}, "x"], "/steps/0/step_id")):  # fmt: skip
        with pytest.raises(ContractError) as caught:
            fleet.retry_steps(bad)
        assert caught.value.details[0].pointer == pointer
    assert fleet.dead_letters().dead_letters == []
    types = [r.type for r in store.query_rows(after=0, limit=100_000)[before:]]
    assert types.count("run_resumed") == 2  # the refused items wrote nothing
    assert verify(store) == []


def test_cli_lists_and_retries_dead_letters(
    fleet: SyncFleetService, store: EventStore, clock: ManualClock, tmp_path: Path
) -> None:
    ids = [fleet.submit_run(_spec(f"r{i}")).run_id for i in range(2)]
    _work(fleet, clock)
    runner = CliRunner()
    base = ["--store", store.url, "--artifacts", str(tmp_path / "a")]
    listed = runner.invoke(app, [*base, "dead-letters", "--inputs"])
    assert listed.exit_code == 0, listed.output
    assert "model refused (attempt 2)" in listed.output
    assert "topic of r1" in listed.output
    as_json = runner.invoke(app, [*base, "dead-letters", "--json"])
    assert [d["run_id"] for d in json.loads(as_json.stdout)["dead_letters"]] == ids[::-1]

    bad = runner.invoke(app, [*base, "retry", ids[0], "plan", "--dead-letters"])
    assert bad.exit_code == 2
    one = runner.invoke(app, [*base, "retry", "--dead-letters", ids[0], "--json"])
    assert one.exit_code == 0, one.output
    assert [r["run_id"] for r in json.loads(one.stdout)["retried"]] == [ids[0]]
    rest = runner.invoke(app, [*base, "retry", "--dead-letters"])
    assert rest.exit_code == 0, rest.output
    assert f"retried {ids[1]} plan: run running" in rest.output
    none = runner.invoke(app, [*base, "retry", "--dead-letters"])
    assert none.exit_code == 0
    assert "nothing to retry" in none.output
    assert verify(store) == []
