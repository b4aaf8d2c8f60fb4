"""Spans, checked with the OpenTelemetry SDK's in-memory exporter, including a worker in another
process joining the submitter's trace through the store."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fleetforge.client import FleetClient
from fleetforge.fleet.trust.attest import attestation_id
from fleetforge.telemetry import configure
from fleetforge.worker import TaskRun, Worker

pytestmark = pytest.mark.anyio

SPEC = {"name": "traced", "seed": 2,
        "steps": [{"id": "a", "type": "agent", "agent": "planner"}]}  # fmt: skip


async def handler(task: TaskRun) -> str:
    task.adapter.emit("tool_call", {"name": "search", "id": "c1", "arguments": {"q": "x"}})
    task.adapter.emit("tool_result", {"name": "search", "id": "c1", "result": "found"})
    task.usage = None
    task.adapter.complete(
        "ok", {"input_tokens": 11, "output_tokens": 7, "total_tokens": 18, "model": "fake-1"}
    )
    return "ignored: the adapter already completed"


def by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in finished}


async def test_spans_of_a_run_in_one_process(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    async with FleetClient.local(f"sqlite:///{tmp_path / 'f.db'}", artifacts=tmp_path) as client:
        run = await client.submit_run(SPEC)
        await Worker(client, handler, worker_id="w").run(stop_when_idle=True)
        done = await client.get_run(run.run_id)
        events = await client.run_events(run.run_id, limit=100)
    assert done.outputs == {"a": "ok"}
    got = by_name(spans.get_finished_spans())
    assert set(got) == {
        "run traced",
        "step a",
        f"task {run.run_id}.a",
        "invoke_agent planner",
        "execute_tool search",
    }
    trace_ids = {s.context.trace_id for s in got.values()}
    assert len(trace_ids) == 1
    parent_of = {name: s.parent.span_id if s.parent else None for name, s in got.items()}
    ids = {name: s.context.span_id for name, s in got.items()}
    assert parent_of["step a"] == ids["run traced"]
    assert parent_of[f"task {run.run_id}.a"] == ids["step a"]
    assert parent_of["invoke_agent planner"] == ids[f"task {run.run_id}.a"]
    assert parent_of["execute_tool search"] == ids["invoke_agent planner"]
    agent = got["invoke_agent planner"].attributes or {}
    assert agent["gen_ai.operation.name"] == "invoke_agent"
    assert agent["gen_ai.agent.name"] == "planner"
    assert agent["gen_ai.response.model"] == "fake-1"
    assert agent["gen_ai.usage.input_tokens"] == 11
    assert agent["gen_ai.usage.output_tokens"] == 7
    assert agent["fleet.run_id"] == run.run_id
    tool = got["execute_tool search"].attributes or {}
    assert tool["gen_ai.tool.name"] == "search"
    assert tool["gen_ai.tool.call.id"] == "c1"
    # the trust attributes: the task's capability token, and the fleet's attestation of its
    # receipt (which the answer to the receipt names), on its step and task spans
    [leased] = [e for e in events if e.type == "task_leased"]
    [recorded] = [e for e in events if e.type == "receipt_recorded"]
    signed = attestation_id(recorded.data.attestation)  # type: ignore[attr-defined]
    assert signed.startswith("sha256:")
    for name in ("step a", f"task {run.run_id}.a"):
        attributes = got[name].attributes or {}
        assert attributes["trust.capability_token_id"] == leased.data.capability_id  # type: ignore[attr-defined]
        assert attributes["trust.semconv.version"] == "0.1"
        assert attributes["trust.attestation_id"] == signed
    # the tools ran before the receipt existed: their spans cannot name it
    assert "trust.attestation_id" not in (got["execute_tool search"].attributes or {})


async def test_no_attestation_id_when_the_fleet_signs_nothing(
    tmp_path: Path, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trust off: the answer carries no attestation id and the spans leave it out (never
    null); the stored receipt never carries one either way."""
    monkeypatch.setenv("FLEETFORGE_TRUST", "off")
    async with FleetClient.local(f"sqlite:///{tmp_path / 'f.db'}", artifacts=tmp_path) as client:
        run = await client.submit_run(SPEC)
        await Worker(client, handler, worker_id="w").run(stop_when_idle=True)
        events = await client.run_events(run.run_id, limit=100)
    [recorded] = [e for e in events if e.type == "receipt_recorded"]
    assert "attestation_id" not in recorded.model_dump(mode="json")["data"]["receipt"]
    for name in ("step a", f"task {run.run_id}.a"):
        attributes = by_name(spans.get_finished_spans())[name].attributes or {}
        assert "trust.capability_token_id" in attributes
        assert "trust.attestation_id" not in attributes


WORKER_SCRIPT = textwrap.dedent(
    """
    import json, sys, anyio
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from fleetforge.client import FleetClient
    from fleetforge.worker import Worker

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    def handler(task):
        task.adapter.emit("tool_call", {"name": "lookup"})
        task.adapter.emit("tool_result", {"name": "lookup", "result": 1})
        return "done"

    async def main():
        async with FleetClient.local(sys.argv[1], artifacts=sys.argv[2]) as client:
            await Worker(client, handler, worker_id="remote").run(stop_when_idle=True)

    anyio.run(main)
    print(json.dumps([
        {"name": s.name, "trace_id": s.context.trace_id,
         "parent": s.parent.span_id if s.parent else None}
        for s in exporter.get_finished_spans()
    ]))
    """
)


async def test_a_worker_in_another_process_joins_the_trace(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    async with FleetClient.local(url, artifacts=tmp_path) as client:
        run = await client.submit_run(SPEC)
    [submitted] = spans.get_finished_spans()
    done = subprocess.run(
        [sys.executable, "-c", WORKER_SCRIPT, url, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    remote = {s["name"]: s for s in json.loads(done.stdout)}
    assert set(remote) == {"step a", f"task {run.run_id}.a", "invoke_agent planner",
                           "execute_tool lookup"}  # fmt: skip
    assert {s["trace_id"] for s in remote.values()} == {submitted.context.trace_id}
    assert remote["step a"]["parent"] == submitted.context.span_id


def test_configure_is_opt_in() -> None:
    assert configure("x", environ={}) is False
    assert configure("x", environ={"OTEL_TRACES_EXPORTER": "none"}) is False
