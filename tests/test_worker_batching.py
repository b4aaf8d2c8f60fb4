"""A Worker running several tasks sends their receipts, heartbeats and envelopes in shared
calls (one transaction each), leases the next tasks with the receipts, and a batch never mixes
up what belongs to which task."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from fleetforge.client import FleetClient
from fleetforge.operations.results import CompletedTasks, HeartbeatResults, PostedEvents
from fleetforge.worker import TaskRun, Worker

from .test_worker import TRANSPORTS, client_for, spec
from .test_worker_delivery import all_events, envelopes_of

pytestmark = pytest.mark.anyio


class RecordingClient:
    """The real client, recording how many items each batch call carried (and leased)."""

    def __init__(self, client: FleetClient) -> None:
        self._client = client
        self.calls: list[tuple[str, int]] = []
        self.leased_with_receipts = 0
        self.lease_calls = 0
        self.beat_together = anyio.Event()  # a heartbeat_many kept 4 leases at once

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def lease_task(self, *args: Any, **kw: Any) -> Any:
        self.lease_calls += 1
        return await self._client.lease_task(*args, **kw)

    async def complete_tasks(self, items: list[Any], **kw: Any) -> CompletedTasks:
        self.calls.append(("complete_tasks", len(items)))
        done: CompletedTasks = await self._client.complete_tasks(items, **kw)
        self.leased_with_receipts += len(done.leased)
        return done

    async def heartbeat_many(self, items: list[Any], **kw: Any) -> HeartbeatResults:
        self.calls.append(("heartbeat_many", len(items)))
        kept: HeartbeatResults = await self._client.heartbeat_many(items, **kw)
        if len(items) >= 4 and not kept.failures:
            self.beat_together.set()
        return kept

    async def post_events(self, items: list[Any], **kw: Any) -> PostedEvents:
        self.calls.append(("post_events", len(items)))
        posted: PostedEvents = await self._client.post_events(items, **kw)
        return posted

    def largest(self, method: str) -> int:
        return max((n for m, n in self.calls if m == method), default=0)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_four_tasks_share_their_heartbeats_receipts_and_next_leases(
    transport: str, tmp_path: Path
) -> None:
    steps = [{"id": f"s{i}", "type": "tool", "tool": "t", "inputs": {"i": i}} for i in range(8)]
    started = 0
    waves = [anyio.Event(), anyio.Event()]  # four handlers running at once, twice

    async def handler(task: TaskRun) -> int:
        nonlocal started
        started += 1
        wave = (started - 1) // 4
        if started % 4 == 0:
            waves[wave].set()
        task.adapter.emit("message", {"role": "assistant", "content": f"step {task.inputs['i']}"})
        await waves[wave].wait()
        if wave == 0:
            await client.beat_together.wait()  # one heartbeat call kept all four leases
        return int(task.inputs["i"])

    async with client_for(transport, tmp_path) as real:
        run = await real.submit_run(spec(*steps))
        client = RecordingClient(real)
        worker = Worker(client, handler, worker_id="w", concurrency=4,  # type: ignore[arg-type]
                        heartbeat_seconds=0.05, batch_window=0.5)  # fmt: skip
        with anyio.fail_after(60):
            stats = await worker.run(stop_when_idle=True)
        done = await real.get_run(run.run_id)
        events = await all_events(real, run.run_id)
    assert (stats.completed, stats.failed, stats.errors) == (8, 0, 0)
    assert done.outputs == {f"s{i}": i for i in range(8)}
    assert client.largest("heartbeat_many") == 4
    # a wave's four receipts went in one call, which leased the next wave in its transaction
    assert client.largest("complete_tasks") == 4
    assert Counter(m for m, _ in client.calls)["complete_tasks"] == 2
    assert client.leased_with_receipts == 4
    # each task's envelopes complete and in order, its receipt after them
    for i in range(8):
        task_id = f"{run.run_id}.s{i}"
        mine = [e for e in envelopes_of(events) if e.task_id == task_id]
        assert [(e.seq, e.kind) for e in mine] == [(0, "start"), (1, "emit"), (2, "complete")]
        assert mine[1].payload["content"] == f"step {i}"
        positions = [
            n
            for n, e in enumerate(events)
            if getattr(e.data, "task_id", None) == task_id
            or getattr(getattr(e.data, "envelope", None), "task_id", None) == task_id
            or getattr(getattr(e.data, "receipt", None), "task_id", None) == task_id
        ]
        kinds = [events[n].type for n in positions]
        assert kinds.index("receipt_recorded") > max(
            n for n, t in enumerate(kinds) if t == "task_event"
        )


async def test_a_lost_lease_among_several_stops_only_its_task(tmp_path: Path) -> None:
    cancelled = anyio.Event()
    both = anyio.Event()
    running: list[str] = []

    async def handler(task: TaskRun) -> str:
        running.append(task.task.run_id)
        if len(running) == 2:
            both.set()
        try:
            await cancelled.wait()  # the other task's lease is lost meanwhile
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return "kept"

    async with client_for("local", tmp_path) as client:
        gone = await client.submit_run(spec())
        kept = await client.submit_run(spec())
        worker = Worker(client, handler, worker_id="w", concurrency=2, heartbeat_seconds=0.05)

        async def cancel_one() -> None:
            await both.wait()
            await client.cancel_run(gone.run_id, reason="test")  # the heartbeats notice

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_one)
                stats = await worker.run(stop_when_idle=True)
        done = await client.get_run(kept.run_id)
        events = await all_events(client, gone.run_id)
    assert (stats.completed, stats.lost, stats.errors) == (1, 1, 0)
    assert done.outputs == {"a": "kept"}
    assert not [e for e in events if e.type.startswith("receipt_")]


async def test_an_envelope_refused_in_a_shared_call_fails_only_its_task(tmp_path: Path) -> None:
    both = anyio.Event()
    started = 0

    async def handler(task: TaskRun) -> str:
        nonlocal started
        started += 1
        if started == 2:
            both.set()
        await both.wait()  # both tasks work at once: their envelopes may share calls
        task.adapter.emit("message", {"role": "assistant", "content": "before"})
        if task.task.step_id == "bad":  # a fleet fact without its fields: refused
            task.adapter.emit("custom", {"type": "tool_called"})
        task.adapter.emit("message", {"role": "assistant", "content": "after"})
        return "done"

    async with client_for("local", tmp_path) as client:
        steps = [{"id": step, "type": "tool", "tool": "t"} for step in ("bad", "good")]
        run = await client.submit_run(spec(*steps))
        worker = Worker(client, handler, worker_id="w", concurrency=2, batch_window=0.5)
        with anyio.fail_after(30):
            stats = await worker.run(stop_when_idle=True)
        events = await all_events(client, run.run_id)
    assert (stats.completed, stats.failed, stats.errors) == (1, 1, 1)
    seqs = {
        step: [e.seq for e in envelopes_of(events) if e.step_id == step] for step in ("bad", "good")
    }
    assert seqs == {"bad": [0, 1], "good": [0, 1, 2, 3]}
    [failed] = [e.data for e in events if e.type == "task_failed"]
    assert "envelope #2 (emit:custom) could not be delivered (ContractError" in failed.message  # type: ignore[attr-defined]


async def test_a_task_starting_makes_no_delivery_round_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Live delivery keeps its cadence (every DELIVER_EVERY, here an hour): a task starting does
    # not make the courier post at once, so a short task's envelopes all ride with its receipt.
    monkeypatch.setattr("fleetforge._delivery.DELIVER_EVERY", 3600.0)

    async def handler(task: TaskRun) -> str:
        task.adapter.emit("message", {"role": "assistant", "content": "working"})
        await anyio.wait_all_tasks_blocked()  # the courier did whatever a start makes it do
        task.adapter.emit("message", {"role": "assistant", "content": "done"})
        return "ok"

    async with client_for("local", tmp_path) as real:
        run = await real.submit_run(spec())
        client = RecordingClient(real)
        worker = Worker(client, handler, worker_id="w")  # type: ignore[arg-type]
        with anyio.fail_after(30):
            stats = await worker.run(stop_when_idle=True)
        events = await all_events(real, run.run_id)
    assert (stats.completed, stats.failed, stats.errors) == (1, 0, 0)
    assert [m for m, _ in client.calls if m != "heartbeat_many"] == ["complete_tasks"]
    assert [(e.seq, e.kind) for e in envelopes_of(events)] == [
        (0, "start"), (1, "emit"), (2, "emit"), (3, "complete"),
    ]  # fmt: skip
