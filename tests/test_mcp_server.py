"""The MCP server in process (the SDK's in-memory transport), on both stores: every tool,
resource and prompt, and every error path as a structured tool error."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp import ClientSession
from mcp.shared.exceptions import McpError
from mcp.shared.memory import create_connected_server_and_client_session

from fleetforge import errors, schemas
from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.service import FleetService
from fleetforge.fleet.store import EventStore
from fleetforge.mcp_server._shim import lowlevel
from fleetforge.mcp_server.server import ServerOptions, build_server
from fleetforge.operations import OPERATIONS

pytestmark = pytest.mark.anyio

CODES = sorted(
    name
    for name in errors.__all__
    if isinstance(getattr(errors, name), type)
    and issubclass(getattr(errors, name), errors.FleetForgeError)
)

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"enum": CODES},
                "message": {"type": "string", "minLength": 1},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["pointer", "message"],
                        "properties": {
                            "pointer": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}


def spec(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {
        "name": "mcp-test",
        "seed": 7,
        "steps": list(steps) or [{"id": "a", "type": "tool", "tool": "t"}],
    }
    return body | fields


class Client:
    """A client session that checks every result against the tool's declared schemas."""

    def __init__(self, session: ClientSession, models: dict[str, Any]) -> None:
        self.session = session
        self.models = models  # tool -> the pydantic model its result is built from
        self.output_schemas: dict[str, dict[str, Any]] = {}

    async def load(self) -> None:
        for tool in (await self.session.list_tools()).tools:
            assert tool.outputSchema is not None, f"{tool.name} has no outputSchema"
            self.output_schemas[tool.name] = tool.outputSchema

    async def call(self, name: str, /, **arguments: Any) -> dict[str, Any]:
        """Call a tool that must succeed; return its structured content."""
        result = await self.session.call_tool(name, arguments)
        assert not result.isError, result.content[0].text  # type: ignore[union-attr]
        assert result.structuredContent is not None
        jsonschema.validate(result.structuredContent, self.output_schemas[name])
        self.models[name].model_validate(result.structuredContent)  # and the full contract
        # old clients read the text content: it is the same JSON
        assert json.loads(result.content[0].text) == result.structuredContent  # type: ignore[union-attr]
        return result.structuredContent

    async def fail(self, name: str, code: str, /, **arguments: Any) -> tuple[dict[str, Any], str]:
        """Call a tool that must fail with error ``code``; return (error body, text)."""
        result = await self.session.call_tool(name, arguments)
        assert result.isError, f"{name} succeeded: {result.structuredContent}"
        assert result.structuredContent is not None
        jsonschema.validate(result.structuredContent, ERROR_SCHEMA)
        if name in self.output_schemas:  # clients that validate error results accept it too
            jsonschema.validate(result.structuredContent, self.output_schemas[name])
        error = result.structuredContent["error"]
        text = result.content[0].text  # type: ignore[union-attr]
        assert error["code"] == code, text
        assert text.startswith(f"{code}: "), text
        assert "Error executing tool" not in text
        return error, text


@asynccontextmanager
async def connect(
    store: EventStore, tmp_path: Path, **options: Any
) -> AsyncIterator[tuple[Client, FleetService]]:
    fleet = FleetService(store, artifacts=ArtifactStore(tmp_path / "artifacts"))
    server = build_server(fleet, ServerOptions(**options))
    models = {op.tool: op.result for op in OPERATIONS.values()}
    async with create_connected_server_and_client_session(server) as session:
        client = Client(session, models)
        await client.load()
        yield client, fleet


async def lease_one(client: Client, worker: str = "w1", **kw: Any) -> dict[str, Any]:
    tasks = (await client.call("fleet_lease_task", worker_id=worker, **kw))["tasks"]
    assert len(tasks) == 1, tasks
    return tasks[0]  # type: ignore[no-any-return]


# ── listing ─────────────────────────────────────────────────────────────────────────────────


async def test_tools_are_the_public_contract(store: EventStore, tmp_path: Path) -> None:
    async with connect(store, tmp_path) as (client, _):
        tools = {t.name: t for t in (await client.session.list_tools()).tools}
    assert set(tools) == {op.tool for op in OPERATIONS.values()}
    for tool in tools.values():
        assert len(tool.description or "") > 60, tool.name
        assert tool.annotations is not None
        assert tool.annotations.openWorldHint is False
        for prop, body in tool.inputSchema.get("properties", {}).items():
            assert body.get("description"), f"{tool.name}.{prop} has no description"
    for name in ("fleet_get_run", "fleet_list_runs", "fleet_run_events", "fleet_get_artifact"):
        assert tools[name].annotations.readOnlyHint is True  # type: ignore[union-attr]
    assert tools["fleet_cancel_run"].annotations.destructiveHint is True  # type: ignore[union-attr]
    for name in ("fleet_heartbeat", "fleet_post_receipt", "fleet_register_worker"):
        assert tools[name].annotations.idempotentHint is True  # type: ignore[union-attr]
    assert tools["fleet_submit_run"].annotations.readOnlyHint is False  # type: ignore[union-attr]
    # the envelope and spec are objects, not strings (DESIGN "MCP tool arguments")
    assert tools["fleet_submit_run"].inputSchema["properties"]["spec"]["type"] == "object"
    assert set(tools["fleet_heartbeat"].inputSchema["required"]) == {"task_id", "fencing_token"}


# ── a whole run through the tools ───────────────────────────────────────────────────────────


async def test_lease_heartbeat_event_receipt_cycle(store: EventStore, tmp_path: Path) -> None:
    two_steps = spec(
        {"id": "a", "type": "tool", "tool": "echo", "inputs": {"x": 1}},
        {
            "id": "b",
            "type": "tool",
            "tool": "t",
            "depends_on": ["a"],
            "inputs": {"y": {"from": "steps.a.output"}},
        },
    )
    async with connect(store, tmp_path) as (client, _):
        run = await client.call("fleet_submit_run", spec=two_steps)
        run_id = run["run_id"]
        assert run["status"] == "running"
        worker = await client.call("fleet_register_worker", worker_id="w1", tools=["*"])
        assert worker["host"]["kind"] == "mcp_client"
        entry = await lease_one(client)
        task, lease = entry["task"], entry["lease"]
        assert (task["step_id"], task["inputs"]) == ("a", {"x": 1})
        renewed = await client.call(
            "fleet_heartbeat",
            task_id=task["task_id"],
            fencing_token=lease["fencing_token"],
            lease_seconds=60,
            worker_id="w1",
        )
        assert renewed["expires_at"] > lease["expires_at"]
        envelope = {
            "kind": "emit",
            "event": "message",
            "payload": {"role": "assistant", "content": "working"},
            "seq": 1,
            "at": "2026-11-23T00:00:00Z",
            "run_id": run_id,
            "step_id": "a",
            "task_id": task["task_id"],
            "seed": 7,
            "adapter": {"name": "mcp-test", "version": "1"},
        }
        posted = await client.call(
            "fleet_post_event",
            task_id=task["task_id"],
            fencing_token=lease["fencing_token"],
            envelope=envelope,
            worker_id="w1",
        )
        assert posted["seq"] > 0
        receipt = await client.call(
            "fleet_post_receipt",
            task_id=task["task_id"],
            fencing_token=lease["fencing_token"],
            output={"echo": 1},
            usage={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
            worker_id="w1",
        )
        assert receipt["status"] == "accepted"
        assert receipt["hash"].startswith("sha256:")
        # the same call again (a retry after a lost reply) has one effect
        again = await client.call(
            "fleet_post_receipt",
            task_id=task["task_id"],
            fencing_token=lease["fencing_token"],
            output={"echo": 1},
            usage={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
            worker_id="w1",
        )
        assert again["receipt_id"] == receipt["receipt_id"]
        assert again["status"] == "accepted"
        child = await lease_one(client)
        assert child["task"]["inputs"] == {"y": {"echo": 1}}
        await client.call(
            "fleet_post_receipt",
            task_id=child["task"]["task_id"],
            fencing_token=child["lease"]["fencing_token"],
            output="done",
            worker_id="w1",
        )
        final = await client.call("fleet_get_run", run_id=run_id)
        assert final["status"] == "completed"
        assert final["outputs"] == {"a": {"echo": 1}, "b": "done"}
        assert final["usage"]["total_tokens"] == 7

        page = await client.call("fleet_run_events", run_id=run_id, limit=5)
        assert [e["type"] for e in page["events"]][:2] == ["run_submitted", "run_started"]
        types: list[str] = [e["type"] for e in page["events"]]
        cursor = page["next_cursor"]
        while cursor:
            page = await client.call("fleet_run_events", run_id=run_id, cursor=cursor, limit=5)
            types += [e["type"] for e in page["events"]]
            cursor = page["next_cursor"]
        assert types.count("receipt_recorded") == 2
        assert types[-1] == "run_completed"
        assert "task_event" in types
        tail = await client.call("fleet_run_events", run_id=run_id, cursor=page["last_cursor"])
        assert tail["events"] == []
        assert tail["last_cursor"] == page["last_cursor"]


async def test_fail_task_retries_then_fails(store: EventStore, tmp_path: Path) -> None:
    retrying = spec(
        {"id": "a", "type": "tool", "tool": "t", "retry": {"max_attempts": 2, "backoff_s": 0}}
    )
    async with connect(store, tmp_path) as (client, _):
        run_id = (await client.call("fleet_submit_run", spec=retrying))["run_id"]
        await client.call("fleet_register_worker", worker_id="w1")
        for will_retry in (True, False):
            entry = await lease_one(client)
            result = await client.call(
                "fleet_fail_task",
                task_id=entry["task"]["task_id"],
                fencing_token=entry["lease"]["fencing_token"],
                kind="transient",
                message="flaky",
                worker_id="w1",
            )
            assert result["will_retry"] is will_retry
        run = await client.call("fleet_get_run", run_id=run_id)
        assert run["status"] == "failed"
        assert "flaky" in run["error"]


async def test_runs_list_cancel_breakpoint_resume_approve(
    store: EventStore, tmp_path: Path
) -> None:
    async with connect(store, tmp_path) as (client, _):
        paused = await client.call(
            "fleet_submit_run",
            spec=spec(
                {"id": "a", "type": "tool", "tool": "t"}, breakpoints=["a"], labels={"team": "x"}
            ),
        )
        assert paused["status"] == "paused"
        resumed = await client.call("fleet_resume_run", run_id=paused["run_id"])
        assert resumed["status"] == "running"
        _, text = await client.fail("fleet_resume_run", "ConflictError", run_id=paused["run_id"])
        assert "not paused" in text

        human = await client.call(
            "fleet_submit_run", spec=spec({"id": "ok", "type": "human", "prompt": "Ship?"})
        )
        approved = await client.call(
            "fleet_approve_step", run_id=human["run_id"], step_id="ok", comment="yes"
        )
        assert approved["status"] == "completed"
        assert approved["outputs"]["ok"] == {"approved": True, "by": "mcp", "comment": "yes"}

        again = await client.call("fleet_submit_run", spec=spec(), idempotency_key="k-1")
        same = await client.call("fleet_submit_run", spec=spec(), idempotency_key="k-1")
        assert again["run_id"] == same["run_id"]
        cancelled = await client.call("fleet_cancel_run", run_id=again["run_id"], reason="test")
        assert cancelled["status"] == "cancelled"
        await client.fail("fleet_cancel_run", "AlreadyCompletedError", run_id=again["run_id"])

        first = await client.call("fleet_list_runs", limit=2)
        assert len(first["runs"]) == 2
        assert first["next_cursor"]
        rest = await client.call("fleet_list_runs", cursor=first["next_cursor"], limit=10)
        assert rest["next_cursor"] is None
        ids = [r["run_id"] for r in first["runs"] + rest["runs"]]
        assert len(ids) == len(set(ids)) == 3
        labelled = await client.call("fleet_list_runs", labels={"team": "x"})
        assert [r["run_id"] for r in labelled["runs"]] == [paused["run_id"]]
        done = await client.call("fleet_list_runs", status="cancelled")
        assert [r["run_id"] for r in done["runs"]] == [again["run_id"]]


async def test_artifacts_round_trip_and_limits(store: EventStore, tmp_path: Path) -> None:
    async with connect(store, tmp_path, max_artifact_bytes=1024) as (client, _):
        content = base64.b64encode(b"# draft\n").decode()
        stored = await client.call(
            "fleet_put_artifact", content=content, media_type="text/markdown", name="d.md"
        )
        assert stored["size_bytes"] == 8
        assert stored["digest"].startswith("sha256:")
        read = await client.call("fleet_get_artifact", digest=stored["digest"])
        assert base64.b64decode(read["content"]) == b"# draft\n"
        assert read["artifact"]["media_type"] == "text/markdown"
        error, _ = await client.fail("fleet_put_artifact", "ContractError", content="not base64!")
        assert error["details"][0]["pointer"] == "/content"
        big = base64.b64encode(b"x" * 2048).decode()
        error, text = await client.fail("fleet_put_artifact", "ContractError", content=big)
        assert "1,024-byte limit" in text
        await client.fail("fleet_get_artifact", "NotFoundError", digest="sha256:" + "0" * 64)
        blob = await client.session.read_resource(f"fleet://artifacts/{stored['digest']}")  # type: ignore[arg-type]
        assert base64.b64decode(blob.contents[0].blob) == b"# draft\n"  # type: ignore[union-attr]


# ── errors ──────────────────────────────────────────────────────────────────────────────────


async def test_invalid_spec_names_every_problem_and_writes_nothing(
    store: EventStore, tmp_path: Path
) -> None:
    bad = {"name": "x", "seed": 0, "steps": [{"id": "a", "type": "nope"}]}
    async with connect(store, tmp_path) as (client, _):
        before = store.count()
        error, text = await client.fail("fleet_submit_run", "ContractError", spec=bad)
        assert store.count() == before
    pointers = {d["pointer"] for d in error["details"]}
    assert pointers == {"/seed", "/steps/0/type"}
    assert "/seed: a positive integer seed is required" in text


async def test_a_task_pauses_for_input_and_resumes_with_a_value(
    store: EventStore, tmp_path: Path
) -> None:
    async with connect(store, tmp_path) as (client, _fleet):
        run_id = (await client.call("fleet_submit_run", spec=spec()))["run_id"]
        await client.call("fleet_register_worker", worker_id="w1", tools=["*"])
        entry = await lease_one(client)
        assert entry["resume"] is None
        task_id, token = entry["task"]["task_id"], entry["lease"]["fencing_token"]
        await client.fail("fleet_resume_run", "ConflictError", run_id=run_id, value=1)
        paused = await client.call(
            "fleet_pause_task",
            task_id=task_id,
            fencing_token=token,
            reason="which tone?",
            waiting_for=[{"question": "formal or casual?"}],
            worker_id="w1",
        )
        assert paused["status"] == "paused"
        [asking] = paused["waiting_for_input"]
        assert asking["waiting_for"] == [{"question": "formal or casual?"}]
        got = await client.call("fleet_get_run", run_id=run_id)
        assert got["waiting_for_input"] == [asking]
        await client.fail(
            "fleet_pause_task",
            "LeaseLostError",
            task_id=task_id,
            fencing_token=token,
            worker_id="w1",
        )
        assert (await client.call("fleet_lease_task", worker_id="w1"))["tasks"] == []
        error, _ = await client.fail(
            "fleet_resume_run", "ContractError", run_id=run_id, values={"b": 1}
        )
        assert error["details"] == [
            {"pointer": "/values/b", "message": "no waiting task or step has this id"}
        ]
        resumed = await client.call(
            "fleet_resume_run", run_id=run_id, value="unused", values={"a": {"tone": "casual"}}
        )
        assert resumed["status"] == "running"
        again = await lease_one(client)
        assert again["task"]["task_id"] == task_id
        assert again["resume"] == {"value": {"tone": "casual"}}


async def test_lease_errors_are_tool_errors(store: EventStore, tmp_path: Path) -> None:
    async with connect(store, tmp_path) as (client, _fleet):
        await client.call("fleet_submit_run", spec=spec())
        await client.fail("fleet_lease_task", "NotFoundError", worker_id="ghost")
        error, _ = await client.fail("fleet_lease_task", "ContractError", worker_id=None)
        assert error["details"] == [{"pointer": "/worker_id", "message": "is required"}]
        error, _ = await client.fail(
            "fleet_lease_task", "ContractError", worker_id="w", max_tasks=0
        )
        assert error["details"][0]["pointer"] == "/max_tasks"
        await client.call("fleet_register_worker", worker_id="w1")
        entry = await lease_one(client)
        task_id, token = entry["task"]["task_id"], entry["lease"]["fencing_token"]
        _, text = await client.fail(
            "fleet_heartbeat",
            "LeaseLostError",
            task_id=task_id,
            fencing_token=token + 1,
            worker_id="w1",
        )
        assert "lease lost: stale fencing token" in text
        await client.fail(
            "fleet_heartbeat", "NotFoundError", task_id="nope", fencing_token=1, worker_id="w1"
        )
        error, _ = await client.fail(
            "fleet_post_event",
            "ContractError",
            task_id=task_id,
            fencing_token=token,
            envelope={},
            worker_id="w1",
        )
        assert error["details"]
        await client.call("fleet_cancel_run", run_id=entry["task"]["run_id"])
        _, text = await client.fail(
            "fleet_post_receipt",
            "RunCancelledError",
            task_id=task_id,
            fencing_token=token,
            output=1,
            worker_id="w1",
        )
        assert "run cancelled" in text
        await client.fail("fleet_get_run", "NotFoundError", run_id="run_missing")
        await client.fail("fleet_run_events", "NotFoundError", run_id="run_missing")
        await client.fail("fleet_run_events", "ContractError", run_id="x", cursor="abc")
        _, text = await client.fail("fleet_no_such_tool", "NotFoundError")
        assert "fleet_submit_run" in text


WORK_TOOLS: dict[str, dict[str, Any]] = {  # every tool acting on a lease, and its arguments
    "fleet_heartbeat": {},
    "fleet_post_event": {"envelope": {}},
    "fleet_post_receipt": {"output": "forged"},
    "fleet_fail_task": {"kind": "agent_error", "message": "x"},
    "fleet_release_task": {},
    "fleet_pause_task": {},
}


async def test_only_the_worker_holding_a_lease_may_act_on_it(
    store: EventStore, tmp_path: Path
) -> None:
    """Over stdio the caller names its worker; it must be the one holding the lease."""
    async with connect(store, tmp_path) as (client, _):
        run_id = (await client.call("fleet_submit_run", spec=spec()))["run_id"]
        for worker in ("w1", "w2"):
            await client.call("fleet_register_worker", worker_id=worker)
        entry = await lease_one(client)
        ids = {"task_id": entry["task"]["task_id"], "fencing_token": 1}
        WORK_TOOLS["fleet_post_event"]["envelope"] = {
            "kind": "emit", "event": "message", "payload": {}, "seq": 0,
            "at": "2026-12-01T00:00:00Z", "run_id": run_id, "step_id": "a",
            "task_id": ids["task_id"], "seed": 7, "adapter": {"name": "t", "version": "1"},
        }  # fmt: skip
        for tool, extra in WORK_TOOLS.items():
            _, text = await client.fail(tool, "ForbiddenError", **ids, **extra, worker_id="w2")
            assert "worker 'w2' does not hold the lease" in text
            error, _ = await client.fail(tool, "ContractError", **ids, **extra)
            assert error["details"] == [{"pointer": "/worker_id", "message": "is required"}]
        await client.fail(
            "fleet_put_artifact",
            "ForbiddenError",
            content="eA==",
            task_id=ids["task_id"],
            worker_id="w2",
        )
        done = await client.call("fleet_post_receipt", **ids, output="mine", worker_id="w1")
        assert done["worker_id"] == "w1"
        final = await client.call("fleet_get_run", run_id=run_id)
    assert final["outputs"] == {"a": "mine"}
    assert len(store.query(types=["access_denied"])) == len(WORK_TOOLS) + 1


async def test_unexpected_exceptions_hide_internals(
    store: EventStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with connect(store, tmp_path) as (client, fleet):

        def broken(run_id: str) -> None:
            raise RuntimeError("secret connection string postgres://u:p@db")

        monkeypatch.setattr(fleet.sync, "get_run", broken)
        error, text = await client.fail("fleet_get_run", "InternalError", run_id="r")
    assert "secret" not in text
    assert "error id err_" in text
    error_id = error["context"]["error_id"]
    assert any(error_id in r.getMessage() and r.exc_info for r in caplog.records)


# ── resources and prompt ────────────────────────────────────────────────────────────────────


async def test_resources(store: EventStore, tmp_path: Path) -> None:
    async with connect(store, tmp_path) as (client, _):
        run = await client.call("fleet_submit_run", spec=spec())
        templates = {
            t.uriTemplate
            for t in (await client.session.list_resource_templates()).resourceTemplates
        }
        assert templates == {
            "fleet://runs/{run_id}",
            "fleet://runs/{run_id}/events",
            "fleet://schemas/{name}",
            "fleet://artifacts/{digest}",
        }
        body = await client.session.read_resource(f"fleet://runs/{run['run_id']}")  # type: ignore[arg-type]
        assert json.loads(body.contents[0].text)["run_id"] == run["run_id"]  # type: ignore[union-attr]
        events = await client.session.read_resource(f"fleet://runs/{run['run_id']}/events")  # type: ignore[arg-type]
        assert json.loads(events.contents[0].text)[0]["type"] == "run_submitted"  # type: ignore[union-attr]
        schema = await client.session.read_resource("fleet://schemas/run_spec")  # type: ignore[arg-type]
        assert json.loads(schema.contents[0].text) == schemas.load("run_spec")  # type: ignore[union-attr]
        with pytest.raises(McpError, match="no run 'run_missing'"):
            await client.session.read_resource("fleet://runs/run_missing")  # type: ignore[arg-type]
        with pytest.raises(McpError, match="no schema named"):
            await client.session.read_resource("fleet://schemas/nope")  # type: ignore[arg-type]


async def test_worker_prompt(store: EventStore, tmp_path: Path) -> None:
    async with connect(store, tmp_path) as (client, _):
        prompts = (await client.session.list_prompts()).prompts
        assert [p.name for p in prompts] == ["fleet_worker_loop", "fleet_coordination"]
        got = await client.session.get_prompt("fleet_worker_loop", {"worker_id": "w9", "role": "r"})
    text = got.messages[0].content.text  # type: ignore[union-attr]
    for tool in ("fleet_lease_task", "fleet_heartbeat", "fleet_post_receipt", "fleet_fail_task"):
        assert tool in text
    assert '"w9"' in text


async def test_lease_waits_with_progress(store: EventStore, tmp_path: Path) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with connect(store, tmp_path) as (client, _):
        await client.call("fleet_register_worker", worker_id="w1")
        result = await client.session.call_tool(
            "fleet_lease_task",
            {"worker_id": "w1", "wait_seconds": 2.2},
            progress_callback=on_progress,
        )
    assert result.structuredContent == {"tasks": []}
    assert len(progress) == 2
    assert all(total == 2.2 and message == "waiting for a task" for _, total, message in progress)
    assert progress[0][0] < progress[1][0] <= 2.2


# ── schemas as clients see them ─────────────────────────────────────────────────────────────


@pytest.mark.parametrize("op", list(OPERATIONS.values()), ids=lambda op: op.tool)
def test_published_output_schemas_are_short_and_name_every_field(op: Any) -> None:
    """Stock clients check every result against the schema (and the schema against the
    metaschema) on every call: it has no subschema, and names each field with its type."""
    from fleetforge.mcp_server._schema import published_output

    schema = published_output(op)
    assert set(schema) == {"type", "title", "description"}
    assert schema["type"] == "object"
    for name in op.result.model_fields:
        assert f" {name} (" in schema["description"], name
    if op.result.__name__ in ("Run", "FleetReceipt", "FleetLease", "Artifact"):
        assert "fleet://schemas/" in schema["description"]


async def test_fleet_client_session_still_rejects_bad_results(
    store: EventStore, tmp_path: Path
) -> None:
    from mcp.shared.memory import create_client_server_memory_streams

    from fleetforge.client import FleetClientSession

    server = lowlevel(build_server(FleetService(store)))
    options = server.create_initialization_options()
    async with create_client_server_memory_streams() as ((c_read, c_write), (s_read, s_write)):
        import anyio

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.run(s_read, s_write, options))
            async with FleetClientSession(c_read, c_write) as session:
                await session.initialize()
                await session.list_tools()
                good = await session.call_tool("fleet_list_runs", {})
                assert good.structuredContent == {"runs": [], "next_cursor": None}
                session._tool_output_schemas["fleet_list_runs"] = {
                    "type": "object",
                    "required": ["missing"],
                }
                with pytest.raises(RuntimeError, match=r"fleet_list_runs.*'missing'"):
                    await session.call_tool("fleet_list_runs", {})
            tg.cancel_scope.cancel()


def test_tools_json_is_the_operation_table() -> None:
    """The tools a server lists (without loading the contracts) are the operation table's."""
    from fleetforge.mcp_server._build import render

    committed = Path(__file__).parents[1] / "mcp_server" / "tools.json"
    assert committed.read_text(encoding="utf-8") == render(), "run `make schemas`"
