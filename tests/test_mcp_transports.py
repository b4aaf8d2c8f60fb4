"""The MCP server as users run it: ``fleetforge mcp`` over stdio and ``fleetforge serve`` over
streamable HTTP (real processes, real sockets on 127.0.0.1), with the official MCP client."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store
from fleetforge.fleet.tokens import TokenStore, hash_token

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FLEETFORGE = str(Path(sys.executable).with_name("fleetforge"))
SPEC = {"name": "transport", "seed": 3, "steps": [{"id": "a", "type": "tool", "tool": "t"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fleet_env(tmp_path: Path, store_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETFORGE_")}
    env |= {
        "FLEETFORGE_HOME": str(tmp_path / "home"),
        "FLEETFORGE_STORE": store_url,
        "FLEETFORGE_ARTIFACTS": str(tmp_path / "artifacts"),
    }
    return env | extra


@contextmanager
def http_server(env: dict[str, str], *args: str) -> Iterator[str]:
    """Run ``fleetforge serve`` on a free port until the block ends; yield its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [FLEETFORGE, "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, log = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, log = proc.communicate()
    # clients came and went: none of it is an error in the server's log (the MCP SDK logs a
    # ClosedResourceError traceback for each client that leaves, unless serve filters it)
    assert "Traceback" not in log, log
    assert "ClosedResourceError" not in log, log


@asynccontextmanager
async def http_session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx.AsyncClient(headers=headers, timeout=30) as client,
        streamable_http_client(f"{url}/mcp", http_client=client) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert not result.isError, result.content[0].text  # type: ignore[union-attr]
    assert result.structuredContent is not None
    return result.structuredContent


async def cycle(session: ClientSession, worker: str | None) -> str:
    """Submit a one-step run, lease its task, heartbeat, post a receipt; return the run id."""
    run = await call(session, "fleet_submit_run", spec=SPEC)
    args = {"worker_id": worker} if worker else {}
    await call(session, "fleet_register_worker", **args)
    [entry] = (await call(session, "fleet_lease_task", **args))["tasks"]
    ids = {"task_id": entry["task"]["task_id"], "fencing_token": entry["lease"]["fencing_token"]}
    ids |= args  # every call on the lease names the worker holding it (unless the token does)
    await call(session, "fleet_heartbeat", **ids)
    receipt = await call(session, "fleet_post_receipt", **ids, output={"ok": True})
    assert receipt["status"] == "accepted"
    done = await call(session, "fleet_get_run", run_id=run["run_id"])
    assert done["status"] == "completed"
    assert done["outputs"] == {"a": {"ok": True}}
    return str(run["run_id"])


# ── stdio ───────────────────────────────────────────────────────────────────────────────────


async def test_stdio_full_cycle(tmp_path: Path) -> None:
    env = fleet_env(tmp_path, f"sqlite:///{tmp_path / 'fleet.db'}")
    params = StdioServerParameters(command=FLEETFORGE, args=["mcp"], env=env)
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            info = await session.initialize()
            assert info.serverInfo.name == "fleetforge"
            run_id = await cycle(session, "w-stdio")
            bad = await session.call_tool("fleet_get_run", {"run_id": "nope"})
            assert bad.isError
            assert bad.structuredContent["error"]["code"] == "NotFoundError"
    # stdout carried only protocol messages; the server logged nothing at WARNING
    assert (tmp_path / "stderr.log").read_text() == ""
    with open_store(env["FLEETFORGE_STORE"]) as store:
        assert SyncFleetService(store).get_run(run_id).status == "completed"


# ── HTTP ────────────────────────────────────────────────────────────────────────────────────


def make_tokens(store_url: str) -> dict[str, str]:
    """The usual tokens, created in the store; the clear tokens by name."""
    with open_store(store_url) as store:
        tokens = TokenStore(store)
        return {
            "reader": tokens.create("reader", ["read"])[0],
            "submitter": tokens.create("submitter", ["submit", "read"])[0],
            "worker": tokens.create("worker", ["work", "submit", "read"], worker_id="w-http")[0],
            "admin": tokens.create("admin", ["admin"])[0],
        }


async def test_http_auth_and_scopes(tmp_path: Path) -> None:
    env = fleet_env(tmp_path, f"sqlite:///{tmp_path / 'fleet.db'}")
    clear = make_tokens(env["FLEETFORGE_STORE"])
    with http_server(env) as url:
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        accept = {"Accept": "application/json, text/event-stream"}
        async with httpx.AsyncClient(timeout=10) as raw:
            missing = await raw.post(f"{url}/mcp", json=init, headers=accept)
            assert missing.status_code == 401
            assert missing.headers["www-authenticate"].startswith("Bearer")
            wrong = await raw.post(
                f"{url}/mcp", json=init, headers=accept | {"Authorization": "Bearer ffk_wrong"}
            )
            assert wrong.status_code == 401
            # a token never appears in clear in the store: only its hash
            with open_store(env["FLEETFORGE_STORE"]) as store:
                rows = repr(store.table_rows("tokens")) + repr(store.query_rows())
            assert clear["reader"] not in rows
            assert hash_token(clear["reader"]) in rows
            health = await raw.get(f"{url}/healthz")
            assert health.json() | {"version": "x"} == {
                "status": "ok",
                "version": "x",
                "auth": True,
                "stateless": False,
            }
            rebinding = await raw.post(
                f"{url}/mcp",
                json=init,
                headers=accept
                | {"Authorization": f"Bearer {clear['admin']}", "Host": "evil.example"},
            )
            assert rebinding.status_code == 421

        async with http_session(url, clear["reader"]) as reader:
            refused = await reader.call_tool("fleet_submit_run", {"spec": SPEC})
            assert refused.isError
            error = refused.structuredContent["error"]  # type: ignore[index]
            assert error["code"] == "ForbiddenError"
            assert "needs the 'submit' scope" in error["message"]
            listed = await call(reader, "fleet_list_runs")
            assert listed["runs"] == []
            lease = await reader.call_tool("fleet_lease_task", {"worker_id": "w-http"})
            assert lease.structuredContent["error"]["code"] == "ForbiddenError"  # type: ignore[index]

        async with http_session(url, clear["worker"]) as worker:
            run_id = await cycle(worker, None)  # the token names the worker
            other = await worker.call_tool("fleet_lease_task", {"worker_id": "someone-else"})
            assert other.structuredContent["error"]["code"] == "ForbiddenError"  # type: ignore[index]

        async with http_session(url, clear["submitter"]) as submitter:
            run = await call(submitter, "fleet_get_run", run_id=run_id)
            assert run["status"] == "completed"
            cancelled = await call(submitter, "fleet_submit_run", spec=SPEC)
            done = await call(submitter, "fleet_cancel_run", run_id=cancelled["run_id"])
            assert done["status"] == "cancelled"
            events = await call(submitter, "fleet_run_events", run_id=cancelled["run_id"])
            assert events["events"][-1]["data"]["by"] == "token:submitter"


def legacy_tokens_file(path: Path, name: str, scopes: list[str]) -> str:
    """A tokens.json as FleetForge 0.1 wrote it, holding one token; the clear token."""
    token = "ffk_" + "x" * 20 + name
    record = {"name": name, "sha256": hash_token(token), "scopes": scopes, "worker_id": None,
              "created_at": "2026-11-01T00:00:00Z"}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"tokens": [record]}))
    return token


async def test_http_tokens_created_and_revoked_without_a_restart(tmp_path: Path) -> None:
    env = fleet_env(tmp_path, f"sqlite:///{tmp_path / 'fleet.db'}")
    home = Path(env["FLEETFORGE_HOME"])
    first = legacy_tokens_file(home / "tokens.json", "first", ["read"])  # imported at start

    def cli(*args: str) -> str:
        done = subprocess.run([FLEETFORGE, "token", *args], env=env, capture_output=True,
                              text=True, check=True)  # fmt: skip
        return done.stdout

    async def status(client: httpx.AsyncClient, url: str, token: str) -> int:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
        headers = {"Accept": "application/json, text/event-stream",
                   "Authorization": f"Bearer {token}"}  # fmt: skip
        return (await client.post(f"{url}/mcp", json=init, headers=headers)).status_code

    async def until(client: httpx.AsyncClient, url: str, token: str, wanted: int) -> None:
        deadline = time.monotonic() + 10
        while (code := await status(client, url, token)) != wanted:
            assert time.monotonic() < deadline, f"still {code}, wanted {wanted}"
            await anyio.sleep(0.2)

    with http_server(env) as url:
        assert not (home / "tokens.json").exists()
        assert (home / "tokens.json.imported").exists()
        async with httpx.AsyncClient(timeout=10) as client:
            assert await status(client, url, first) == 200
            second = re.search(r"ffk_[A-Za-z0-9_-]+", cli("create", "second", "--scope", "read"))
            assert second is not None
            await until(client, url, second.group(0), 200)  # accepted without a restart
            cli("revoke", "first")
            await until(client, url, first, 401)  # refused without a restart
            assert await status(client, url, second.group(0)) == 200
    listed = json.loads(cli("list", "--json", "--revoked"))
    assert [(t["name"], t["revoked_at"] is not None) for t in listed] == [
        ("first", True),
        ("second", False),
    ]


async def test_http_a_lease_belongs_to_the_token_that_took_it(tmp_path: Path) -> None:
    env = fleet_env(tmp_path, f"sqlite:///{tmp_path / 'fleet.db'}")
    with open_store(env["FLEETFORGE_STORE"]) as store:
        tokens = TokenStore(store)
        clear = {
            "w1": tokens.create("w1", ["work", "submit", "read"], worker_id="w1")[0],
            "w2": tokens.create("w2", ["work"], worker_id="w2")[0],
            "u1": tokens.create("u1", ["work"])[0],
            "u2": tokens.create("u2", ["work"])[0],
        }
    tools: dict[str, dict[str, Any]] = {
        "fleet_heartbeat": {},
        "fleet_post_receipt": {"output": "forged"},
        "fleet_fail_task": {"kind": "agent_error", "message": "x"},
        "fleet_release_task": {},
        "fleet_pause_task": {},
        "fleet_put_artifact": {"content": "eA=="},
    }

    async def refused(session: ClientSession, ids: dict[str, Any], **extra: Any) -> None:
        envelope = {"kind": "emit", "event": "message", "payload": {}, "seq": 0,
                    "at": "2026-12-01T00:00:00Z", "run_id": ids["task_id"].split(".")[0],
                    "step_id": "a", "task_id": ids["task_id"], "seed": 3,
                    "adapter": {"name": "t", "version": "1"}}  # fmt: skip
        for tool, args in (tools | {"fleet_post_event": {"envelope": envelope}}).items():
            given = {"task_id": ids["task_id"]} if tool == "fleet_put_artifact" else ids
            result = await session.call_tool(tool, given | args | extra)
            assert result.isError, tool
            assert result.structuredContent["error"]["code"] == "ForbiddenError", tool  # type: ignore[index]

    with http_server(env) as url:
        async with http_session(url, clear["w1"]) as w1:
            run = await call(w1, "fleet_submit_run", spec=SPEC)
            await call(w1, "fleet_register_worker")
            [entry] = (await call(w1, "fleet_lease_task"))["tasks"]
            ids = {"task_id": entry["task"]["task_id"], "fencing_token": 1}
            async with http_session(url, clear["w2"]) as w2:
                await call(w2, "fleet_register_worker")
                await refused(w2, ids)  # another worker's bound token
            async with http_session(url, clear["u1"]) as u1:
                await refused(u1, ids, worker_id="w1")  # an unbound token claiming the worker
            receipt = await call(w1, "fleet_post_receipt", **ids, output="mine")
            assert (receipt["status"], receipt["worker_id"]) == ("accepted", "w1")
            # an unbound token's lease: only that token acts on it, whatever worker id it gives
            second = await call(w1, "fleet_submit_run", spec=SPEC)
            async with http_session(url, clear["u1"]) as u1, http_session(url, clear["u2"]) as u2:
                await call(u1, "fleet_register_worker", worker_id="shared")
                [mine] = (await call(u1, "fleet_lease_task", worker_id="shared"))["tasks"]
                ids = {"task_id": mine["task"]["task_id"], "fencing_token": 1}
                await refused(u2, ids, worker_id="shared")
                await call(u1, "fleet_post_receipt", **ids, output="u1's")
            done = await call(w1, "fleet_get_run", run_id=second["run_id"])
            first = await call(w1, "fleet_get_run", run_id=run["run_id"])
    assert (first["outputs"], done["outputs"]) == ({"a": "mine"}, {"a": "u1's"})
    with open_store(env["FLEETFORGE_STORE"]) as store:
        denied = store.query(types=["access_denied"], limit=1000)
    assert {e.data.who for e in denied} == {"token:w2", "token:u1", "token:u2"}  # type: ignore[attr-defined]


async def test_http_stateless_without_auth_on_loopback(tmp_path: Path) -> None:
    env = fleet_env(tmp_path, f"sqlite:///{tmp_path / 'fleet.db'}")
    with http_server(env, "--no-auth", "--stateless") as url:
        async with http_session(url, None) as session:
            await cycle(session, "w-open")


def test_refuses_public_address_without_auth(tmp_path: Path) -> None:
    env = fleet_env(tmp_path, "sqlite://")
    done = subprocess.run(
        [FLEETFORGE, "serve", "--host", "0.0.0.0", "--no-auth"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 with auth disabled" in " ".join(done.stderr.split())


def test_serve_without_tokens_explains(tmp_path: Path) -> None:
    env = fleet_env(tmp_path, "sqlite://")
    done = subprocess.run(
        [FLEETFORGE, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "fleetforge token create" in " ".join(done.stderr.split())


# ── several servers, one PostgreSQL fleet ───────────────────────────────────────────────────


async def test_two_servers_on_one_postgres_never_double_lease(tmp_path: Path, pg_url: str) -> None:
    env = fleet_env(tmp_path, pg_url)
    clear = make_tokens(pg_url)
    tasks = 120
    with open_store(pg_url) as store:
        fleet = SyncFleetService(store)
        steps = [{"id": f"s{i}", "type": "tool", "tool": "t"} for i in range(tasks // 4)]
        for _ in range(4):
            fleet.submit_run({"name": "many", "seed": 1, "steps": steps})
    done: Counter[str] = Counter()

    async def worker(url: str, name: str) -> None:
        async with http_session(url, clear["admin"]) as session:
            await call(session, "fleet_register_worker", worker_id=name)
            while True:
                leased = await call(session, "fleet_lease_task", worker_id=name, max_tasks=3)
                if not leased["tasks"]:
                    return
                for entry in leased["tasks"]:
                    ids = {
                        "task_id": entry["task"]["task_id"],
                        "fencing_token": entry["lease"]["fencing_token"],
                    }
                    await call(session, "fleet_post_receipt", **ids, output=name, worker_id=name)
                    done[name] += 1

    with http_server(env, "--stateless") as one, http_server(env, "--stateless") as two:
        async with anyio.create_task_group() as tg:
            for i, url in enumerate([one, two, one, two]):
                tg.start_soon(worker, url, f"w{i}")
    assert sum(done.values()) == tasks
    assert len([n for n in done.values() if n]) >= 2  # both servers did work
    with open_store(pg_url) as store:
        leased = Counter(e.data.task_id for e in store.query(types=["task_leased"], limit=10_000))
        accepted = store.count(types=["receipt_recorded"])
    assert len(leased) == tasks
    assert set(leased.values()) == {1}
    assert accepted == tasks


async def test_http_a_worker_without_an_id_works_as_its_tokens_worker(tmp_path: Path) -> None:
    from fleetforge.client import FleetClient, SyncFleetClient
    from fleetforge.worker import Worker

    env = fleet_env(tmp_path, f"sqlite:///{tmp_path / 'fleet.db'}")
    with open_store(env["FLEETFORGE_STORE"]) as store:
        tokens = TokenStore(store)
        bound = tokens.create("worker-1", ["work", "submit", "read"], worker_id="worker-1")[0]
        unbound = tokens.create("anyone", ["work", "submit", "read"])[0]
    with http_server(env) as url:
        for token, expected in ((bound, "worker-1"), (unbound, "exec-here-1")):
            async with FleetClient.connect(url, token=token) as client:
                run = await client.submit_run(SPEC)
                worker = Worker(client, lambda task: "done", default_id="exec-here-1")
                stats = await worker.run(stop_when_idle=True)
                done = await client.get_run(run.run_id)
            assert worker.worker_id == expected  # registered as the token's worker, or default
            assert (stats.completed, done.status) == (1, "completed")
        # the sync client over HTTP (it entered the transport in one task, left it in another)
        with SyncFleetClient.connect(url, token=bound) as fleet:
            assert len(fleet.list_runs().runs) == 2
    with open_store(env["FLEETFORGE_STORE"]) as store:
        registered = store.query(types=["worker_registered"], limit=10)
    assert [e.data.worker.worker_id for e in registered] == ["worker-1", "exec-here-1"]  # type: ignore[attr-defined]
