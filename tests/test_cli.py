"""The `fleetforge` command line: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetforge import __version__, schemas
from fleetforge.cli import app

HELLO = Path(__file__).parents[1] / "examples" / "hello_fleet" / "run_spec.json"
runner = CliRunner()


def write(tmp_path: Path, document: object) -> str:
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"fleetforge {__version__}"


def test_validate_hello_fleet_with_tree() -> None:
    result = runner.invoke(app, ["validate", "--tree", str(HELLO)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout
    assert "4 steps, seed 42" in result.stdout
    for step in ("plan", "research", "write", "review"):
        assert step in result.stdout
    assert "write (see above)" in result.stdout  # write has two parents


def test_piped_output_is_not_wrapped(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 4)
    deep.mkdir(parents=True)
    (deep / "spec.json").write_text(HELLO.read_text())
    result = runner.invoke(app, ["validate", str(deep / "spec.json")])
    assert result.stdout.splitlines()[0].endswith("(run_spec: 4 steps, seed 42)")


def test_invalid_spec_exits_1_with_a_pointer_table(tmp_path: Path) -> None:
    document = {"name": "x", "seed": 0, "steps": [{"id": "a", "type": "tool", "tool": "t"}]}
    result = runner.invoke(app, ["validate", write(tmp_path, document)])
    assert result.exit_code == 1
    assert "invalid run spec: 1 problem" in result.stderr
    assert "/seed" in result.stderr
    assert "a positive integer seed is required; got 0" in result.stderr


def test_invalid_spec_as_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "--json", write(tmp_path, {"name": "x"})])
    assert result.exit_code == 1
    body = json.loads(result.stdout)["error"]
    assert body["code"] == "ContractError"
    assert {"pointer": "/steps", "message": "required field is missing"} in body["details"]


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "absent.json")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_text_that_is_not_json_exits_1_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"name": "x",\n  oops}')
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "line 2, column 3" in result.stderr


def test_stdin_is_read_for_dash() -> None:
    result = runner.invoke(app, ["validate", "-"], input=HELLO.read_text())
    assert result.exit_code == 0, result.output


def test_other_schemas_by_name(tmp_path: Path) -> None:
    good = write(tmp_path, {"max_tokens": 10})
    assert runner.invoke(app, ["validate", "--schema", "fleet_task_budget", good]).exit_code == 0
    bad = write(tmp_path, {"max_tokens": 0})
    result = runner.invoke(app, ["validate", "-s", "fleet_task_budget", bad])
    assert result.exit_code == 1
    assert "/max_tokens" in result.stderr


def test_unknown_schema_exits_3(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "--schema", "nope", write(tmp_path, {})])
    assert result.exit_code == 3
    assert "no schema named 'nope'" in result.stderr


def test_schemas_list_and_show() -> None:
    listed = runner.invoke(app, ["schemas", "list", "--json"])
    assert listed.exit_code == 0
    assert [row["name"] for row in json.loads(listed.stdout)] == schemas.names()
    assert "run_spec" in runner.invoke(app, ["schemas", "list"]).stdout
    shown = runner.invoke(app, ["schemas", "show", "run_spec"])
    assert shown.exit_code == 0
    assert json.loads(shown.stdout) == schemas.load("run_spec")


@pytest.mark.parametrize("command", [["schemas", "show", "nope"]])
def test_not_found_exits_3(command: list[str]) -> None:
    assert runner.invoke(app, command).exit_code == 3


def test_the_cli_artifact_limit_is_the_stores() -> None:
    from fleetforge.cli._artifacts import DEFAULT_MAX_BYTES as cli_limit
    from fleetforge.fleet.artifacts import DEFAULT_MAX_BYTES

    assert cli_limit == DEFAULT_MAX_BYTES
