"""How the CLI reads: help with an example under every command and no type on flags, events
that say what a task_event holds and where the next page starts, the demo's follow-up commands
that work from where it ran, and Ctrl-C as one word."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from fleetforge.cli import app
from fleetforge.cli._argv import hoist
from fleetforge.cli._demo import _again
from fleetforge.cli._help import EXAMPLES
from fleetforge.cli._main import run
from fleetforge.client import FleetClient
from fleetforge.worker import Worker

runner = CliRunner()
SPEC = {"name": "x", "seed": 1, "steps": [{"id": "a", "type": "tool", "tool": "t"},
                                          {"id": "b", "type": "tool", "tool": "t",
                                           "depends_on": ["a"]}]}  # fmt: skip


def command_paths() -> list[str]:
    paths = []
    root = get_command(app)
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(command, "commands", None)
        paths += [f"{name} {sub}" for sub in subs] if subs else [name]
    return sorted(paths)


def test_every_command_has_an_example_that_parses() -> None:
    assert set(EXAMPLES) == set(command_paths())
    root = get_command(app)
    for path, lines in EXAMPLES.items():
        for line in lines:
            words = shlex.split(line)
            assert words[0] == "fleetforge"
            words = [words[0], *hoist(words[1:])]  # group options after the command, as run does
            # parse it as the CLI would, running nothing: its options and choices must exist
            ctx = root.make_context("fleetforge", words[1:])
            command, args = root, words[1 + words.index(path.split()[0]) :]
            for name in path.split():
                command = command.commands[name]  # type: ignore[attr-defined]
                args = args[1:] if args and args[0] == name else args
                ctx = command.make_context(name, list(args), parent=ctx)
            assert ctx.command_path == f"fleetforge {path}"


@pytest.mark.parametrize("path", command_paths())
def test_help_has_the_example_and_no_type_on_flags(path: str) -> None:
    result = runner.invoke(app, [*path.split(), "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.stdout
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "Example" in text
    for line in EXAMPLES[path]:
        assert " ".join(f"$ {line}".split())[:60] in text


def test_trust_levels_are_not_cut_mid_word() -> None:
    result = runner.invoke(app, ["worker", "--help"], env={"COLUMNS": "80"})
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "untrusted, sandboxed, internal or privileged" in text
    assert "privi\n" not in result.stdout


@pytest.mark.anyio
async def test_events_name_the_envelope_and_say_where_the_next_page_starts(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'fleet.db'}"
    async with FleetClient.local(store, artifacts=tmp_path / "artifacts") as client:
        run = await client.submit_run(SPEC)
        await Worker(client, lambda task: "done", worker_id="w").run(stop_when_idle=True)
    result = runner.invoke(app, ["--store", store, "events", run.run_id])
    assert result.exit_code == 0, result.output
    kinds = re.findall(r"task_event:\S+", result.stdout)
    assert kinds == ["task_event:start", "task_event:complete"] * 2
    every = runner.invoke(app, ["--store", store, "events", run.run_id, "--json"])
    seqs = [json.loads(line)["seq"] for line in every.stdout.splitlines()]
    first = runner.invoke(app, ["--store", store, "events", run.run_id, "--limit", "5"])
    assert first.stderr.splitlines() == [f"more: --after {seqs[4]}"]
    rest = runner.invoke(app, ["--store", store, "events", run.run_id, "--after", str(seqs[4])])
    assert rest.exit_code == 0
    assert rest.stderr == ""  # the last page says nothing more
    assert len(re.findall(r"^ *\d+ ", rest.stdout, flags=re.M)) == len(seqs) - 5


def test_the_demo_hints_use_the_cli_as_it_was_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / ".venv" / "bin" / "fleetforge"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEETFORGE_STORE", raising=False)
    monkeypatch.setattr(sys, "argv", [".venv/bin/fleetforge", "demo"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # make demo: the venv is not on PATH
    assert _again(None) == ".venv/bin/fleetforge"
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")  # the venv activated
    assert _again(None) == "fleetforge"
    pg = "postgresql://fleet:s3cret-pass@db/fleet"
    assert _again(pg) == "fleetforge --store 'postgresql://fleet:***@db/fleet'"
    monkeypatch.setenv("FLEETFORGE_STORE", "sqlite:////srv/fleet.db")
    assert _again(None) == "fleetforge --store sqlite:////srv/fleet.db"


def test_ctrl_c_is_one_word_and_exit_130(capsys: pytest.CaptureFixture[str]) -> None:
    interrupted = typer.Typer()

    @interrupted.command()
    def slow() -> None:
        raise KeyboardInterrupt

    assert run(interrupted, []) == 130
    assert capsys.readouterr().err.strip() == "interrupted"
