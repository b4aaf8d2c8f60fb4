"""Capability revocation as an operation (issue 21): ``fleet_revoke_capability`` over MCP (a
served fleet, HTTP with bearer tokens) and ``fleetforge --url ... token revoke-capability``,
with the admin scope; a token without it is refused and nothing is written. Both stores."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetforge.cli import app
from fleetforge.client import SyncFleetClient
from fleetforge.errors import ContractError, ForbiddenError
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store
from fleetforge.fleet.tokens import TokenStore

from .test_mcp_transports import fleet_env, http_server

pytestmark = pytest.mark.slow

runner = CliRunner()
TWO = {"name": "caps", "seed": 1,
       "steps": [{"id": s, "type": "tool", "tool": "t"} for s in ("a", "b")]}  # fmt: skip


def test_revoke_capability_needs_the_admin_scope_over_mcp_and_the_cli(
    store_url: str, tmp_path: Path
) -> None:
    env = fleet_env(tmp_path, store_url)
    with open_store(store_url) as store:
        tokens = TokenStore(store)
        admin, _ = tokens.create("ops", ["admin"])
        worker, _ = tokens.create("w1", ["work", "read", "submit"], worker_id="w1")
        fleet = SyncFleetService(store)
        fleet.register_worker({"worker_id": "w1", "tools": ["*"]})
        fleet.submit_run(TWO)
        caps = {}
        for entry in fleet.lease_task("w1", max_tasks=2):
            assert entry.lease is not None
            assert entry.lease.capability is not None
            caps[entry.task.step_id] = (entry.task.task_id, entry.lease.capability.token_id)
    with http_server(env) as url:
        mcp = f"{url}/mcp"
        with (
            SyncFleetClient.connect(mcp, token=worker) as as_worker,
            pytest.raises(ForbiddenError, match="admin"),
        ):
            as_worker.revoke_capability(caps["a"][1], reason="mine now")
        refused = runner.invoke(app, ["--url", mcp, "--token", worker, "token",
                                      "revoke-capability", caps["b"][1]])  # fmt: skip
        assert refused.exit_code == 1, refused.output
        assert "admin" in refused.stderr
        with SyncFleetClient.connect(mcp, token=admin) as as_admin:
            done = as_admin.revoke_capability(caps["a"][1], reason="leaked")
            assert (done.capability_id, done.task_id, done.revoked) == (
                caps["a"][1], caps["a"][0], True)  # fmt: skip
            assert not as_admin.revoke_capability(caps["a"][1]).revoked  # one effect
            with pytest.raises(ContractError) as bad:
                as_admin.revoke_capability("cap_x")
            assert [d.pointer for d in bad.value.details] == ["/capability_id"]
        ok = runner.invoke(app, ["--url", mcp, "--token", admin, "token", "revoke-capability",
                                 caps["b"][1], "--reason", "rotated"])  # fmt: skip
        assert ok.exit_code == 0, ok.output
        assert f"capability {caps['b'][1]} ({caps['b'][0]}) revoked" in ok.stderr
    with open_store(store_url) as store:
        revoked = SyncFleetService(store).revoked_capabilities()
        events = store.query_rows(types=["capability_revoked"])
    # the refused calls wrote nothing; each revocation names the admin token that made it
    assert [(r["capability_id"], r["by"], r["reason"]) for r in revoked] == [
        (caps["a"][1], "token:ops", "leaked"),
        (caps["b"][1], "token:ops", "rotated"),
    ]
    assert len(events) == 2
