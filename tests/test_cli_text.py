"""User text is printed as text: names, labels and errors full of markup, terminal escapes and
newlines go through `runs`, `show`, `events` and `events --follow` on both stores. Nothing
crashes, nothing reaches the terminal as a control sequence, no line is forged, and the JSON
forms still carry the exact text."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from fleetforge.cli import app
from fleetforge.cli._console import escape_control, json_text
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store

runner = CliRunner()

CORPUS = [
    "x[/]",
    "[link=https://evil.example/]click[/link]",
    "[bold red]loud[/]",
    "\x1b[2J\x1b[H cleared",
    "\x1b]0;pwned\x07 titled",
    "line\nforged: completed",
    "cr\roverwrite",
    "\u202eevil\u202c reversed",
    "zero\u200bwidth",
    "\x9b31m C1 CSI",
    ":skull: emoji code",
]
# What must never reach a terminal raw: ESC, BEL, CR, C1 CSI, bidi override/pop, zero width.
FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def cli(url: str, tmp_path: Path, *args: str) -> Result:
    return runner.invoke(app, ["--store", url, "--artifacts", str(tmp_path / "a"), *args])


def clean(output: str) -> str:
    assert not FORBIDDEN.search(output), FORBIDDEN.findall(output)
    for line in output.splitlines():
        assert not line.lstrip().startswith("forged:"), f"a forged line: {line!r}"
    return output


@pytest.fixture
def runs(store_url: str) -> list[str]:
    """One run per corpus text: its name, a label, and its step's error (so the run's too)."""
    with open_store(store_url) as store:
        fleet = SyncFleetService(store)
        fleet.register_worker({"worker_id": "w1", "trust_level": "privileged"})
        made = []
        for i, text in enumerate(CORPUS):
            spec = {"name": text, "seed": 1, "labels": {"who": text},
                    "steps": [{"id": f"s{i}", "type": "tool", "tool": "t"}]}  # fmt: skip
            made.append(fleet.submit_run(spec).run_id)
            [entry] = fleet.lease_task("w1")
            assert entry.lease is not None
            fleet.fail_task(entry.task.task_id, entry.lease.fencing_token, "tool_error", text)
    return made


def test_runs_show_and_events_print_user_text_as_text(
    store_url: str, runs: list[str], tmp_path: Path
) -> None:
    listed = cli(store_url, tmp_path, "runs")
    assert listed.exit_code == 0, listed.output
    table = clean(listed.stdout)
    for text in CORPUS:
        assert escape_control(text) in table  # markup stays literal; controls show escaped
    assert "[link=https://evil.example/]click[/link]" in table
    assert "\\x1b[2J" in table
    assert ":skull:" in table

    for run_id, text in zip(runs, CORPUS, strict=True):
        shown = cli(store_url, tmp_path, "show", run_id)
        assert shown.exit_code == 0, shown.output
        assert clean(shown.stdout).count(escape_control(text)) >= 3  # name, step error, tree
        as_json = cli(store_url, tmp_path, "show", "--json", run_id)
        assert as_json.exit_code == 0, as_json.output
        run = json.loads(clean(as_json.stdout))
        assert run["name"] == text  # the JSON escapes carry the exact text
        assert run["labels"] == {"who": text}
        assert text in run["error"]

    events = cli(store_url, tmp_path, "events", "--limit", "1000")
    assert events.exit_code == 0, events.output
    clean(events.stdout)
    lines = cli(store_url, tmp_path, "events", "--json", "--limit", "1000").stdout
    names = [json.loads(line)["data"]["spec"]["name"] for line in clean(lines).splitlines()
             if '"run_submitted"' in line]  # fmt: skip
    assert names == CORPUS

    as_json = json.loads(clean(cli(store_url, tmp_path, "runs", "--json").stdout))
    assert sorted(r["name"] for r in as_json["runs"]) == sorted(CORPUS)


def test_errors_quoting_user_text_print_it_as_text(store_url: str, tmp_path: Path) -> None:
    open_store(store_url).close()  # the store exists: the run does not
    for text in ("x[/]", "\x1b[2J", "a\nforged: fine", "[link=https://evil.example/]x"):
        result = cli(store_url, tmp_path, "show", text)
        assert result.exit_code == 3, result.output
        assert escape_control(text) in clean(result.stderr)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        as_json = cli(store_url, tmp_path, "show", "--json", text)
        assert text in json.loads(clean(as_json.stdout))["error"]["message"]


def test_events_follow_prints_one_line_per_event(
    store_url: str, runs: list[str], tmp_path: Path
) -> None:
    with open_store(store_url) as store:
        count = store.count()
    follower = subprocess.Popen(
        [sys.executable, "-m", "fleetforge", "--store", store_url, "events", "--follow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        lines = [follower.stdout.readline() for _ in range(count)]  # the events are there
    finally:
        follower.terminate()
        follower.wait(timeout=30)
        for handle in (follower.stdout, follower.stderr):
            if handle is not None:
                handle.close()
    for number, line in enumerate(lines, start=1):
        assert re.match(rf"^{number} \d{{4}}-", line), (
            f"line {number} is not event {number}: {line!r}"
        )
    clean("".join(lines))


def test_the_text_rule() -> None:
    assert escape_control("a\nb\tc\rd\x1b[0m\x9b\u202e\ud800") == (
        "a\\nb\\tc\\rd\\x1b[0m\\x9b\\u202e\\ud800"
    )
    assert escape_control("two\nlines\ttab", one_line=False) == "two\nlines\ttab"
    assert escape_control("é 😀 [/] :x:") == "é 😀 [/] :x:"
    document = json.dumps({"k": "\u202e\x85\x7f"}, ensure_ascii=False)
    assert json.loads(json_text(document)) == {"k": "\u202e\x85\x7f"}
    assert not FORBIDDEN.search(json_text(document))
