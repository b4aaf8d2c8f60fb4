"""Coordination over MCP: the tools answer with their declared schemas, refusals are tool errors
naming the holder or the field, the etiquette prompt names real tools, and over HTTP a token's
project limit and worker binding hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleetforge.client import FleetClient
from fleetforge.errors import ConflictError, ForbiddenError
from fleetforge.fleet.store import EventStore, open_store
from fleetforge.fleet.tokens import TokenStore

from .test_mcp_server import connect
from .test_mcp_transports import fleet_env, http_server

pytestmark = pytest.mark.anyio


async def test_agents_coordinate_over_mcp(store: EventStore, tmp_path: Path) -> None:
    async with connect(store, tmp_path) as (client, _):
        ann = await client.call("fleet_register_agent", project="web", callsign="Ann")
        await client.call("fleet_register_agent", project="web", callsign="Bob")
        assert ann["callsign"] == "Ann"
        granted = await client.call(
            "fleet_reserve_paths",
            project="web",
            agent="Ann",
            paths=["src/app.py"],
            reason="login form",
        )
        assert granted["granted"][0]["pattern"] == "src/app.py"
        error, text = await client.fail(
            "fleet_reserve_paths", "ConflictError", project="web", agent="Bob", paths=["src/**"]
        )
        assert "held by Ann" in text
        assert error["details"][0]["pointer"] == "/paths/0"
        check = await client.call(
            "fleet_check_paths", project="web", paths=["src/app.py"], agent="Bob"
        )
        assert check["ok"] is False
        assert check["blocked"][0]["holder"] == "Ann"
        await client.call(
            "fleet_send_message",
            project="web",
            agent="Bob",
            to=["Ann"],
            subject="src/app.py",
            body="May I have it?",
            ack_required=True,
        )
        inbox = await client.call("fleet_fetch_inbox", project="web", agent="Ann")
        assert inbox["messages"][0]["body"] == "May I have it?"
        reply = await client.call(
            "fleet_send_message",
            project="web",
            agent="Ann",
            to=["Bob"],
            subject="re: src/app.py",
            body="After this commit.",
            reply_to=inbox["messages"][0]["message_id"],
            inbox=5,
        )
        assert reply["inbox"] == inbox  # the reply carries Ann's inbox: one call, not two
        error, _ = await client.fail(
            "fleet_send_message",
            "ContractError",
            project="web",
            agent="Ann",
            to=["Bob", "Zed"],
            subject="s",
            body="b",
        )
        assert [d["pointer"] for d in error["details"]] == ["/to/1"]
        error, _ = await client.fail(
            "fleet_reserve_paths",
            "ContractError",
            project="web",
            agent="Ann",
            paths=["/etc/passwd"],
        )
        assert error["details"][0]["pointer"] == "/paths/0"
        lock = await client.call("fleet_acquire_lock", project="web", agent="Ann", name="db")
        await client.fail(
            "fleet_release_lock",
            "LeaseLostError",
            project="web",
            agent="Ann",
            name="db",
            fencing_token=lock["fencing_token"] + 1,
        )


async def test_the_etiquette_prompt_names_real_tools(store: EventStore, tmp_path: Path) -> None:
    async with connect(store, tmp_path) as (client, _):
        got = await client.session.get_prompt("fleet_coordination", {"project": "web"})
    text = got.messages[0].content.text  # type: ignore[union-attr]
    named = set(re.findall(r"\bfleet_\w+", text))
    assert {
        "fleet_register_agent",
        "fleet_fetch_inbox",
        "fleet_reserve_paths",
        "fleet_release_reservations",
        "fleet_save_checkpoint",
    } <= named
    assert named <= set(client.output_schemas), named - set(client.output_schemas)


@pytest.mark.slow
async def test_over_http_a_token_keeps_to_its_projects_and_its_agent(tmp_path: Path) -> None:
    env = fleet_env(tmp_path, f"sqlite:///{tmp_path / 'fleet.db'}")
    with open_store(env["FLEETFORGE_STORE"]) as store:
        tokens = TokenStore(store)
        admin, _ = tokens.create("admin", ["admin"])
        web_only, _ = tokens.create("web-only", ["work", "read"], projects=["web"])
    with http_server(env) as url:
        async with FleetClient.connect(url, token=admin) as fleet:
            ann = await fleet.register_agent("web", callsign="Ann")
            await fleet.register_agent("api", callsign="Bob")
        with open_store(env["FLEETFORGE_STORE"]) as store:
            as_ann, _ = TokenStore(store).create("ann", ["work"], worker_id=ann.agent_id)
        async with FleetClient.connect(url, token=web_only) as fleet:
            assert [a.callsign for a in (await fleet.list_agents("web")).agents] == ["Ann"]
            with pytest.raises(ForbiddenError, match="limited to other projects"):
                await fleet.list_agents("api")
            with pytest.raises(ForbiddenError):
                await fleet.fetch_inbox("api", "Bob")
        async with FleetClient.connect(url, token=as_ann) as fleet:
            assert (await fleet.reserve_paths("web", "Ann", ["a.py"])).granted
            with pytest.raises(ForbiddenError, match="not as agent 'Bob'"):
                await fleet.fetch_inbox("api", "Bob")
            with pytest.raises(ConflictError, match="taken"):
                await fleet.register_agent("api", callsign="Bob")
