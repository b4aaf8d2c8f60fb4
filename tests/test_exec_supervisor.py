"""``work --exec``: each command in its own process group, ended with the task however it ends.

The supervisor is tested directly (fast) and through ``fleetforge work`` in a child process:
cancelling the run and ``kill -9`` of the worker both end every process of a pipeline. These
run on SQLite only: the store plays no part in how a command is ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetforge.cli import _supervisor, app
from fleetforge.cli._work import command_env

runner = CliRunner()
SPEC = {"name": "exec", "seed": 3, "steps": [{"id": "s", "type": "tool", "tool": "sh"}]}


def pipeline(pids: Path, member: str = "exec sleep 60") -> str:
    """Two shells piped together, each recording its pid, then becoming ``sleep``."""
    one = f"sh -c 'echo $$ >> {pids}; {member}'"
    return f"{one} | {one}"


def state(pid: int) -> str | None:
    """The process's state letter, None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def gone(pid: int) -> bool:
    return state(pid) in (None, "Z", "X")  # a zombie has exited; only its parent's wait is due


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> float:
    """Poll ``check`` until true; the seconds it took (fails after ``timeout``)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"{what or 'waited'}: not after {timeout} s"
        time.sleep(0.01)
    return time.monotonic() - start


def all_gone(pids: list[int]) -> float:
    """Seconds until every one of ``pids`` has exited (fails after 10 s)."""
    return wait_until(lambda: all(gone(pid) for pid in pids), 10.0, "processes still running")


def recorded(pids: Path, count: int) -> list[int]:
    wait_until(lambda: pids.exists() and len(pids.read_text().split()) >= count)
    return [int(pid) for pid in pids.read_text().split()]


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids a test started; whatever is still alive at the end is killed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def supervise(command: str) -> tuple[subprocess.Popen[str], int]:
    """The supervisor running ``command``, and the write end of its control pipe."""
    control, stop = os.pipe()
    try:
        argv = [sys.executable, "-I", "-S", _supervisor.__file__, "--control", str(control)]
        proc = subprocess.Popen(
            [*argv, "--", command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=(control,),
        )
    finally:
        os.close(control)
    return proc, stop


@pytest.mark.parametrize(
    ("command", "returncode", "stdout"),
    [
        ("cat", 0, '{"x": 1}'),
        ("echo out; echo err >&2; exit 3", 3, "out\n"),
        ("kill -9 $$", -9, ""),
        ("yes | head -n 2", 0, "y\ny\n"),  # SIGPIPE is back to its default for the command
    ],
)
def test_the_supervisor_is_transparent(command: str, returncode: int, stdout: str) -> None:
    proc, stop = supervise(command)
    try:
        out, _ = proc.communicate('{"x": 1}', timeout=30)
    finally:
        os.close(stop)
    assert (proc.returncode, out) == (returncode, stdout)


def test_closing_the_control_pipe_ends_the_whole_group(
    tmp_path: Path, leftovers: list[int]
) -> None:
    pids = tmp_path / "pids"
    # one member ignores SIGTERM, so it takes the SIGKILL after the grace
    stubborn = f"sh -c 'echo $$ >> {pids}; trap \"\" TERM; exec sleep 60'"
    proc, stop = supervise(f"{pipeline(pids)} | {stubborn}")
    leftovers.extend(recorded(pids, 3))
    os.close(stop)
    took = all_gone(leftovers)
    proc.communicate(timeout=30)
    assert took < _supervisor.GRACE_SECONDS + 1.0
    assert [state(pid) for pid in leftovers] == [None] * 3  # reaped, no zombies left behind


def test_a_background_job_ends_with_the_shell(tmp_path: Path, leftovers: list[int]) -> None:
    pids = tmp_path / "pids"
    job = f"sh -c 'echo $$ >> {pids}; exec sleep 60' &"
    proc, stop = supervise(f"{job} until [ -s {pids} ]; do sleep 0.01; done; echo started")
    try:
        out, _ = proc.communicate("", timeout=30)  # stdout ends although the job held it
    finally:
        os.close(stop)
    leftovers.extend(recorded(pids, 1))
    assert (proc.returncode, out) == (0, "started\n")
    assert gone(leftovers[0])


def test_sigint_is_left_to_the_worker_and_sigterm_stops(
    tmp_path: Path, leftovers: list[int]
) -> None:
    pids = tmp_path / "pids"
    proc, stop = supervise(pipeline(pids))
    try:
        leftovers.extend(recorded(pids, 2))
        proc.send_signal(signal.SIGINT)  # a Ctrl-C at the worker's terminal
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        os.close(stop)
    assert proc.returncode == -signal.SIGTERM  # the shell died of it; so did the supervisor
    assert all(gone(pid) for pid in leftovers)


# ── through `fleetforge work --exec` ─────────────────────────────────────────────────────────


def submit(url: str) -> str:
    result = runner.invoke(app, ["--store", url, "submit", "-", "--json"], input=json.dumps(SPEC))
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["run_id"])


def start_worker(url: str, tmp_path: Path, command: str, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "fleetforge", "--store", url, "--artifacts", tmp_path / "a"),
            *("work", "--exec", command, "--exit-when-idle", "--poll-seconds", "0.1"),
            *("--lease-seconds", "1.5"),  # heartbeats every 0.5 s: how soon it hears of a cancel
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'fleet.db'}"


def test_cancelling_the_run_ends_every_process_of_the_command(
    url: str, tmp_path: Path, leftovers: list[int]
) -> None:
    run_id = submit(url)
    pids = tmp_path / "pids"
    worker = start_worker(url, tmp_path, pipeline(pids))
    try:
        leftovers.extend(recorded(pids, 2))
        assert runner.invoke(app, ["--store", url, "cancel", run_id]).exit_code == 0
        took = all_gone(leftovers)
        _, stderr = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert took < 2.0, f"the pipeline outlived the cancel by {took:.2f} s"
    assert worker.returncode == 0, stderr
    assert ": stopped" in stderr
    assert "0 completed, 0 rejected, 0 failed, 1 lost" in stderr


def test_killing_the_worker_ends_every_process_of_the_command(
    url: str, tmp_path: Path, leftovers: list[int]
) -> None:
    submit(url)
    pids = tmp_path / "pids"
    worker = start_worker(url, tmp_path, pipeline(pids))
    try:
        leftovers.extend(recorded(pids, 2))
        worker.kill()  # SIGKILL: no handler runs, the kernel closes its end of the pipe
        worker.communicate(timeout=30)
        took = all_gone(leftovers)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert took < 2.0, f"the pipeline outlived the worker by {took:.2f} s"


def test_stopping_the_worker_ends_the_command_after_its_grace(
    url: str, tmp_path: Path, leftovers: list[int]
) -> None:
    submit(url)
    pids = tmp_path / "pids"
    worker = start_worker(url, tmp_path, pipeline(pids), "--shutdown-grace", "0.2")
    try:
        leftovers.extend(recorded(pids, 2))
        worker.terminate()  # SIGTERM: no new leases; the running command gets 0.2 s
        _, stderr = worker.communicate(timeout=60)
        took = all_gone(leftovers)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert took < 2.0, f"the pipeline outlived the worker by {took:.2f} s"
    assert worker.returncode == 0, stderr
    assert "0 failed, 0 lost, 1 released" in stderr


ENV_PRINTER = (
    f'{sys.executable} -c "import json, os; print(json.dumps({{k: os.environ.get(k) for k in '
    "['FLEETFORGE_TOKEN', 'FLEETFORGE_TOKENS', 'FLEETFORGE_RUN_ID', 'OTHER']}))\""
)


def test_the_command_gets_no_fleet_token_unless_passed(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETFORGE_TOKEN", "ffk_not_for_commands")
    monkeypatch.setenv("FLEETFORGE_TOKENS", '{"tokens": []}')
    monkeypatch.setenv("OTHER", "kept")

    def env_seen(*options: str) -> dict[str, str | None]:
        run_id = submit(url)
        worked = runner.invoke(
            app,
            [
                *("--store", url, "--artifacts", str(tmp_path / "a"), "work"),
                *("--exec", ENV_PRINTER, "--exit-when-idle", "--poll-seconds", "0.1", *options),
            ],
        )
        assert worked.exit_code == 0, worked.output
        output = runner.invoke(app, ["--store", url, "output", run_id, "s"])
        seen: dict[str, str | None] = json.loads(output.stdout)
        assert seen["FLEETFORGE_RUN_ID"] == run_id
        return seen

    withheld = env_seen()
    assert (withheld["FLEETFORGE_TOKEN"], withheld["FLEETFORGE_TOKENS"]) == (None, None)
    assert withheld["OTHER"] == "kept"
    passed = env_seen("--pass-env", "FLEETFORGE_TOKEN")
    assert (passed["FLEETFORGE_TOKEN"], passed["FLEETFORGE_TOKENS"]) == (
        "ffk_not_for_commands",
        None,
    )
    assert command_env({"FLEETFORGE_TOKENS": "t", "A": "b"}, ["FLEETFORGE_TOKENS"]) == {
        "FLEETFORGE_TOKENS": "t",
        "A": "b",
    }
