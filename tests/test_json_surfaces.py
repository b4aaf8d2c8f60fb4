"""One corpus of edge values through every surface, on both stores: the CLI (validate, submit,
show), the MCP tools (submit, post_receipt, resume), and `db export` -> `db import` into the
other store. Each value is refused with a JSON pointer everywhere, or read back equal."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from mcp import ClientSession
from mcp.shared.memory import create_connected_server_and_client_session
from typer.testing import CliRunner

from fleetforge._jsondomain import INT_MAX, INT_MIN, MAX_STRING_BYTES
from fleetforge.cli import app
from fleetforge.errors import ContractError
from fleetforge.fleet.service import FleetService, SyncFleetService
from fleetforge.fleet.store import EventStore, open_store
from fleetforge.mcp_server.server import build_server
from tests.factories import SPEC, event

runner = CliRunner()


def nest(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# A value at /inputs/v of a spec sits in 2 containers: 62 more levels fit, 63 do not.
REFUSED: dict[str, Any] = {
    "nan": math.nan,
    "infinity": [1, math.inf],
    "minus_infinity": {"x": -math.inf},
    "int_over": INT_MAX + 1,
    "int_under": INT_MIN - 1,
    "huge_int": 2**70,
    "nul": "a\x00b",
    "nul_key": {"k\x00": 1},
    "surrogate": "\ud800",
    "deep": nest(63),
    "long": "x" * (MAX_STRING_BYTES + 1),
}
# The MCP SDK's client writes NaN and Infinity as null before sending: those go over the wire
# raw in test_mcp_stdio_answers_every_request, and FleetClient refuses them before sending.
SENDABLE = {k: v for k, v in REFUSED.items() if "nan" not in k and "infinity" not in k}
ACCEPTED: dict[str, tuple[Any, Any]] = {  # name: (sent, read back)
    "minus_zero": ([-0.0, {"z": -0.0}], [0.0, {"z": 0.0}]),
    "int_edges": ([INT_MAX, INT_MIN], [INT_MAX, INT_MIN]),
    "floats": ([1e308, 1.2345678901234568e18, 5e-324, 0.1],) * 2,
    "deep": (nest(62), nest(62)),
    "text": ("é😀 \n\t \u202e [/] \x1b", "é😀 \n\t \u202e [/] \x1b"),
    "long": ("x" * MAX_STRING_BYTES, "x" * MAX_STRING_BYTES),
}  # fmt: skip


def spec_with(value: Any, name: str = "corpus") -> dict[str, Any]:
    return {
        "name": name,
        "seed": 3,
        "inputs": {"v": value},
        "steps": [
            {"id": "a", "type": "tool", "tool": "t", "inputs": {"v": {"from": "inputs.v"}},
             "worker": {"role": "corpus"}}  # no worker of these tests leases it
        ],
    }  # fmt: skip


def cli(url: str, tmp_path: Path, *args: str) -> Result:
    return runner.invoke(app, ["--store", url, "--artifacts", str(tmp_path / "a"), *args])


def write(tmp_path: Path, name: str, document: Any) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))  # NaN/Infinity tokens, \u0000 and \ud800 escapes
    return str(path)


def refused_pointers(result: Result) -> list[str]:
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)["error"]
    assert body["code"] == "ContractError", body
    return [d["pointer"] for d in body["details"]]


# ── CLI ─────────────────────────────────────────────────────────────────────────────────────


def test_cli_validate_and_submit_refuse_with_a_pointer(store_url: str, tmp_path: Path) -> None:
    for name, value in REFUSED.items():
        path = write(tmp_path, name, spec_with(value))
        validated = runner.invoke(app, ["validate", "--json", path])
        submitted = cli(store_url, tmp_path, "submit", "--json", path)
        for result in (validated, submitted):
            found = refused_pointers(result)
            assert found, name
            assert all(p.startswith("/inputs/v") for p in found), (name, found)
        readable = runner.invoke(app, ["validate", path])  # the table prints escaped pointers
        assert readable.exit_code == 1
        assert "/inputs/v" in readable.stderr
    runs = json.loads(cli(store_url, tmp_path, "runs", "--json").stdout)["runs"]
    assert runs == []  # nothing was written


def test_cli_submit_reads_back_equal(store_url: str, tmp_path: Path) -> None:
    for name, (sent, read) in ACCEPTED.items():
        path = write(tmp_path, name, spec_with(sent))
        assert runner.invoke(app, ["validate", path]).exit_code == 0, name
        submitted = cli(store_url, tmp_path, "submit", "--json", path)
        assert submitted.exit_code == 0, submitted.output
        run_id = json.loads(submitted.stdout)["run_id"]
        shown = cli(store_url, tmp_path, "show", "--json", run_id)
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["spec"]["inputs"]["v"] == read, name


def test_cli_validate_checks_seeds_and_other_schemas(tmp_path: Path) -> None:
    seed = write(tmp_path, "seed", {**spec_with(1), "seed": 2**70})
    assert refused_pointers(runner.invoke(app, ["validate", "--json", seed])) == ["/seed"]
    budget = write(tmp_path, "budget", {"max_cost_usd": math.inf})
    result = runner.invoke(app, ["validate", "--json", "-s", "fleet_task_budget", budget])
    assert refused_pointers(result) == ["/max_cost_usd"]


def test_cli_reads_a_file_nested_too_deeply_to_parse(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    result = runner.invoke(app, ["validate", "--json", str(path)])
    assert refused_pointers(result) == [""]


# ── MCP ─────────────────────────────────────────────────────────────────────────────────────


@asynccontextmanager
async def mcp(store: EventStore, tmp_path: Path) -> AsyncIterator[ClientSession]:
    from fleetforge.fleet.artifacts import ArtifactStore

    fleet = FleetService(store, artifacts=ArtifactStore(tmp_path / "artifacts"))
    async with create_connected_server_and_client_session(build_server(fleet)) as session:
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert not result.isError, result.content
    assert result.structuredContent is not None
    return result.structuredContent


async def refused(session: ClientSession, tool: str, **arguments: Any) -> list[str]:
    result = await session.call_tool(tool, arguments)
    assert result.isError, f"{tool} accepted {arguments}"
    assert result.structuredContent is not None
    error = result.structuredContent["error"]
    assert error["code"] == "ContractError", error
    json.dumps(result.structuredContent).encode()  # it can be sent (no surrogate)
    return [d["pointer"] for d in error["details"]]


@pytest.mark.anyio
async def test_mcp_tools_refuse_with_a_pointer_or_read_back_equal(
    store: EventStore, tmp_path: Path
) -> None:
    steps = [{"id": f"s{i}", "type": "tool", "tool": "t"} for i in range(len(ACCEPTED))]
    async with mcp(store, tmp_path) as session:
        for name, value in SENDABLE.items():
            found = await refused(session, "fleet_submit_run", spec=spec_with(value))
            assert found, name
            assert all(p.startswith("/inputs/v") for p in found), (name, found)
        for name, (sent, read) in ACCEPTED.items():
            run = await call(session, "fleet_submit_run", spec=spec_with(sent))
            got = await call(session, "fleet_get_run", run_id=run["run_id"])
            assert got["spec"]["inputs"]["v"] == read, name

        run = await call(session, "fleet_submit_run", spec={"name": "r", "seed": 1, "steps": steps})
        await call(session, "fleet_register_worker", worker_id="w1", trust_level="privileged")
        leased = await call(session, "fleet_lease_task", worker_id="w1", max_tasks=len(steps))
        tasks = {t["task"]["step_id"]: (t["task"]["task_id"], t["lease"]["fencing_token"])
                 for t in leased["tasks"]}  # fmt: skip
        for name, value in SENDABLE.items():
            value = nest(65) if name == "deep" else value  # an output is a document's root
            task_id, token = tasks["s0"]
            found = await refused(
                session,
                "fleet_post_receipt",
                task_id=task_id,
                fencing_token=token,
                output=value,
                worker_id="w1",
            )
            assert found, name
            assert all(p.startswith("/output") for p in found), (name, found)
        for i, (sent, _) in enumerate(ACCEPTED.values()):
            task_id, token = tasks[f"s{i}"]
            receipt = await call(
                session,
                "fleet_post_receipt",
                task_id=task_id,
                fencing_token=token,
                output=sent,
                worker_id="w1",
            )
            assert receipt["status"] == "accepted"
        got = await call(session, "fleet_get_run", run_id=run["run_id"])
        expected = {f"s{i}": read for i, (_, read) in enumerate(ACCEPTED.values())}
        assert got["outputs"] == expected
        assert got["status"] == "completed"


def test_service_arguments_refuse_with_their_pointer(store: EventStore) -> None:
    fleet = SyncFleetService(store)
    run = fleet.submit_run(
        {"name": "p", "seed": 1, "steps": [{"id": "a", "type": "agent", "agent": "x"}]}
    )
    fleet.register_worker({"worker_id": "w1", "trust_level": "privileged"})
    [entry] = fleet.lease_task("w1")
    assert entry.lease is not None
    task_id, token = entry.task.task_id, entry.lease.fencing_token
    cases = [
        (lambda: fleet.pause_task(task_id, token, waiting_for=[{"q": math.nan}]),
         "/waiting_for/0/q"),
        (lambda: fleet.fail_task(task_id, token, "agent_error", "bad\x00"), "/message"),
        (lambda: fleet.release_task(task_id, token, reason="\ud800"), "/reason"),
        (lambda: fleet.cancel_run(run.run_id, reason="a\x00"), "/reason"),
        (lambda: fleet.register_worker({"worker_id": "w2", "name": "\x00"}), "/name"),
        (lambda: fleet.complete_task(task_id, token, 1, usage={"cost_usd": math.inf}),
         "/usage/cost_usd"),
    ]  # fmt: skip
    for act, pointer in cases:
        with pytest.raises(ContractError) as caught:
            act()
        assert [d.pointer for d in caught.value.details] == [pointer]
    paused = fleet.pause_task(task_id, token, waiting_for=["ok?"])
    assert paused.status == "paused"
    with pytest.raises(ContractError) as caught:
        fleet.resume_run(run.run_id, values={"a": {"n": 2**64}})
    assert [d.pointer for d in caught.value.details] == ["/values/a/n"]
    assert fleet.resume_run(run.run_id, value=-0.0).status == "running"
    [again] = fleet.lease_task("w1")
    assert again.resume is not None
    assert again.resume.value == 0.0
    assert math.copysign(1.0, again.resume.value) == 1.0


# ── db export -> db import into the other store ─────────────────────────────────────────────


@pytest.fixture(params=["sqlite->postgres", "postgres->sqlite"])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str) -> tuple[str, str]:
    sqlite = f"sqlite:///{tmp_path / 'fleet.db'}"
    return (sqlite, pg_url) if request.param == "sqlite->postgres" else (pg_url, sqlite)


def test_export_imports_into_the_other_store_equal(
    two_stores: tuple[str, str], tmp_path: Path
) -> None:
    source, target = two_stores
    steps = [{"id": f"s{i}", "type": "tool", "tool": "t"} for i in range(len(ACCEPTED))]
    with open_store(source) as store:
        fleet = SyncFleetService(store)
        runs = [fleet.submit_run(spec_with(sent)).run_id for sent, _ in ACCEPTED.values()]
        outputs_run = fleet.submit_run({"name": "outputs", "seed": 2, "steps": steps}).run_id
        fleet.register_worker({"worker_id": "w1", "trust_level": "privileged"})
        sent_by_step = {f"s{i}": sent for i, (sent, _) in enumerate(ACCEPTED.values())}
        for entry in fleet.lease_task("w1", max_tasks=len(steps)):
            assert entry.lease is not None
            output = sent_by_step[entry.task.step_id]
            fleet.complete_task(entry.task.task_id, entry.lease.fencing_token, output)
    exported = cli(source, tmp_path, "db", "export", str(tmp_path / "fleet.jsonl"))
    assert exported.exit_code == 0, exported.output
    imported = cli(target, tmp_path, "db", "import", str(tmp_path / "fleet.jsonl"))
    assert imported.exit_code == 0, imported.output
    assert cli(target, tmp_path, "replay", "--verify").exit_code == 0
    with open_store(target) as store:
        fleet = SyncFleetService(store)
        for run_id, (_, read) in zip(runs, ACCEPTED.values(), strict=True):
            assert fleet.get_run(run_id).spec.inputs["v"] == read
        expected = {f"s{i}": read for i, (_, read) in enumerate(ACCEPTED.values())}
        assert fleet.get_run(outputs_run).outputs == expected


def test_a_record_stored_before_the_check_is_refused_on_import(
    two_stores: tuple[str, str], tmp_path: Path
) -> None:
    """A store written before the value domain existed may hold what it refuses: the import
    into the other store stops with the line and the pointer, and writes nothing."""
    source, target = two_stores
    legacy = SPEC.model_copy(update={"inputs": {"v": 2**70}})
    with open_store(source) as store:
        store.append(
            [event("run_submitted", "run_old", spec=legacy, spec_digest="sha256:" + "0" * 64)]
        )
    assert cli(source, tmp_path, "db", "export", str(tmp_path / "old.jsonl")).exit_code == 0
    result = cli(target, tmp_path, "db", "import", str(tmp_path / "old.jsonl"))
    assert result.exit_code == 1, result.output
    assert "line 2" in result.stderr
    assert "/data/spec/inputs/v" in result.stderr
    with open_store(target) as store:
        assert store.count() == 0


# ── the wire, and records stored before the check ───────────────────────────────────────────


def legacy_run(store: EventStore, value: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A run submitted as FleetForge did before it checked JSON values."""
    import fleetforge.validation

    with monkeypatch.context() as patched:
        patched.setattr(fleetforge.validation, "check_json_value", lambda v, **_: v)
        return SyncFleetService(store).submit_run(spec_with(value, "legacy")).run_id


class RawMcp:
    """``fleetforge mcp`` driven with JSON-RPC lines written by hand (what any client may send)."""

    def __init__(self, store_url: str) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleetforge", "--store", store_url, "mcp"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            encoding="utf-8",
        )  # fmt: skip
        self.ids = iter(range(1, 1000))
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "raw", "version": "0"}})  # fmt: skip
        self.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any], raw: str = "") -> dict[str, Any]:
        """Send a request (``raw`` replaces the string "RAW" in it, as JSON text) and wait for
        the reply with its id (notifications are skipped)."""
        number = next(self.ids)
        body = json.dumps({"jsonrpc": "2.0", "id": number, "method": method, "params": params})
        self.send(body.replace('"RAW"', raw) if raw else body)
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            assert line, "the server closed its output without answering"
            reply = json.loads(line)
            if reply.get("id") == number:
                return reply  # type: ignore[no-any-return]

    def tool(self, name: str, raw: str = "", **arguments: Any) -> dict[str, Any]:
        reply = self.request("tools/call", {"name": name, "arguments": arguments}, raw)
        return reply["result"]  # type: ignore[no-any-return]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        for handle in (self.proc.stdin, self.proc.stdout):
            if handle is not None:
                handle.close()


def test_mcp_stdio_answers_every_request(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(store_url) as store:
        old = legacy_run(store, nest(200), monkeypatch)
    server = RawMcp(store_url)
    try:
        for raw in ("NaN", "Infinity", "-Infinity", "1e400", "18446744073709551616", '"\\ud800"',
                    '"a\\u0000"'):  # fmt: skip
            result = server.tool("fleet_submit_run", raw=raw, spec=spec_with("RAW"))
            assert result["isError"], raw
            error = result["structuredContent"]["error"]
            assert error["code"] == "ContractError", error
            assert [d["pointer"] for d in error["details"]] == ["/inputs/v"], raw
        for tool, arguments in (("fleet_get_run", {"run_id": old}),
                                ("fleet_run_events", {"run_id": old})):  # fmt: skip
            result = server.tool(tool, **arguments)
            assert result["isError"]
            assert result["structuredContent"]["error"]["code"] == "StoreError"
        listed = server.tool("fleet_list_runs")  # still answering
        assert not listed["isError"]
        assert [r["run_id"] for r in listed["structuredContent"]["runs"]] == [old]
    finally:
        server.close()


@pytest.mark.anyio
async def test_sdk_client_refuses_what_mcp_would_alter(tmp_path: Path) -> None:
    from fleetforge.client import FleetClient
    from fleetforge.contracts import RunSpec

    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    local = FleetClient.local(url, artifacts=tmp_path / "a")
    command = [sys.executable, "-m", "fleetforge", "--store", url, "--artifacts",
               str(tmp_path / "a"), "mcp"]  # fmt: skip
    remote = FleetClient.stdio(command)
    for client in (local, remote):
        async with client:
            for spec in (spec_with(math.nan), RunSpec.model_validate(spec_with([1, math.inf]))):
                with pytest.raises(ContractError) as refused:
                    await client.submit_run(spec)
                assert [d.pointer[:9] for d in refused.value.details] == ["/inputs/v"]
            run = await client.submit_run(spec_with(-0.0))
            assert (await client.get_run(run.run_id)).spec.inputs["v"] == 0.0
            from datetime import UTC, datetime

            with pytest.raises(ContractError) as refused:  # as in process: not JSON data
                await client.resume_run(run.run_id, value={"at": datetime.now(UTC)})
            assert [d.pointer for d in refused.value.details] == ["/value/at"]
            blob = b"x" * (MAX_STRING_BYTES + 10)  # its base64 is no string of the domain
            artifact = await client.put_artifact(blob, media_type="text/plain")
            assert (await client.get_artifact(artifact.digest))[1] == blob


@pytest.mark.anyio
async def test_readers_survive_records_stored_before_the_check(
    store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 200-deep task (too deep for MCP clients' JSON parsers) and a run pydantic cannot even
    serialize: every reader answers, with a StoreError where it cannot show the record."""
    from fleetforge.fleet.store._base import EventRow

    deep_task = legacy_run(store, nest(200), monkeypatch)
    spec = spec_with(nest(300), "too deep to serialize")
    row = EventRow(0, "evt_legacy", "run_legacy", "run_submitted", "2026-01-01T00:00:00.000000Z",
                   {"spec": spec, "spec_digest": "sha256:" + "0" * 64})  # fmt: skip
    store.append_rows([row])
    url = store.url  # a test store's URL has no password to mask

    async with mcp(store, tmp_path) as session:
        await call(session, "fleet_register_worker", worker_id="w1", role="corpus")
        for tool, arguments in (("fleet_get_run", {"run_id": deep_task}),
                                ("fleet_lease_task", {"worker_id": "w1"}),
                                ("fleet_get_run", {"run_id": "run_legacy"})):  # fmt: skip
            result = await session.call_tool(tool, arguments)
            assert result.isError, tool
            assert result.structuredContent is not None
            assert result.structuredContent["error"]["code"] in {"StoreError", "InternalError"}
        assert (await call(session, "fleet_list_runs"))["runs"]  # the session goes on

    shown = cli(url, tmp_path, "show", "--json", "run_legacy")
    assert shown.exit_code == 5, shown.output
    assert json.loads(shown.stdout)["error"]["code"] == "StoreError"
    assert "nested too deeply" in shown.stdout
    assert cli(url, tmp_path, "show", "run_legacy").exit_code == 0
    assert cli(url, tmp_path, "show", "--json", deep_task).exit_code == 0
    lines = cli(url, tmp_path, "events", "--json", "--limit", "1000")
    assert lines.exit_code == 0, lines.output
    assert "evt_legacy" in {json.loads(line)["event_id"] for line in lines.stdout.splitlines()}
    assert cli(url, tmp_path, "events").exit_code == 0
