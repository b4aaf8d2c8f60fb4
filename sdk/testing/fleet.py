"""An in-memory fleet, envelope assertions and a fake worker, for users' own tests.

::

    from fleetforge.testing import assert_envelopes, in_memory_fleet, run_fake_worker

    async def test_my_pipeline():
        async with in_memory_fleet() as fleet:                 # a FleetClient, SQLite in memory
            run = await fleet.submit_run(my_spec)
            await run_fake_worker(fleet, {"plan": {"outline": ["a"]}, "write": "draft"})
            assert (await fleet.get_run(run.run_id)).status == "completed"

    def test_my_adapter():
        sink = MemorySink()
        ...                                                      # drive an AgentRunAdapter
        assert_envelopes(sink.envelopes, ["start", "emit:tool_call", "emit:tool_result",
                                          "complete"])
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fleetforge.adapter import envelope_kinds
from fleetforge.contracts.envelope import AgentRunEnvelope

__all__ = ["assert_envelopes", "envelope_kinds", "in_memory_fleet", "run_fake_worker"]


def assert_envelopes(
    envelopes: Sequence[AgentRunEnvelope], expected: Sequence[str] | None = None
) -> None:
    """Check a task attempt's envelopes: each validates against ``agent_run.json``, sequence
    numbers count from 0, ids agree, ``start`` comes first and ``complete``/``error`` last (and
    only there), and — when given — the kinds are exactly ``expected``."""
    assert envelopes, "no envelopes"
    for envelope in envelopes:
        envelope.validate()
    kinds = envelope_kinds(envelopes)
    assert [e.seq for e in envelopes] == list(range(len(envelopes))), (
        f"sequence numbers {[e.seq for e in envelopes]} do not count from 0 by one"
    )
    ids = {(e.run_id, e.step_id, e.task_id) for e in envelopes}
    assert len(ids) == 1, f"envelopes of several tasks: {sorted(ids)}"
    assert kinds[0] == "start", f"first envelope is {kinds[0]}, not start"
    finals = [i for i, k in enumerate(kinds) if k in ("complete", "error")]
    assert finals in ([], [len(kinds) - 1]), f"complete/error must end the sequence: {kinds}"
    if expected is not None:
        assert kinds == list(expected), f"envelopes {kinds} != expected {list(expected)}"


@asynccontextmanager
async def in_memory_fleet(**service_options: Any) -> AsyncIterator[Any]:
    """A :class:`~fleetforge.client.FleetClient` over an in-memory SQLite store and a
    temporary artifact directory, closed afterwards."""
    from fleetforge.client import FleetClient

    with tempfile.TemporaryDirectory(prefix="fleetforge-test-") as tmp:
        client = FleetClient.local("sqlite://", artifacts=Path(tmp), **service_options)
        async with client:
            yield client


async def run_fake_worker(
    fleet: Any,
    outputs: Mapping[str, Any] | Callable[[Any], Any],
    *,
    worker_id: str = "fake-worker",
    capabilities: Mapping[str, Any] | None = None,
) -> Any:
    """Work every leasable task until none is left: the output of a task is
    ``outputs[step_id]`` (or ``outputs(task_run)`` when it is a function). Returns the
    Worker's stats. A step missing from the mapping fails its task (``agent_error``)."""
    from fleetforge.worker import TaskError, TaskRun, Worker

    def handler(task: TaskRun) -> Any:
        if callable(outputs):
            return outputs(task)
        if task.task.step_id not in outputs:
            raise TaskError(f"the fake worker has no output for step {task.task.step_id!r}")
        return outputs[task.task.step_id]

    caps = {"trust_level": "privileged", "tools": ["*"], **(capabilities or {})}
    worker = Worker(fleet, handler, worker_id=worker_id, capabilities=caps)
    return await worker.run(stop_when_idle=True)
