"""No secret reaches the log (issue 16): masking, minimal pack environments, masked store URLs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetforge import armory, redaction
from fleetforge.client import FleetClient
from fleetforge.contracts import FleetSecretRef
from fleetforge.errors import FleetForgeError, NotFoundError
from fleetforge.fleet.store import open_store
from fleetforge.worker import TaskRun, Worker

SERVER = str(Path(__file__).with_name("mcp_test_server.py"))
FLEETFORGE = str(Path(sys.executable).with_name("fleetforge"))
OPENAI = "sk-sentinel-openai-0123456789abcdef"
FLEET_TOKEN = "ffk_" + "S" * 43
DECLARED = "declared-sentinel-9876543210"


def test_known_values_and_token_shapes_are_masked_everywhere_text_goes() -> None:
    redaction.register("a-long-secret-value")
    redaction.register("short")  # too short to mask without garbling ordinary words
    text = "x a-long-secret-value y ffk_abcdefghijklmnopqrstuvwxyz012345 short"
    assert redaction.redact(text) == "x *** y *** short"
    data = {"k": ["a-long-secret-value", {"a-long-secret-value": 1}], "n": 3}
    assert redaction.scrub(data) == {"k": ["***", {"***": 1}], "n": 3}
    clean = {"k": ["fine"]}
    assert redaction.scrub(clean) is clean
    quoted = 'pa"ss\\word-1234'
    redaction.register(quoted)
    text = json.dumps({"m": f"got {quoted}"})
    assert redaction.contains_secret(text)
    assert redaction.scrub({"m": f"got {quoted}"}) == {"m": "got ***"}
    assert NotFoundError("no a-long-secret-value here").message == "no *** here"


def test_store_urls_are_printed_with_the_password_masked() -> None:
    assert redaction.mask_url("postgresql://fleet:hunter2@db:5432/f") == (
        "postgresql://fleet:***@db:5432/f"
    )
    assert redaction.mask_url("postgresql://db/f?user=u&password=p%40ss&sslmode=require") == (
        "postgresql://db/f?user=u&password=***&sslmode=require"
    )
    assert redaction.mask_url("sqlite:///x.db") == "sqlite:///x.db"
    redaction.register_url("postgresql://db/f?password=from-query-string")
    assert redaction.redact("from-query-string") == "***"


def test_resolved_secret_refs_and_logs_are_masked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MY_REF_SECRET", "ref-resolved-sentinel-42")
    assert FleetSecretRef(ref="env://MY_REF_SECRET").resolve().get_secret_value()
    log = redaction.get_logger("fleetforge.test")
    with caplog.at_level(logging.INFO, logger="fleetforge.test"):
        log.info("the value is %s", "ref-resolved-sentinel-42")
    assert "ref-resolved-sentinel-42" not in caplog.text
    assert "the value is ***" in caplog.text


def pack(*args: str) -> armory.Pack:
    return armory.parse_pack(
        {
            "name": "leaky",
            "version": "1",
            "servers": [
                {
                    "name": "s",
                    "command": sys.executable,
                    "args": [SERVER, *args],
                    "env": {"TOOL_SECRET": "env://MY_DECLARED"},
                    "pass_env": ["LANG"],
                }
            ],
        },
        source="test",
    )


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"OPENAI_API_KEY": OPENAI, "FLEETFORGE_TOKEN": FLEET_TOKEN, "MY_DECLARED": DECLARED}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    return values


@pytest.mark.anyio
async def test_a_pack_server_gets_only_the_allow_list_what_it_names_and_its_secrets(
    secret_env: dict[str, str],
) -> None:
    with pytest.raises(FleetForgeError) as caught:
        async with armory.open([pack("--print-env")]):
            pass
    printed = caught.value.message
    assert "LANG=C.UTF-8" in printed  # pass_env
    assert "PATH=" in printed  # the MCP SDK's allow-list
    assert "TOOL_SECRET=***" in printed  # its declared secret, masked in the error
    for name in ("OPENAI_API_KEY", "FLEETFORGE_TOKEN", "MY_DECLARED", "PYTEST_CURRENT_TEST"):
        assert f"{name}=" not in printed  # nothing else of the worker's environment


@pytest.mark.anyio
async def test_a_pack_that_prints_its_environment_leaks_no_secret_anywhere(
    store_url: str,
    tmp_path: Path,
    secret_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    leaky = pack("--print-env")

    async def handler(task: TaskRun) -> Any:
        async with armory.open([leaky], recorder=task.adapter):
            return "never"

    spec = {"name": "leak", "seed": 1, "steps": [{"id": "a", "type": "tool", "tool": "t"}]}
    with caplog.at_level(logging.DEBUG):
        async with FleetClient.local(store_url, artifacts=tmp_path / "a") as client:
            run = await client.submit_run(spec)
            stats = await Worker(client, handler, worker_id="w").run(stop_when_idle=True)
    assert stats.failed == 1
    with open_store(store_url) as store:
        stored = json.dumps([r.to_json() for r in store.query_rows(limit=10_000)])
        rows = repr([store.table_rows(t) for t in ("tasks", "steps", "runs")])
    assert "TOOL_SECRET=***" in stored  # the failure and its stderr are there, masked
    env = {"FLEETFORGE_STORE": store_url, "FLEETFORGE_HOME": str(tmp_path / "home")}
    shown = subprocess.run(
        [FLEETFORGE, "show", run.run_id, "--json"], env=env | _base_env(), capture_output=True,
        text=True, check=True,
    ).stdout  # fmt: skip
    leaky_toml = tmp_path / "leaky.toml"
    leaky_toml.write_text(
        f'name = "leaky"\nversion = "1"\n[[servers]]\nname = "s"\ncommand = "{sys.executable}"\n'
        f'args = ["{SERVER}", "--print-env"]\nenv = {{ TOOL_SECRET = "env://MY_DECLARED" }}\n'
    )
    checked = subprocess.run(
        [FLEETFORGE, "armory", "check", str(leaky_toml)], env=env | _base_env() | secret_env,
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode != 0
    assert "TOOL_SECRET=***" in checked.stderr + checked.stdout
    places = {"events": stored, "projections": rows, "logs": caplog.text, "show": shown,
              "armory check": checked.stdout + checked.stderr}  # fmt: skip
    for where, text in places.items():
        for secret in secret_env.values():
            assert secret not in text, f"{secret} in {where}"


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
