"""The store commands: events, replay, artifacts, db — on both stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from fleetforge.cli import app
from fleetforge.fleet.store import open_store
from fleetforge.fleet.store.migrations import latest_version
from fleetforge.ids import new_id
from tests.factories import run_lifecycle

runner = CliRunner()


def cli(store_url: str, tmp_path: Path, *args: str, input: str | None = None) -> Result:
    argv = ["--store", store_url, "--artifacts", str(tmp_path / "blobs"), *args]
    return runner.invoke(app, argv, input=input)


@pytest.fixture
def filled(store_url: str) -> str:
    with open_store(store_url) as store:
        store.append(run_lifecycle("run_a"))
        store.append(run_lifecycle(new_id("run")))
    return store_url


def test_events_table_and_json(filled: str, tmp_path: Path) -> None:
    result = cli(filled, tmp_path, "events", "run_a", "--type", "step_ready")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("step_ready") == 2
    lines = cli(filled, tmp_path, "events", "--json", "--limit", "5").stdout.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5]


def test_events_follow_prints_new_events(filled: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetforge", "--store", filled, "events", "--follow", "--json",
         "--after", "18"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        assert "following the events after 18" in proc.stderr.readline()  # then append
        with open_store(filled) as store:
            store.append(run_lifecycle("run_late"))
        assert proc.stdout is not None
        seen = [json.loads(proc.stdout.readline()) for _ in range(9)]
        assert {e["run_id"] for e in seen} == {"run_late"}
        assert [e["seq"] for e in seen] == list(range(19, 28))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def test_replay_verify_ok_then_tampered(filled: str, tmp_path: Path) -> None:
    ok = cli(filled, tmp_path, "replay", "--verify")
    assert ok.exit_code == 0, ok.output
    assert "projections match a replay of 18 events" in ok.stdout
    with open_store(filled) as store, store.backend.write() as tx:
        tx.execute("UPDATE runs SET name = 'renamed' WHERE run_id = 'run_a'")
    bad = cli(filled, tmp_path, "replay", "--verify")
    assert bad.exit_code == 1
    assert "runs ('run_a',): name: store='renamed' replay='store-test'" in bad.stdout
    fixed = cli(filled, tmp_path, "replay")
    assert "rebuilt the projections from 18 events" in fixed.stdout
    assert cli(filled, tmp_path, "replay", "--verify").exit_code == 0


def test_artifacts_put_get(store_url: str, tmp_path: Path) -> None:
    source = tmp_path / "notes.md"
    source.write_bytes(b"# notes\n")
    put = cli(store_url, tmp_path, "artifacts", "put", str(source), "--media-type", "text/markdown")
    assert put.exit_code == 0, put.output
    digest = put.stdout.strip()
    got = cli(store_url, tmp_path, "artifacts", "get", digest, "-o", str(tmp_path / "back.md"))
    assert got.exit_code == 0, got.output
    assert (tmp_path / "back.md").read_bytes() == b"# notes\n"
    info = json.loads(cli(store_url, tmp_path, "db", "info", "--json").stdout)
    assert info["rows"]["artifacts"] == 1
    missing = cli(store_url, tmp_path, "artifacts", "get", "sha256:" + "0" * 64)
    assert missing.exit_code == 3
    too_big = cli(store_url, tmp_path, "artifacts", "put", str(source), "--max-bytes", "3")
    assert too_big.exit_code == 1
    assert "larger than the 3-byte limit" in too_big.stderr


def test_db_info(filled: str, tmp_path: Path) -> None:
    result = cli(filled, tmp_path, "db", "info", "--json")
    info = json.loads(result.stdout)
    assert (info["events"], info["rows"]["runs"]) == (18, 2)
    backend = "postgres" if filled.startswith("postgres") else "sqlite"
    assert info["schema_version"] == latest_version(backend)  # each backend counts its own


def test_db_export_then_import_into_postgres(tmp_path: Path, pg_url: str) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with open_store(sqlite_url) as store:
        store.append(run_lifecycle("run_x"))
    dump = tmp_path / "fleet.jsonl"
    assert cli(sqlite_url, tmp_path, "db", "export", str(dump)).exit_code == 0
    imported = cli(pg_url, tmp_path, "db", "import", str(dump))
    assert imported.exit_code == 0, imported.output
    assert "imported 9 events" in imported.stdout
    assert cli(pg_url, tmp_path, "replay", "--verify").exit_code == 0
    again = cli(pg_url, tmp_path, "db", "import", str(dump))
    assert again.exit_code == 4


def test_bad_store_url_is_a_usage_error(tmp_path: Path) -> None:
    result = cli("mysql://nope", tmp_path, "db", "info")
    assert result.exit_code == 2
    assert "unknown scheme 'mysql'" in result.stderr
