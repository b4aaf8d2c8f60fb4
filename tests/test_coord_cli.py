"""Coordination from the CLI and the hooks (issue 22): exit codes, the documented git
pre-commit and Claude Code hooks, and the workspace pack refusing a reserved path."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mcp.server.fastmcp.exceptions import ToolError
from typer.testing import CliRunner

from fleetforge.armory._reservations import ReservationGuard
from fleetforge.armory.workspace import Workspace
from fleetforge.cli import app
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store

runner = CliRunner()
DOCS = Path(__file__).parent.parent / "docs" / "coordination.md"
BIN = Path(sys.executable).parent


def cli(store_url: str, *args: str, input: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["--store", store_url, *args], input=input)
    return result.exit_code, result.output


def test_reserve_check_release_from_the_cli(store_url: str, tmp_path: Path) -> None:
    p = ["--project", "web"]
    assert cli(store_url, "agents", "register", "--callsign", "Ann", *p) == (0, "Ann\n")
    assert cli(store_url, "agents", "register", "--callsign", "Bob", *p)[0] == 0
    code, _ = cli(store_url, "reserve", "--as", "Ann", "src/app.py", "--reason", "login", *p)
    assert code == 0
    code, output = cli(store_url, "reserve", "--as", "Bob", "src/**", *p)
    assert code == 4
    assert "held by Ann" in output
    root = ["--root", str(tmp_path)]
    code, output = cli(
        store_url,
        "reservations",
        "check",
        "--as",
        "Bob",
        *root,
        str(tmp_path / "src/app.py"),
        str(tmp_path / "README.md"),
        *p,
    )
    assert code == 1
    assert "src/app.py: reserved by Ann (src/app.py" in output
    assert (
        cli(
            store_url,
            "reservations",
            "check",
            "--as",
            "Ann",
            *root,
            str(tmp_path / "src/app.py"),
            *p,
        )[0]
        == 0
    )
    hook = json.dumps(
        {"tool_name": "Edit", "tool_input": {"file_path": str(tmp_path / "src/app.py")}}
    )
    code, output = cli(
        store_url, "reservations", "check", "--claude-hook", "--as", "Bob", *root, *p, input=hook
    )
    assert code == 2
    assert "message Ann" in output
    code, output = cli(store_url, "reservations", "--json", *p)
    assert json.loads(output)["reservations"][0]["callsign"] == "Ann"
    sent = cli(
        store_url,
        "mail",
        "send",
        "--as",
        "Bob",
        "--to",
        "Ann",
        "--subject",
        "app.py",
        "--body",
        "may I?",
        "--ack",
        *p,
    )
    assert sent[0] == 0
    code, output = cli(store_url, "mail", "inbox", "--as", "Ann", "--json", *p)
    assert json.loads(output)["messages"][0]["body"] == "may I?"
    code, output = cli(store_url, "mail", "send", "--as", "Ann", "--to", "Bob", "--subject",
                       "re: app.py", "--body", "soon", "--inbox", "5", *p)  # fmt: skip
    assert code == 0
    assert "may I?" not in output  # bodies stay out of the listing
    assert "app.py" in output  # Ann's inbox, read in the same call, lists Bob's question
    assert cli(store_url, "release", "--as", "Ann", *p)[0] == 0
    assert cli(store_url, "reservations", "check", "--as", "Bob", *root, "src/app.py", *p)[0] == 0
    code, token = cli(store_url, "lock", "acquire", "--as", "Ann", "deploy", *p)
    assert (code, token.strip()) == (0, "1")
    assert cli(store_url, "lock", "acquire", "--as", "Bob", "deploy", *p)[0] == 4
    assert (
        cli(store_url, "lock", "release", "--as", "Ann", "deploy", "--fencing-token", "1", *p)[0]
        == 0
    )
    assert (
        cli(store_url, "lock", "release", "--as", "Ann", "deploy", "--fencing-token", "1", *p)[0]
        == 4
    )
    assert cli(store_url, "reserve", "--as", "Ann", "../etc/passwd", *p)[0] == 1
    assert cli(store_url, "mail", "inbox", *p)[0] == 2  # no --as
    assert cli(store_url, "replay", "--verify")[0] == 0


def _documented(kind: str) -> str:
    blocks = re.findall(r"```" + kind + r"\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert blocks, kind
    return str(blocks[0])


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_documented_pre_commit_hook_refuses_a_reserved_file(tmp_path: Path) -> None:
    repo = tmp_path / "web"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEETFORGE_", "GIT_"))}
    env |= {
        "FLEETFORGE_HOME": str(tmp_path / "home"),
        "PATH": f"{BIN}:{env.get('PATH', '')}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=repo, env=env | extra, capture_output=True, text=True, timeout=60
        )

    (repo / "src").mkdir(parents=True)
    assert run("git", "init", "-q").returncode == 0
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(_documented("sh"))
    hook.chmod(0o755)
    for name in ("Ann", "Bob"):
        assert run("fleetforge", "agents", "register", "--callsign", name).returncode == 0
    assert run("fleetforge", "reserve", "--as", "Ann", "src/").returncode == 0
    (repo / "src" / "app.py").write_text("print('bob')\n")
    (repo / "notes.md").write_text("free\n")
    run("git", "add", "notes.md")
    assert run("git", "commit", "-qm", "notes", FLEETFORGE_AGENT="Bob").returncode == 0
    run("git", "add", "src/app.py")
    refused = run("git", "commit", "-qm", "app", FLEETFORGE_AGENT="Bob")
    assert refused.returncode != 0
    assert "src/app.py: reserved by Ann" in refused.stderr
    assert run("git", "commit", "-qm", "app", FLEETFORGE_AGENT="Ann").returncode == 0


def test_the_documented_claude_code_hook_blocks_an_edit_of_a_held_file(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = json.loads(_documented("json"))
    [entry] = config["hooks"]["PreToolUse"]
    assert set(entry["matcher"].split("|")) >= {"Edit", "Write", "MultiEdit"}
    command = entry["hooks"][0]["command"].split()
    assert command[0] == "fleetforge"
    (tmp_path / ".git").mkdir()  # the repository's top: the project root and key
    monkeypatch.chdir(tmp_path)
    for name in ("Ann", "Bob"):
        cli(store_url, "agents", "register", "--callsign", name)
    assert cli(store_url, "reserve", "--as", "Ann", "src/app.py")[0] == 0

    def hook(agent: str, path: Path) -> int:
        event = json.dumps({"tool_name": "Write", "tool_input": {"file_path": str(path)}})
        env = {"FLEETFORGE_AGENT": agent}
        result = runner.invoke(app, ["--store", store_url, *command[1:]], input=event, env=env)
        return result.exit_code

    assert hook("Bob", tmp_path / "src" / "app.py") == 2  # Claude Code blocks the edit
    assert hook("Ann", tmp_path / "src" / "app.py") == 0
    assert hook("Bob", tmp_path / "src" / "other.py") == 0


def test_the_workspace_pack_refuses_a_path_another_agent_holds(
    store_url: str, tmp_path: Path
) -> None:
    for name in ("Ann", "Bob"):
        cli(store_url, "agents", "register", "--callsign", name, "--project", "web")
    assert cli(store_url, "reserve", "--as", "Ann", "src/*.py", "--project", "web")[0] == 0
    environ = {"FLEETFORGE_STORE": store_url, "FLEETFORGE_PROJECT": "web"}
    guards = [
        ReservationGuard.from_env(environ | {"FLEETFORGE_AGENT": a}, tmp_path)
        for a in ("Bob", "Ann")
    ]
    bob, ann = (Workspace(tmp_path, guard=g) for g in guards)
    try:
        with pytest.raises(ToolError, match=r"'src/app.py' is reserved by Ann \(src/\*\.py"):
            bob.write("src/app.py", "x")
        assert not (tmp_path / "src" / "app.py").exists()
        assert bob.write("src/notes.md", "ok") == "src/notes.md"
        assert ann.write("src/app.py", "mine") == "src/app.py"
    finally:
        for guard in guards:
            assert guard is not None
            guard.close()
    # closed: no store (nor its SQLite checkpointer thread) outlives the guard
    assert not any(t.name == "fleetforge-sqlite-checkpoint" for t in threading.enumerate())
    assert ReservationGuard.from_env({}, tmp_path) is None  # no identity, no guard


def test_missions_group_runs_by_their_mission_label(store_url: str) -> None:
    spec = {"name": "sortie", "seed": 1, "steps": [{"id": "a", "type": "tool", "tool": "t"}]}
    with open_store(store_url) as store:
        fleet = SyncFleetService(store)
        for mission in ("auth", "auth", "docs"):
            fleet.submit_run(spec | {"labels": {"mission": mission}})
        fleet.submit_run(spec)  # in no mission
        fleet.cancel_run(fleet.submit_run(spec | {"labels": {"mission": "docs"}}).run_id)
    code, output = cli(store_url, "missions", "--json")
    assert code == 0, output
    found = {m["mission"]: m for m in json.loads(output)["missions"]}
    assert found["auth"]["runs"] == 2
    assert found["docs"]["by_status"] == {"cancelled": 1, "running": 1}
    assert found["docs"]["done"] == 1
    code, output = cli(store_url, "missions", "auth")
    assert code == 0
    assert "auth" in output
    assert "docs" not in output
