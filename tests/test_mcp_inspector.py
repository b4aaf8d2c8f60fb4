"""A real external MCP client against ``fleetforge mcp``: the MCP Inspector CLI (Node.js).

Fetches ``@modelcontextprotocol/inspector`` from the npm registry, so it runs under
``make check-mcp`` (which ``make test`` runs when CI=true), not in the offline suite.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

# 0.16+ needs Node >= 22.7.5; 0.15.0 is the newest that runs on Debian 12's Node 20.
INSPECTOR = "@modelcontextprotocol/inspector@0.15.0"
FLEETFORGE = str(Path(sys.executable).with_name("fleetforge"))


def inspector(tmp_path: Path, *args: str) -> dict[str, Any]:
    npx = shutil.which("npx")
    assert npx, "npx not found: install Node.js and npm (Debian: apt-get install nodejs npm)"
    env_args = [
        "-e",
        f"FLEETFORGE_STORE=sqlite:///{tmp_path / 'fleet.db'}",
        "-e",
        f"FLEETFORGE_ARTIFACTS={tmp_path / 'artifacts'}",
    ]
    done = subprocess.run(
        [npx, "-y", INSPECTOR, "--cli", *env_args, FLEETFORGE, "mcp", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_inspector_lists_tools_and_drives_a_run(tmp_path: Path) -> None:
    tools = inspector(tmp_path, "--method", "tools/list")["tools"]
    names = {t["name"] for t in tools}
    assert {"fleet_submit_run", "fleet_get_run", "fleet_lease_task"} <= names
    assert all(t.get("outputSchema") for t in tools)

    spec = {"name": "inspected", "seed": 5, "steps": [{"id": "a", "type": "tool", "tool": "t"}]}
    submitted = inspector(
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "fleet_submit_run",
        "--tool-arg",
        f"spec={json.dumps(spec)}",
    )
    assert not submitted.get("isError"), submitted  # the CLI exits 0 even on tool errors
    run_id = submitted["structuredContent"]["run_id"]

    got = inspector(
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "fleet_get_run",
        "--tool-arg",
        f"run_id={run_id}",
    )
    assert not got.get("isError"), got
    assert got["structuredContent"]["status"] == "running"
    assert got["structuredContent"]["steps"][0]["status"] == "ready"

    missing = inspector(
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "fleet_get_run",
        "--tool-arg",
        "run_id=run_missing",
    )
    assert missing["isError"] is True
    assert missing["structuredContent"]["error"]["code"] == "NotFoundError"
