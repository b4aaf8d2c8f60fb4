"""The Worker delivers every envelope, in order, before the receipt — or fails the task loudly —
and no handler outcome and no refusal by the fleet stops it."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from fleetforge.client import FleetClient
from fleetforge.contracts import RunEvent
from fleetforge.errors import ConflictError
from fleetforge.worker import TaskRun, Worker

from .test_mcp_transports import FLEETFORGE, fleet_env
from .test_worker import TRANSPORTS, client_for, spec

pytestmark = pytest.mark.anyio


async def all_events(client: FleetClient, run_id: str) -> list[RunEvent]:
    events: list[RunEvent] = []
    while True:
        page = await client.run_events(run_id, after=events[-1].seq if events else 0, limit=500)
        if not page:
            return events
        events.extend(page)


def envelopes_of(events: list[RunEvent]) -> list[Any]:
    return [e.data.envelope for e in events if e.type == "task_event"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_thousand_envelopes_arrive_in_order_and_none_is_a_null_output(
    transport: str, tmp_path: Path
) -> None:
    async def handler(task: TaskRun) -> None:  # returns None, a natural no-op: a null output
        for n in range(998):  # with start and complete: 1,000 envelopes
            task.adapter.emit("message", {"role": "assistant", "content": f"part {n}"})
            if n % 100 == 99:  # let live delivery get going, and be busy when the handler ends
                await anyio.sleep(0.03)

    async with client_for(transport, tmp_path) as client:
        run = await client.submit_run(spec())
        stats = await Worker(client, handler, worker_id="w").run(stop_when_idle=True)
        done = await client.get_run(run.run_id)
        events = await all_events(client, run.run_id)
    assert (stats.completed, stats.failed, stats.errors) == (1, 0, 0)
    assert done.status == "completed"
    assert done.outputs == {"a": None}
    envelopes = envelopes_of(events)
    assert [e.seq for e in envelopes] == list(range(1000))
    assert (envelopes[0].kind, envelopes[-1].kind) == ("start", "complete")
    assert envelopes[-1].output is None
    # the receipt comes after the last envelope
    types = [e.type for e in events]
    assert types.index("receipt_recorded") > max(
        i for i, t in enumerate(types) if t == "task_event"
    )


class BreakingClient:
    """A client whose connection breaks on the Nth post_event of a task (and, optionally, whose
    complete_task is refused); everything else goes to the real client."""

    def __init__(self, client: FleetClient, *, break_at: int | None = None,
                 refuse_complete: BaseException | None = None) -> None:  # fmt: skip
        self._client = client
        self._posts: dict[str, int] = {}
        self.break_at = break_at
        self.refuse_complete = refuse_complete

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def post_event(self, task_id: str, token: int, envelope: Any, **kw: Any) -> int:
        n = self._posts[task_id] = self._posts.get(task_id, 0) + 1
        if task_id.endswith(".a") and n == self.break_at:
            raise anyio.BrokenResourceError("the connection to the fleet broke")
        return await self._client.post_event(task_id, token, envelope, **kw)

    async def complete_task(self, task_id: str, token: int, output: Any, **kw: Any) -> Any:
        if task_id.endswith(".a") and self.refuse_complete is not None:
            raise self.refuse_complete
        return await self._client.complete_task(task_id, token, output, **kw)


B = spec({"id": "b", "type": "tool", "tool": "t"})  # a second run the worker goes on to


async def test_an_envelope_that_cannot_be_delivered_fails_the_task_not_a_receipt_over_a_hole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(task: TaskRun) -> str:
        for n in range(10):
            task.adapter.emit("message", {"role": "assistant", "content": str(n)})
        return "done"

    async with client_for("local", tmp_path) as real:
        run = await real.submit_run(spec())
        other = await real.submit_run(B)
        client = BreakingClient(real, break_at=5)
        with caplog.at_level(logging.ERROR, logger="fleetforge.worker"):
            stats = await Worker(client, handler, worker_id="w").run(stop_when_idle=True)  # type: ignore[arg-type]
        events = await all_events(real, run.run_id)
        assert (await real.get_run(other.run_id)).status == "completed"
    assert (stats.completed, stats.failed, stats.errors) == (1, 1, 1)  # it went on
    a = [e for e in envelopes_of(events) if e.step_id == "a"]
    assert [e.seq for e in a] == [0, 1, 2, 3]  # what was recorded has no hole
    assert not [e for e in events if e.type.startswith("receipt_")]
    [failed] = [e.data for e in events if e.type == "task_failed"]
    message = failed.message  # type: ignore[attr-defined]
    assert "envelope #4 (emit:message) could not be delivered" in message
    assert "BrokenResourceError" in message
    assert "4 of 12 envelopes were recorded" in message
    assert str(failed.kind) == "transient"  # type: ignore[attr-defined]
    assert f"{run.run_id}.a" in caplog.text
    assert "could not be delivered" in caplog.text


async def test_an_envelope_the_fleet_refuses_fails_the_task(tmp_path: Path) -> None:
    async def handler(task: TaskRun) -> str:
        task.adapter.emit("message", {"role": "assistant", "content": "before"})
        # a custom emit typed tool_called is a fleet fact: this one lacks its fields
        task.adapter.emit("custom", {"type": "tool_called"})
        task.adapter.emit("message", {"role": "assistant", "content": "after"})
        return "done"

    async with client_for("local", tmp_path) as client:
        run = await client.submit_run(spec())
        stats = await Worker(client, handler, worker_id="w").run(stop_when_idle=True)
        events = await all_events(client, run.run_id)
    assert (stats.completed, stats.failed, stats.errors) == (0, 1, 1)
    assert [e.seq for e in envelopes_of(events)] == [0, 1]
    [failed] = [e.data for e in events if e.type == "task_failed"]
    assert "envelope #2 (emit:custom) could not be delivered (ContractError" in failed.message  # type: ignore[attr-defined]
    assert str(failed.kind) == "invalid_output"  # type: ignore[attr-defined]
    assert not [e for e in events if e.type.startswith("receipt_")]


async def test_a_refused_receipt_is_logged_counted_and_the_worker_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    squatted = ConflictError("receipt id rcp_1 is already taken by another task")
    async with client_for("local", tmp_path) as real:
        run = await real.submit_run(spec())
        other = await real.submit_run(B)
        client = BreakingClient(real, refuse_complete=squatted)
        with caplog.at_level(logging.WARNING, logger="fleetforge.worker"):
            stats = await Worker(client, lambda task: "out", worker_id="w").run(  # type: ignore[arg-type]
                stop_when_idle=True
            )
        done = await real.get_run(other.run_id)
        events = await all_events(real, run.run_id)
    assert (stats.completed, stats.failed, stats.errors) == (1, 1, 1)
    assert done.outputs == {"b": "out"}
    [failed] = [e.data for e in events if e.type == "task_failed"]
    assert failed.message == f"the result was refused: ConflictError: {squatted}"  # type: ignore[attr-defined]
    [line] = [r for r in caplog.records if "refused" in r.getMessage()]
    assert f"{run.run_id}.a" in line.getMessage()
    assert "ConflictError: receipt id rcp_1 is already taken" in line.getMessage()


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (None, None),
        ({1, 2}, [1, 2]),  # made JSON-safe
        (object, repr(object)),
    ],
)
async def test_whatever_a_handler_returns_the_task_completes(
    tmp_path: Path, result: Any, expected: Any
) -> None:
    async with client_for("local", tmp_path) as client:
        run = await client.submit_run(spec())
        stats = await Worker(client, lambda task: result, worker_id="w").run(stop_when_idle=True)
        done = await client.get_run(run.run_id)
    assert (stats.completed, stats.errors) == (1, 0)
    assert done.outputs == {"a": expected}


STUCK = {
    # a sync handler that never looks at task.cancelled (run in a thread)
    "sync": "import time\ndef handle(task):\n    open('started', 'w').close()\n"
    "    time.sleep(3600)\n",
    # an async handler waiting on a thread it cannot abandon (what a framework's blocking call
    # wrapped in to_thread looks like): cancellation waits for the thread
    "async": "import time, anyio.to_thread\nasync def handle(task):\n"
    "    open('started', 'w').close()\n"
    "    await anyio.to_thread.run_sync(time.sleep, 3600)\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(STUCK))
def test_sigterm_releases_a_stuck_handler_and_exits_in_time(kind: str, tmp_path: Path) -> None:
    grace = 1.0
    (tmp_path / "stuck.py").write_text(STUCK[kind])
    env = fleet_env(tmp_path, f"sqlite:///{tmp_path / 'fleet.db'}")
    env["PYTHONPATH"] = str(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps(spec()))
    subprocess.run([FLEETFORGE, "submit", str(tmp_path / "spec.json")], env=env, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    proc = subprocess.Popen([FLEETFORGE, "worker", "stuck:handle", "--shutdown-grace",
                             str(grace)], env=env, cwd=tmp_path, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():  # the handler is running: it has the lease
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the handler never started"
            time.sleep(0.05)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=grace + 30)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took <= grace + 5, f"exited {took:.1f}s after SIGTERM\n{stderr}"
    assert "1 released" in stderr or "its task was released" in stderr, stderr
    shown = subprocess.run([FLEETFORGE, "events", "--json"], env=env, capture_output=True,
                           text=True, timeout=60, check=True)  # fmt: skip
    assert '"task_released"' in shown.stdout
