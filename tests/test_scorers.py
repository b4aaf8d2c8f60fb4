"""Custom scorers where receipts are judged: --scorers MODULE, the 'fleetforge.scorers'
entry-point group, submit refusing unknown names, and a receipt that reaches an unknown or
failing scorer failing its step (not leaving the task leased forever), on both stores."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fleetforge.cli import app
from fleetforge.contracts import FleetScore
from fleetforge.errors import ContractError, UsageError
from fleetforge.fleet import scoring
from fleetforge.fleet.scoring import load_scorers, register_scorer, scorer_names, unregister_scorer
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore

runner = CliRunner()


def spec(scorer: str, *, mapped: bool = False) -> dict[str, Any]:
    custom = {"kind": "custom", "name": scorer, "params": {"mod": 2}}
    step: dict[str, Any] = {"id": "a", "type": "tool", "tool": "t", "scorer": custom}
    if mapped:
        step = {"id": "a", "type": "map", "over": [1, 2],
                "step": {"type": "tool", "tool": "t", "scorer": custom}}  # fmt: skip
    return {"name": "scored", "seed": 1, "steps": [step]}


def is_even(value: Any, params: dict[str, Any]) -> bool:
    return isinstance(value, int) and value % params["mod"] == 0


@pytest.fixture
def fleet(store: EventStore) -> SyncFleetService:
    service = SyncFleetService(store)
    service.register_worker({"worker_id": "w1", "trust_level": "privileged"})
    return service


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scorer registry of the test's own: entry points unread, nothing registered."""
    monkeypatch.setattr(scoring, "_CUSTOM", {})
    monkeypatch.setattr(scoring, "_entry_points_loaded", False)
    monkeypatch.setattr(scoring, "_entry_point_errors", [])


def test_submit_refuses_a_scorer_this_process_does_not_know(
    fleet: SyncFleetService, registry: None
) -> None:
    for mapped, pointer in ((False, "/steps/0/scorer/name"), (True, "/steps/0/step/scorer/name")):
        with pytest.raises(ContractError) as refused:
            fleet.submit_run(spec("nope", mapped=mapped))
        assert [d.pointer for d in refused.value.details] == [pointer]
        assert "--scorers MODULE" in refused.value.details[0].message
    assert fleet.list_runs().runs == []  # nothing was written
    register_scorer("nope", is_even)
    assert fleet.submit_run(spec("nope", mapped=True)).status == "running"


@pytest.mark.parametrize("broken", ["unregistered", "raises"])
def test_a_receipt_reaching_a_broken_scorer_fails_the_step(
    fleet: SyncFleetService, registry: None, broken: str
) -> None:
    def explode(value: Any, params: dict[str, Any]) -> FleetScore:
        raise ValueError("scorer bug")

    register_scorer("judge", is_even)
    run = fleet.submit_run(spec("judge"))
    unregister_scorer("judge")
    if broken == "raises":
        register_scorer("judge", explode)
    [entry] = fleet.lease_task("w1")
    assert entry.lease is not None
    receipt = fleet.complete_task(entry.task.task_id, entry.lease.fencing_token, 4)
    assert receipt.status == "rejected"
    assert receipt.score is not None
    assert receipt.score.scorer == "custom:judge"
    reason = (
        "is registered in the process that judged"
        if broken == "unregistered"
        else ("raised ValueError: scorer bug")
    )
    assert reason in (receipt.score.reason or "")
    final = fleet.get_run(run.run_id)
    assert final.status == "failed"
    [step] = final.steps
    assert step.status == "failed"
    assert reason in (step.error or "")
    [failed] = fleet.store.query_rows(run_id=run.run_id, types=["task_failed"])
    assert failed.data["kind"] == "internal"
    assert fleet.lease_task("w1") == []  # nothing left leased or queued


def write_plugin(root: Path, entry_points: str) -> None:
    """A module and an installed distribution whose entry points name it."""
    (root / "ff_test_scorers.py").write_text(
        "def is_even(value, params):\n    return value % params['mod'] == 0\n"
    )
    dist = root / "ff_test_scorers-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ff-test-scorers\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[fleetforge.scorers]\n{entry_points}\n")


def test_entry_point_scorers_are_loaded_when_needed(
    fleet: SyncFleetService, registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin(tmp_path, "even = ff_test_scorers:is_even\nbroken = ff_test_missing:nothing")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "ff_test_scorers", raising=False)
    assert scorer_names() == ["even"]  # the broken one is left out, and logged
    with pytest.raises(UsageError, match="broken = ff_test_missing:nothing"):
        load_scorers()  # a judging process refuses to start with it
    run = fleet.submit_run(spec("even"))
    [entry] = fleet.lease_task("w1")
    assert entry.lease is not None
    assert fleet.complete_task(entry.task.task_id, entry.lease.fencing_token, 6).status == (
        "accepted"
    )
    assert fleet.get_run(run.run_id).status == "completed"


def test_scorers_option_on_the_commands_that_judge(
    store_url: str, registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ff_cli_scorers.py").write_text(
        "from fleetforge.fleet.scoring import register_scorer\n"
        "register_scorer('cli_even', lambda value, params: value % 2 == 0)\n"
    )
    monkeypatch.chdir(tmp_path)  # --scorers imports from the current directory, like python -m
    monkeypatch.delitem(sys.modules, "ff_cli_scorers", raising=False)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec("cli_even")))
    base = ["--store", store_url, "--artifacts", str(tmp_path / "a")]

    refused = runner.invoke(app, [*base, "submit", "--json", str(path)])
    assert refused.exit_code == 1, refused.output
    [detail] = json.loads(refused.stdout)["error"]["details"]
    assert detail["pointer"] == "/steps/0/scorer/name"

    submitted = runner.invoke(app, [*base, "submit", "--scorers", "ff_cli_scorers", str(path)])
    assert submitted.exit_code == 0, submitted.output
    run_id = submitted.stdout.split()[0]
    command = f'{sys.executable} -c "print(4)"'
    worked = runner.invoke(app, [*base, "work", "--exec", command, "--scorers", "ff_cli_scorers",
                                 "--exit-when-idle", "--poll-seconds", "0.1"])  # fmt: skip
    assert worked.exit_code == 0, worked.output
    assert "1 completed, 0 rejected" in worked.stderr
    shown = json.loads(runner.invoke(app, [*base, "show", "--json", run_id]).stdout)
    assert shown["status"] == "completed"

    for command_line in (
        ["mcp"],
        ["serve", "--no-auth"],
        ["worker", "x:y"],
        ["work", "--exec", "true"],
    ):
        missing = runner.invoke(app, [*base, *command_line, "--scorers", "ff_no_such_module"])
        assert missing.exit_code == 2, (command_line, missing.output)
        assert "ff_no_such_module" in missing.stderr
