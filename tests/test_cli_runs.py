"""The run commands and the exec worker, on both stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from fleetforge.cli import app
from fleetforge.contracts import FleetInboxEntry
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store

runner = CliRunner()
ECHO = (
    f'{sys.executable} -c "import json,sys; i=json.load(sys.stdin); '
    "print(json.dumps(i['item'].upper() if 'item' in i else i))\""
)
SPEC = {
    "name": "cli-demo",
    "seed": 1,
    "labels": {"via": "cli"},
    "inputs": {"words": ["fleet", "forge"]},
    "steps": [
        {
            "id": "split",
            "type": "tool",
            "tool": "sh",
            "inputs": {"words": {"from": "inputs.words"}},
        },
        {
            "id": "shout",
            "type": "map",
            "depends_on": ["split"],
            "over": {"from": "steps.split.output#/words"},
            "step": {"type": "tool", "tool": "sh"},
        },
    ],
}

ASK = {"name": "ask", "seed": 2, "steps": [{"id": "a", "type": "agent", "agent": "x"}]}


def cli(url: str, tmp_path: Path, *args: str) -> Result:
    return runner.invoke(app, ["--store", url, "--artifacts", str(tmp_path / "a"), *args])


def submit(url: str, tmp_path: Path, spec: dict[str, object] = SPEC) -> str:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    result = cli(url, tmp_path, "submit", str(path), "--json")
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["run_id"])


def test_submit_work_show_output(store_url: str, tmp_path: Path) -> None:
    run_id = submit(store_url, tmp_path)
    worked = cli(
        store_url, tmp_path, "work", "--exec", ECHO, "--exit-when-idle", "--poll-seconds", "0.1"
    )
    assert worked.exit_code == 0, worked.output
    assert "3 completed, 0 rejected, 0 failed" in worked.stderr
    shown = cli(store_url, tmp_path, "show", run_id)
    assert "completed" in shown.stdout
    assert "shout map over items" in shown.stdout
    assert json.loads(cli(store_url, tmp_path, "output", run_id, "shout").stdout) == [
        "FLEET",
        "FORGE",
    ]
    listed = json.loads(cli(store_url, tmp_path, "runs", "--json", "--label", "via=cli").stdout)
    assert [r["run_id"] for r in listed["runs"]] == [run_id]
    assert cli(store_url, tmp_path, "output", run_id, "nope").exit_code == 3


def submit_and_wait(url: str, path: Path) -> subprocess.Popen[str]:
    """``fleetforge submit PATH --wait`` running in a child process."""
    base = [sys.executable, "-m", "fleetforge", "--store", url]
    return subprocess.Popen(
        [*base, "submit", str(path), "--wait", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def lease_and_pause(
    fleet: SyncFleetService, reason: str, waiting_for: list[object], wait_seconds: float = 0.0
) -> FleetInboxEntry:
    """What a worker whose task needs input does: lease it, then pause it."""
    fleet.register_worker({"worker_id": "w"})
    [entry] = fleet.lease_task("w", wait_seconds=wait_seconds)
    assert entry.lease is not None
    fleet.pause_task(
        entry.task.task_id, entry.lease.fencing_token, reason=reason, waiting_for=waiting_for
    )
    return entry


def test_a_failing_command_fails_the_step(store_url: str, tmp_path: Path) -> None:
    run_id = submit(store_url, tmp_path)
    failing = f"{sys.executable} -c \"import sys; sys.stderr.write('no disk'); sys.exit(3)\""
    worked = cli(
        store_url, tmp_path, "work", "--exec", failing, "--exit-when-idle", "--poll-seconds", "0.1"
    )
    assert "0 completed, 0 rejected, 1 failed" in worked.stderr
    run = json.loads(cli(store_url, tmp_path, "show", run_id, "--json").stdout)
    assert run["status"] == "failed"
    assert run["steps"][0]["failure_kind"] == "tool_error"
    assert "command exited 3: no disk" in run["steps"][0]["error"]
    retried = cli(store_url, tmp_path, "retry", run_id, "split")
    assert retried.exit_code == 0, retried.output
    assert "running" in retried.stdout


def test_cancel_resume_approve(store_url: str, tmp_path: Path) -> None:
    spec = {
        "name": "gates",
        "seed": 2,
        "breakpoints": ["b"],
        "steps": [
            {"id": "a", "type": "human", "prompt": "go?"},
            {"id": "b", "type": "human", "prompt": "really?", "depends_on": ["a"]},
        ],
    }
    run_id = submit(store_url, tmp_path, spec)
    assert cli(store_url, tmp_path, "resume", run_id).exit_code == 4  # not paused
    approved = cli(store_url, tmp_path, "approve", run_id, "a", "--comment", "yes")
    assert "paused" in approved.stdout  # stopped at the breakpoint before b
    assert cli(store_url, tmp_path, "resume", run_id).exit_code == 0
    assert "completed" in cli(store_url, tmp_path, "approve", run_id, "b").stdout
    other = submit(store_url, tmp_path, spec)
    assert "cancelled" in cli(store_url, tmp_path, "cancel", other, "--reason", "x").stdout
    assert cli(store_url, tmp_path, "cancel", other).exit_code == 4
    assert cli(store_url, tmp_path, "show", "run_missing").exit_code == 3


def test_resume_hands_a_paused_task_its_value(store_url: str, tmp_path: Path) -> None:
    run_id = submit(store_url, tmp_path, ASK)
    with open_store(store_url) as store:
        lease_and_pause(SyncFleetService(store), "ship it?", [{"question": "ship?"}])
    shown = cli(store_url, tmp_path, "show", run_id).stdout
    assert "step a waits for input: ship it?" in shown
    assert 'waiting for: [{"question": "ship?"}]' in shown
    assert f"answer with: fleetforge resume {run_id} --value JSON" in shown
    bad = cli(store_url, tmp_path, "resume", run_id, "--value", "yes")
    assert bad.exit_code == 2
    assert "--value is not JSON" in bad.stderr
    assert cli(store_url, tmp_path, "resume", run_id, "--answer", "a").exit_code == 2
    unknown = cli(store_url, tmp_path, "resume", run_id, "--answer", "zz=1")
    assert unknown.exit_code == 1
    assert "no task waiting for input as zz" in unknown.stderr
    resumed = cli(store_url, tmp_path, "resume", run_id, "--answer", 'a={"ship": true}', "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["status"] == "running"
    with open_store(store_url) as store:
        [again] = SyncFleetService(store).lease_task("w")
    assert again.resume is not None
    assert again.resume.value == {"ship": True}
    assert "waits for input" not in cli(store_url, tmp_path, "show", run_id).stdout


def test_submit_wait_says_what_a_paused_task_asks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(ASK))
    waiting = submit_and_wait(url, path)
    try:
        with open_store(url) as store:
            fleet = SyncFleetService(store)
            entry = lease_and_pause(fleet, "tone?", ["formal?"], wait_seconds=30)
            assert waiting.stderr is not None
            lines = [waiting.stderr.readline() for _ in range(3)]  # --wait says what it asks
            fleet.resume_run(entry.task.run_id, value="yes")
            [again] = fleet.lease_task("w", wait_seconds=30)
            assert again.lease is not None
            fleet.complete_task(again.task.task_id, again.lease.fencing_token, "done")
    except BaseException:
        waiting.kill()
        waiting.communicate()
        raise
    stdout, stderr = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, (stdout, stderr)
    assert stdout.strip().endswith("completed")
    assert lines[0].strip() == "step a waits for input: tone?", lines
    assert lines[1].strip() == 'waiting for: ["formal?"]'
    assert lines[2].startswith(f"answer with: fleetforge resume {entry.task.run_id}")
    assert "waits for input" not in stderr  # said once


def test_submit_wait_follows_the_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    base = [sys.executable, "-m", "fleetforge", "--store", url]
    waiting = submit_and_wait(url, path)
    worker = subprocess.run(
        [*base, "work", "--exec", ECHO, "--poll-seconds", "0.2", "--exit-when-idle"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # the worker may start before the submission lands: keep working until the run is done
    for _ in range(20):
        if waiting.poll() is not None:
            break
        subprocess.run(
            [*base, "work", "--exec", ECHO, "--poll-seconds", "0.2", "--exit-when-idle"],
            capture_output=True,
            timeout=120,
        )
    stdout, stderr = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, (stdout, stderr, worker.stderr)
    assert stdout.strip().endswith("completed")
