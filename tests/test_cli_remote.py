"""The whole CLI against a remote fleet (issue 19): every command that works on runs, workers and
artifacts gives the same --json output against ``--store`` and against ``--url`` of a
``fleetforge serve``; ``--help`` loads no engine; a dead URL, a bad token and a refused scope
are one line each, with their exit codes, on the CLI and on SyncFleetClient."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fleetforge.cli import app
from fleetforge.cli._argv import hoist
from fleetforge.client import SyncFleetClient
from fleetforge.errors import AuthError, ForbiddenError, UnavailableError
from fleetforge.fleet.store import open_store
from fleetforge.fleet.tokens import TokenStore

from .test_mcp_transports import fleet_env, free_port, http_server

pytestmark = pytest.mark.slow

runner = CliRunner()
SPEC = {
    "name": "remote",
    "seed": 4,
    "inputs": {"words": ["fleet", "forge"]},
    "breakpoints": ["ok"],
    "steps": [
        {"id": "each", "type": "map", "over": {"from": "inputs.words"},
         "step": {"type": "tool", "tool": "sh"}},
        {"id": "ok", "type": "human", "prompt": "ship?", "depends_on": ["each"]},
    ],
}  # fmt: skip
FAILING = {"name": "fails", "seed": 1, "steps": [{"id": "x", "type": "tool", "tool": "sh"}]}
_IDS = re.compile(r"\b(run|evt|tok|err)_[0-9A-Z]{26}\b|\d{4}-\d\d-\d\dT[0-9:.]+(Z|\+00:00)?")
# traceparent: random trace ids once an earlier test in the process set a tracer provider
_VOLATILE = ("seq", "last_seen_at", "by", "credential", "hash", "prev_hash", "receipt_id",
             "worker_id", "wall_s", "last_cursor", "next_cursor", "host",
             "capability_id", "attestation", "key_id", "head",
             "traceparent")  # fmt: skip


def normalise(text: str) -> Any:
    """JSON output with ids, times and store cursors replaced."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "_" if k in _VOLATILE else clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str):
            return _IDS.sub("_", value)
        return value

    lines = [line for line in text.splitlines() if line.strip()]
    try:
        return clean(json.loads(text))
    except json.JSONDecodeError:
        return [clean(json.loads(line)) for line in lines]


def session(tmp_path: Path, fleet: list[str]) -> Callable[..., Any]:
    """Run ``fleetforge [fleet...] ARGS`` in process; return its parsed --json output."""

    def cli(*args: str, raw: bool = False) -> Any:
        argv = hoist([*args, *fleet])  # the fleet's options after the command: as people type
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        if raw:
            return json.loads(result.stdout)
        return normalise(result.stdout) if result.stdout.strip() else None

    return cli


def story(cli: Callable[..., Any], tmp_path: Path) -> list[Any]:
    """Every remote-capable command once; what each printed."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    (tmp_path / "fails.json").write_text(json.dumps(FAILING))
    seen: list[Any] = []
    submitted = cli("submit", str(spec), "--json", raw=True)
    run_id = submitted["run_id"]
    seen.append(normalise(json.dumps(submitted)))
    shout = (
        "python3 -c \"import json,sys; print(json.dumps(json.load(sys.stdin)['item'].upper()))\""
    )
    seen.append(cli("work", "--exit-when-idle", "--worker-id", "w", "--json", "--exec", shout))
    seen += [cli("runs", "--json"), cli("show", run_id, "--json"), cli("workers", "--json")]
    seen.append(cli("resume", run_id, "--json"))
    seen.append(cli("approve", run_id, "ok", "--comment", "fine", "--json"))
    seen += [cli("output", run_id, "each", "--json"), cli("events", run_id, "--json")]
    failing = cli("submit", str(tmp_path / "fails.json"), "--json", raw=True)
    seen.append(normalise(json.dumps(failing)))
    failing_id = failing["run_id"]
    seen.append(cli("work", "--exit-when-idle", "--worker-id", "w", "--json", "--exec", "exit 3"))
    seen.append(cli("retry", failing_id, "x", "--json"))
    seen.append(cli("cancel", failing_id, "--json"))
    note = tmp_path / "note.md"
    note.write_text("# note\n")
    put = cli("artifacts", "put", str(note), "--media-type", "text/markdown", "--json")
    seen.append(put)
    digest = put["digest"]
    back = tmp_path / "back.md"
    assert cli("artifacts", "get", digest, "--output", str(back)) is None
    assert back.read_text() == "# note\n"
    return seen


def test_every_command_gives_the_same_json_on_a_store_and_over_a_url(tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    local_store = f"sqlite:///{local / 'fleet.db'}"
    local_cli = session(local, ["--store", local_store, "--artifacts", str(local / "a")])
    local_seen = story(local_cli, local)

    remote = tmp_path / "remote"
    env = fleet_env(remote, f"sqlite:///{tmp_path / 'remote.db'}")
    with open_store(env["FLEETFORGE_STORE"]) as store:
        # its worker is trusted as the token says (`work`'s default level, so both agree)
        token, _ = TokenStore(store).create("cli", ["admin"], trust_level="internal")
    with http_server(env) as url:
        remote_cli = session(remote, ["--url", url, "--token", token])
        remote.mkdir(exist_ok=True)
        remote_seen = story(remote_cli, remote)
    with open_store(env["FLEETFORGE_STORE"]) as store:  # it all happened behind the server
        assert {r.name for r in TokenStore(store).list()} == {"cli"}
        assert store.count(types=["run_submitted"]) == 2
    assert len(remote_seen) == len(local_seen)
    for i, (here, there) in enumerate(zip(local_seen, remote_seen, strict=True)):
        assert here == there, (i, here, there)


def test_help_loads_no_engine() -> None:
    code = (
        "import sys; sys.argv = ['fleetforge', '--help']\n"
        "from fleetforge.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('fleetforge.fleet')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "Usage" in done.stdout


def test_a_dead_url_a_bad_token_and_a_refused_scope_are_one_line_each(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    result = runner.invoke(app, ["--url", dead, "runs"])
    assert result.exit_code == 6
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with pytest.raises(UnavailableError, match="cannot reach"), SyncFleetClient.connect(dead):
        pass
    env = fleet_env(tmp_path, f"sqlite:///{tmp_path / 'fleet.db'}")
    with open_store(env["FLEETFORGE_STORE"]) as store:
        reader, _ = TokenStore(store).create("reader", ["read"])
    with http_server(env) as url:
        for token, code, error in (("ffk_" + "x" * 43, 1, AuthError), (reader, 1, ForbiddenError)):
            spec = tmp_path / "spec.json"
            spec.write_text(json.dumps(FAILING))
            result = runner.invoke(app, ["--url", url, "--token", token, "submit", str(spec)])
            assert result.exit_code == code, result.stderr
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert "Traceback" not in result.output
            with pytest.raises(error), SyncFleetClient.connect(url, token=token) as fleet:
                fleet.submit_run(FAILING)
