"""The SDK's Worker and FleetClient: the same behaviour in process, over stdio and over HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from fleetforge.client import FleetClient, SyncFleetClient
from fleetforge.contracts import FleetTaskFailureKind
from fleetforge.errors import ContractError, LeaseLostError, NotFoundError
from fleetforge.worker import TaskError, TaskPaused, TaskRun, Worker

from .test_mcp_transports import FLEETFORGE, fleet_env, http_server

pytestmark = pytest.mark.anyio

TRANSPORTS = ["local", "stdio", "http"]


@asynccontextmanager
async def client_for(transport: str, tmp_path: Path) -> AsyncIterator[FleetClient]:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    env = fleet_env(tmp_path, url)
    if transport == "local":
        async with FleetClient.local(url, artifacts=tmp_path / "artifacts") as client:
            yield client
    elif transport == "stdio":
        async with FleetClient.stdio([FLEETFORGE, "mcp"], env=env) as client:
            yield client
    else:
        with http_server(env, "--no-auth") as base:
            async with FleetClient.connect(base, token=None) as client:
                yield client


def spec(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    default = [{"id": "a", "type": "tool", "tool": "t", "inputs": {"n": 1}}]
    return {"name": "worker-test", "seed": 9, "steps": list(steps) or default} | fields


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_worker_runs_a_dag_on_every_transport(transport: str, tmp_path: Path) -> None:
    dag = spec(
        {"id": "a", "type": "tool", "tool": "t", "inputs": {"n": 1}},
        {"id": "b", "type": "tool", "tool": "t", "inputs": {"n": 2}},
        {
            "id": "sum",
            "type": "tool",
            "tool": "t",
            "depends_on": ["a", "b"],
            "inputs": {"x": {"from": "steps.a.output#/n"}, "y": {"from": "steps.b.output#/n"}},
        },
    )

    async def handler(task: TaskRun) -> dict[str, Any]:
        task.adapter.emit("tool_call", {"name": "add", "arguments": task.inputs})
        task.adapter.emit("tool_result", {"name": "add", "result": "ok"})
        task.adapter.checkpoint({"seen": task.inputs}, "c1")
        task.usage = None
        if "n" in task.inputs:
            return {"n": task.inputs["n"] * 10}
        return {"sum": task.inputs["x"] + task.inputs["y"]}

    async with client_for(transport, tmp_path) as client:
        run = await client.submit_run(dag)
        worker = Worker(client, handler, worker_id=f"w-{transport}", concurrency=2)
        stats = await worker.run(stop_when_idle=True)
        assert stats.completed == 3
        done = await client.get_run(run.run_id)
        assert done.status == "completed"
        assert done.outputs["sum"] == {"sum": 30}
        events = await client.run_events(run.run_id, limit=1000)
    envelopes = [e.data.envelope for e in events if e.type == "task_event"]  # type: ignore[attr-defined]
    kinds = [(e.step_id, e.kind, getattr(e, "event", None)) for e in envelopes]
    for step in ("a", "b", "sum"):
        mine = [k[1:] for k in kinds if k[0] == step]
        assert mine == [
            ("start", None),
            ("emit", "tool_call"),
            ("emit", "tool_result"),
            ("checkpoint", None),
            ("complete", None),
        ]
    seqs = [e.seq for e in envelopes if e.step_id == "a"]
    assert seqs == list(range(5))
    assert sum(1 for e in events if e.type == "checkpoint_saved") == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_handler_pauses_for_input_and_gets_the_resume_value(
    transport: str, tmp_path: Path
) -> None:
    async def handler(task: TaskRun) -> Any:
        if task.context.resume is None:
            raise TaskPaused("needs a name", waiting_for=[{"ask": "name?"}])
        return {"hello": task.entry.resume.value if task.entry.resume else None}

    async with client_for(transport, tmp_path) as client:
        run = await client.submit_run(spec())
        paused = await Worker(client, handler, worker_id="w").run(stop_when_idle=True)
        assert (paused.paused, paused.failed) == (1, 0)
        assert (await client.get_run(run.run_id)).status == "paused"
        await client.resume_run(run.run_id, value="ada")
        done = await Worker(client, handler, worker_id="w").run(stop_when_idle=True)
        assert done.completed == 1
        final = await client.get_run(run.run_id)
        events = await client.run_events(run.run_id, limit=1000)
    assert final.outputs == {"a": {"hello": "ada"}}
    [pause] = [e for e in events if e.type == "task_paused"]
    assert pause.data.waiting_for == [{"ask": "name?"}]  # type: ignore[attr-defined]
    assert pause.data.reason == "needs a name"  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_handler_exception_fails_the_task_with_its_kind(
    transport: str, tmp_path: Path
) -> None:
    retrying = spec(
        {"id": "a", "type": "tool", "tool": "t", "retry": {"max_attempts": 2, "backoff_s": 0}}
    )
    calls: list[int] = []

    def handler(task: TaskRun) -> Any:  # a sync handler runs in a thread
        calls.append(task.entry.attempt)
        if task.entry.attempt == 1:
            raise TaskError("upstream flaked", kind="transient")
        raise ValueError("bad input")

    async with client_for(transport, tmp_path) as client:
        run = await client.submit_run(retrying)
        stats = await Worker(client, handler, worker_id="w").run(stop_when_idle=True)
        done = await client.get_run(run.run_id)
        events = await client.run_events(run.run_id, limit=1000)
    assert calls == [1, 2]
    assert stats.failed == 2
    assert done.status == "failed"
    failures = [e.data for e in events if e.type == "task_failed"]
    assert [str(f.kind) for f in failures] == ["transient", "agent_error"]  # type: ignore[attr-defined]
    errors = [
        e.data.envelope  # type: ignore[attr-defined]
        for e in events
        if e.type == "task_event" and e.data.envelope.kind == "error"  # type: ignore[attr-defined]
    ]
    assert [x.failure_kind for x in errors] == [
        FleetTaskFailureKind.TRANSIENT,
        FleetTaskFailureKind.AGENT_ERROR,
    ]
    assert "ValueError: bad input" in errors[1].message


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_errors_are_the_same_classes_on_every_transport(
    transport: str, tmp_path: Path
) -> None:
    async with client_for(transport, tmp_path) as client:
        with pytest.raises(NotFoundError, match="no run 'run_nope'"):
            await client.get_run("run_nope")
        with pytest.raises(ContractError) as caught:
            await client.submit_run({"name": "x", "seed": 0, "steps": []})
        assert {d.pointer for d in caught.value.details} >= {"/seed"}
        run = await client.submit_run(spec())
        await client.register_worker({"worker_id": "w"})
        [entry] = await client.lease_task("w")
        assert entry.lease is not None
        with pytest.raises(LeaseLostError, match="stale fencing token"):
            await client.heartbeat(entry.task.task_id, entry.lease.fencing_token + 1, worker_id="w")
        receipt = await client.complete_task(
            entry.task.task_id, entry.lease.fencing_token, 5, worker_id="w"
        )
        assert receipt.status == "accepted"
        page = await client.list_runs(limit=1)
        assert [r.run_id for r in page.runs] == [run.run_id]
        assert page.next_cursor is None
        artifact = await client.put_artifact(b"bytes!", media_type="text/plain")
        meta, content = await client.get_artifact(artifact.digest)
        assert (meta.size_bytes, content) == (6, b"bytes!")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_lease_lost_mid_handler_cancels_it_and_posts_no_receipt(
    transport: str, tmp_path: Path
) -> None:
    cancelled = anyio.Event()

    started = anyio.Event()

    async def handler(task: TaskRun) -> str:
        started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return "never"

    async with client_for(transport, tmp_path) as client:
        run = await client.submit_run(spec())
        worker = Worker(client, handler, worker_id="w", lease_seconds=30, heartbeat_seconds=0.2)

        async def cancel_soon() -> None:
            await started.wait()  # the task is leased and running: cancel its run
            await client.cancel_run(run.run_id, reason="test")

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_soon)
                stats = await worker.run(max_tasks=1)
        events = await client.run_events(run.run_id, limit=1000)
    assert cancelled.is_set()
    assert stats.lost == 1
    assert not [e for e in events if e.type.startswith("receipt_")]


async def test_stop_releases_running_tasks_after_the_grace_period(tmp_path: Path) -> None:
    started = anyio.Event()

    async def handler(task: TaskRun) -> str:
        started.set()
        await anyio.sleep(30)
        return "never"

    async with client_for("local", tmp_path) as client:
        run = await client.submit_run(spec())
        worker = Worker(client, handler, worker_id="w", shutdown_grace=0.2)
        async with anyio.create_task_group() as tg:

            async def stop_when_started() -> None:
                await started.wait()
                worker.stop()

            tg.start_soon(stop_when_started)
            stats = await worker.run()
        events = await client.run_events(run.run_id, limit=1000)
        again = await client.lease_task("w")
    assert stats.released == 1
    assert [e.type for e in events].count("task_released") == 1
    assert [e.task.task_id for e in again] == [f"{run.run_id}.a"]


def test_sync_client(tmp_path: Path) -> None:
    with SyncFleetClient.local(f"sqlite:///{tmp_path / 'f.db'}", artifacts=tmp_path / "a") as c:
        run = c.submit_run(spec())
        assert c.get_run(run.run_id).status == "running"
        with pytest.raises(NotFoundError):
            c.get_run("nope")


def test_worker_cli_runs_a_handler_module(tmp_path: Path) -> None:
    (tmp_path / "handlers.py").write_text(
        "def shout(task):\n    return str(task.inputs['word']).upper()\n"
    )
    env = fleet_env(tmp_path, f"sqlite:///{tmp_path / 'fleet.db'}")
    one = {"name": "cli", "seed": 1, "steps": [{"id": "a", "type": "tool", "tool": "t",
                                                  "inputs": {"word": "fleet"}}]}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(one))
    subprocess.run([FLEETFORGE, "submit", str(tmp_path / "spec.json")], env=env, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    done = subprocess.run(
        [FLEETFORGE, "worker", "handlers:shout", "--exit-when-idle", "--concurrency", "2"],
        env=env,
        cwd=tmp_path,  # the handler module is found in the current directory
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "1 completed" in done.stderr
    shown = subprocess.run([FLEETFORGE, "runs", "--json"], env=env, capture_output=True,
                           text=True, timeout=60, check=True)  # fmt: skip
    assert json.loads(shown.stdout)["runs"][0]["status"] == "completed"


def test_worker_cli_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    # the handler says when it has the task, then takes a moment: SIGTERM lands mid-task
    (tmp_path / "slow.py").write_text(
        "import sys, time\ndef handle(task):\n    print('handling', file=sys.stderr, flush=True)"
        "\n    time.sleep(0.5)\n    return 'done'\n"
    )
    env = fleet_env(tmp_path, f"sqlite:///{tmp_path / 'fleet.db'}")
    env["PYTHONPATH"] = str(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps(spec()))
    subprocess.run([FLEETFORGE, "submit", str(tmp_path / "spec.json")], env=env, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    proc = subprocess.Popen([FLEETFORGE, "worker", "slow:handle"], env=env,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stderr is not None
    seen = [proc.stderr.readline(), proc.stderr.readline()]  # signals handled from the first
    assert "waiting for tasks" in seen[0], seen
    assert seen[1].strip() == "handling", seen
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "stopping" in rest
    assert "1 completed" in rest
