"""A newcomer's mistakes on the command line: each is one line on stderr, starting with
``error:``, with the exit code docs/contracts.md gives its kind, and never a traceback.

Every case runs the real ``fleetforge`` script in a fresh folder (no store there unless the case
makes one), so what is checked is what a person sees.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fleetforge.cli import app
from fleetforge.cli._main import run

FLEETFORGE = str(Path(sys.executable).with_name("fleetforge"))
SPEC = {"name": "x", "seed": 1, "steps": [{"id": "a", "type": "tool", "tool": "t"}]}

# these modules hidden, as in an install without the langgraph, autogen and crewai extras
NO_EXTRAS = """
import importlib.abc, sys
HIDDEN = ("langgraph", "langchain_core", "autogen_agentchat", "autogen_ext", "crewai")
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Hide())
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fleetforge(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FLEETFORGE_", "COLUMNS"))}
    return subprocess.run([FLEETFORGE, *args], cwd=folder, env=base | (env or {}),
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def one_error_line(done: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """The one line a mistake printed (after checking the exit code and that it is alone)."""
    printed = done.stdout + done.stderr
    assert "Traceback" not in printed, printed
    assert done.returncode == exit_code, printed
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    return tmp_path


@pytest.fixture
def submitted(folder: Path) -> str:
    done = fleetforge(folder, "submit", "spec.json")
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[0]


USAGE = [
    (["runs", "--status", "bogus"], "'bogus' is not one of"),
    (["runs", "--bogus"], "No such option: --bogus"),
    (["show"], "Missing argument"),
    (["shwo", "run_1"], "No such command 'shwo'"),
    (["events", "--type", "task_evnt"], "did you mean task_event"),
    (["validate", "absent.json"], "cannot read"),
    (["worker", "no_such_module:handle"], "cannot import 'no_such_module'"),
    (["resume", "run_1", "--value", "yes"], "--value is not JSON"),
]


@pytest.mark.parametrize(("args", "says"), USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_mistakes_exit_2(
    folder: Path,
    args: list[str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # in process (the script's main, without starting a Python for each): same one line
    monkeypatch.chdir(folder)
    code = run(app, args)
    printed = capsys.readouterr()
    done = subprocess.CompletedProcess(args, code, printed.out, printed.err)
    line = one_error_line(done, 2)
    assert says in line


@pytest.mark.slow
def test_an_unknown_run_is_not_found_in_the_store_named(folder: Path, submitted: str) -> None:
    for command in ("show", "output", "events", "cancel"):
        line = one_error_line(fleetforge(folder, command, "run_nope"), 3)
        assert "no run 'run_nope' in the store sqlite:///.fleet/fleet.db" in line


@pytest.mark.slow
def test_reading_where_no_store_is_creates_none(tmp_path: Path) -> None:
    for args in (["show", "run_nope"], ["runs"], ["events"]):
        line = one_error_line(fleetforge(tmp_path, *args), 3)
        assert "no fleet store at sqlite:///.fleet/fleet.db" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_store_in_a_folder_that_does_not_exist_is_refused(folder: Path) -> None:
    store = f"sqlite:///{folder / 'nonexistent' / 'dir' / 'f.db'}"
    line = one_error_line(fleetforge(folder, "--store", store, "submit", "spec.json"), 2)
    assert "does not exist" in line
    assert not (folder / "nonexistent").exists()
    home = folder / "fresh-home"  # the default place, FLEETFORGE_HOME, is created
    done = fleetforge(folder, "submit", "spec.json", env={"FLEETFORGE_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    assert (home / "fleet.db").is_file()


@pytest.mark.slow
def test_an_unreachable_fleet_server_is_exit_6_at_once(folder: Path) -> None:
    (folder / "m.py").write_text("def f(task):\n    return 1\n")
    url = f"http://127.0.0.1:{closed_port()}/mcp"
    for args in (["worker", "m:f"], ["work", "--exec", "cat"]):
        # one line: no "trying again" warnings, a refused connection is not retried
        line = one_error_line(fleetforge(folder, *args, "--url", url, "--token", "ffk_x"), 6)
        assert f"cannot reach the fleet server at {url}: connection refused" in line


@pytest.mark.slow
def test_an_unreachable_database_is_exit_6_at_once(folder: Path) -> None:
    store = f"postgresql://fleetforge@127.0.0.1:{closed_port()}/fleet"
    line = one_error_line(fleetforge(folder, "--store", store, "runs"), 6)
    assert "Connection refused" in line


@pytest.mark.slow
def test_submit_wait_timeout_is_exit_2(folder: Path) -> None:
    done = fleetforge(folder, "submit", "spec.json", "--wait", "--timeout", "0.5")
    line = one_error_line(done, 2)
    assert "is still running after 0.5s" in line


@pytest.mark.slow
def test_serve_on_a_port_in_use_is_exit_2(folder: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_error_line(fleetforge(folder, "serve", "--no-auth", "--port", str(port)), 2)
    assert f"cannot listen on 127.0.0.1:{port}: it is in use" in line


@pytest.mark.slow
def test_the_demo_without_the_framework_extras_refuses_before_submitting(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_EXTRAS)
    done = fleetforge(tmp_path, "demo", env={"PYTHONPATH": str(site)})
    line = one_error_line(done, 2)
    assert 'pip install -e ".[langgraph,autogen,crewai]"' in line
    assert not (tmp_path / ".fleet").exists()  # nothing submitted, no store made


@pytest.mark.slow
def test_debug_shows_the_traceback(folder: Path) -> None:
    for flag, env in ((["--debug"], {}), ([], {"FLEETFORGE_DEBUG": "1"})):
        done = fleetforge(folder, *flag, "validate", "absent.json", env=env)
        assert done.returncode == 2
        assert "Traceback" in done.stderr
        assert done.stderr.rstrip().splitlines()[-1].startswith("error: cannot read")


@pytest.mark.slow
def test_postgres_mistakes_fail_at_once(folder: Path, pg_url: str) -> None:
    base = pg_url.rsplit("/", 1)[0]
    cases = [
        (f"{base}/no_such_db", 3, 'database "no_such_db" does not exist'),
        (pg_url.replace("fleetforge@", "nobody@"), 1, 'role "nobody" does not exist'),
    ]
    for store, code, says in cases:  # one line: not the pool's retries and their warnings
        line = one_error_line(fleetforge(folder, "--store", store, "runs"), code)
        assert says in line
