"""AgentRunAdapter: envelopes in order and valid, misuse refused, payloads made JSON-safe, large
state to the artifact store; and the fleetforge.testing helpers users get."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import io
import json
import logging
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from fleetforge.adapter import (
    AgentRunAdapter,
    AgentRunContext,
    JsonlSink,
    MemorySink,
    QueueSink,
    failure_kind_of,
    to_jsonable,
)
from fleetforge.contracts import FleetArtifactRef, FleetTaskFailureKind, parse_envelope
from fleetforge.errors import AdapterStateError, ContractError, UsageError
from fleetforge.testing import assert_envelopes, in_memory_fleet, run_fake_worker
from fleetforge.worker import TaskError

CONTEXT = AgentRunContext(run_id="run_1", step_id="plan", task_id="run_1.plan", seed=3)


def adapter(**kw: Any) -> tuple[AgentRunAdapter, MemorySink]:
    sink = MemorySink()
    return AgentRunAdapter(CONTEXT, sink, name="test", version="1.0", **kw), sink


def test_a_full_sequence_validates() -> None:
    a, sink = adapter()
    a.start({"topic": "x"})
    a.emit("step_started", {"node": "plan"})
    a.emit("tool_call", {"name": "search", "arguments": {"q": "x"}})
    a.emit("tool_result", {"name": "search", "result": [1, 2]})
    a.checkpoint({"messages": ["hi"]}, "ckpt-1")
    a.emit("step_finished", {"node": "plan"})
    a.complete({"outline": ["a"]}, {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8})
    assert_envelopes(
        sink.envelopes,
        ["start", "emit:step_started", "emit:tool_call", "emit:tool_result", "checkpoint",
         "emit:step_finished", "complete"],
    )  # fmt: skip
    first, last = sink.envelopes[0], sink.envelopes[-1]
    assert first.adapter.name == "test"
    assert first.seed == 3
    assert last.usage.total_tokens == 8  # type: ignore[attr-defined]
    assert a.finished
    checkpoint = sink.envelopes[4]
    assert checkpoint.state == {"messages": ["hi"]}  # type: ignore[attr-defined]
    assert checkpoint.state_digest.startswith("sha256:")  # type: ignore[attr-defined]
    # the wire form parses back to the same envelopes
    for envelope in sink.envelopes:
        assert parse_envelope(json.loads(envelope.model_dump_json())) == envelope


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (["emit"], "before start"),
        (["checkpoint"], "before start"),
        (["complete"], "before start"),
        (["error"], "before start"),
        (["start", "start"], "already called"),
        (["start", "complete", "complete"], "after the attempt finished"),
        (["start", "complete", "emit"], "after the attempt finished"),
        (["start", "error", "complete"], "after the attempt finished"),
        (["start", "complete", "error"], "after the attempt finished"),
    ],
)
def test_misuse_raises_adapter_state_error(steps: list[str], message: str) -> None:
    a, sink = adapter()
    calls = {
        "start": lambda: a.start({}),
        "emit": lambda: a.emit("message", {"content": "x"}),
        "checkpoint": lambda: a.checkpoint({}, "c"),
        "complete": lambda: a.complete(1),
        "error": lambda: a.error("transient", "x"),
    }
    for step in steps[:-1]:
        calls[step]()
    before = len(sink.envelopes)
    with pytest.raises(AdapterStateError, match=message):
        calls[steps[-1]]()
    assert len(sink.envelopes) == before  # nothing half-written


def test_bad_arguments_are_usage_errors() -> None:
    a, _ = adapter()
    a.start()
    with pytest.raises(UsageError, match="unknown emit event 'nope'"):
        a.emit("nope", {})
    with pytest.raises(UsageError, match="unknown failure kind"):
        a.error("exploded", "x")
    with pytest.raises(UsageError):
        AgentRunAdapter(CONTEXT, MemorySink(), validation="loose")  # type: ignore[arg-type]


def test_strict_validation_refuses_what_the_schema_refuses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = dataclasses.replace(CONTEXT, run_id="not an id!")
    strict = AgentRunAdapter(bad, MemorySink())
    with pytest.raises(ContractError, match="agent_run"):
        strict.start()
    sink = MemorySink()
    with caplog.at_level(logging.WARNING, logger="fleetforge.adapter"):
        AgentRunAdapter(bad, sink, validation="warn").start()
    assert len(sink.envelopes) == 1
    assert "does not validate" in caplog.text
    off = MemorySink()
    AgentRunAdapter(bad, off, validation="off").start()
    assert len(off.envelopes) == 1


def test_error_envelopes_carry_the_failure_kind() -> None:
    a, sink = adapter()
    a.start()
    a.error(TimeoutError("model took too long"))
    [_, error] = sink.envelopes
    assert error.failure_kind == FleetTaskFailureKind.TIMEOUT  # type: ignore[attr-defined]
    assert error.message == "TimeoutError: model took too long"  # type: ignore[attr-defined]
    assert failure_kind_of(TaskError("x", kind="tool_error")) == FleetTaskFailureKind.TOOL_ERROR
    assert failure_kind_of(ConnectionError()) == FleetTaskFailureKind.TRANSIENT
    assert failure_kind_of(RuntimeError()) == FleetTaskFailureKind.AGENT_ERROR


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    at: datetime


class Model(BaseModel):
    name: str
    tags: set[str]


def test_payloads_are_made_json_safe() -> None:
    when = datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC)
    value = {
        "model": Model(name="m", tags={"b", "a"}),
        "point": Point(1, when),
        "color": Color.RED,
        "id": uuid.UUID(int=1),
        "path": Path("/tmp/x"),
        "bytes": b"\x00\x01",
        "set": {3, 1, 2},
        "tuple": (1, "a"),
        "error": ValueError("bad"),
        7: "int key",
        "other": object,
    }
    safe = to_jsonable(value)
    json.dumps(safe)  # plain JSON
    assert safe["model"] == {"name": "m", "tags": ["a", "b"]} or safe["model"]["name"] == "m"
    assert safe["point"] == {"x": 1, "at": "2026-11-23T01:02:03+00:00"}
    assert safe["color"] == "red"
    assert safe["id"] == "00000000-0000-0000-0000-000000000001"
    assert safe["path"] == "/tmp/x"
    assert safe["bytes"] == {"base64": "AAE="}
    assert safe["set"] == [1, 2, 3]
    assert safe["tuple"] == [1, "a"]
    assert safe["error"] == {"type": "ValueError", "message": "bad"}
    assert safe["7"] == "int key"
    assert safe["other"] == "<class 'object'>"
    a, sink = adapter()
    a.start({"when": when})
    a.emit("custom", {"point": Point(2, when)})
    assert sink.envelopes[1].payload == {"point": {"x": 2, "at": "2026-11-23T01:02:03+00:00"}}  # type: ignore[attr-defined]


def test_plain_json_data_is_copied_and_anything_else_inside_it_converted() -> None:
    # plain dicts and lists take a fast path: still copies, and what is not plain JSON at any
    # depth is converted as before (a dict subclass, a tuple, a key that is not a str)
    when = datetime(2026, 11, 23, tzinfo=UTC)
    value: dict[Any, Any] = {
        "a": [{"b": 1, "c": [None, True, 1.5, "x"]}],
        "d": OrderedDict(e=(1, when)),
        Color.RED: {2: [Color.RED]},
    }
    safe = to_jsonable(value)
    assert safe == {
        "a": [{"b": 1, "c": [None, True, 1.5, "x"]}],
        "d": {"e": [1, "2026-11-23T00:00:00+00:00"]},
        "Color.RED": {"2": ["red"]},
    }
    assert safe["a"] is not value["a"]
    assert safe["a"][0] is not value["a"][0]
    assert safe["a"][0]["c"] is not value["a"][0]["c"]
    json.dumps(safe)


def test_checkpoints_of_a_growing_state_convert_each_model_once() -> None:
    # A graph's state at every checkpoint holds every message so far: the adapter dumps each
    # model once per attempt, and every checkpoint still carries the whole state.
    dumps = 0

    class Message(BaseModel):
        text: str

        def model_dump(self, **kw: Any) -> dict[str, Any]:
            nonlocal dumps
            dumps += 1
            return super().model_dump(**kw)

    first, second = Message(text="a"), Message(text="b")
    a, sink = adapter()
    a.start()
    a.checkpoint({"messages": [first]}, "c1")
    a.checkpoint({"messages": [first, second]}, "c2")
    one, two = sink.envelopes[1:]
    assert one.state == {"messages": [{"text": "a"}]}  # type: ignore[attr-defined]
    assert two.state == {"messages": [{"text": "a"}, {"text": "b"}]}  # type: ignore[attr-defined]
    assert dumps == 2
    expected = json.dumps(two.state, sort_keys=True, separators=(",", ":")).encode()  # type: ignore[attr-defined]
    assert two.state_digest == "sha256:" + hashlib.sha256(expected).hexdigest()  # type: ignore[attr-defined]
    assert to_jsonable({"m": first}, {}) == to_jsonable({"m": first}) == {"m": {"text": "a"}}


def test_large_checkpoints_go_to_the_artifact_store() -> None:
    stored: list[bytes] = []

    def store(content: bytes, media_type: str) -> FleetArtifactRef:
        stored.append(content)
        import hashlib

        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        return FleetArtifactRef(digest=digest, media_type=media_type, size_bytes=len(content))

    sink = QueueSink(store_artifact=store)
    a = AgentRunAdapter(CONTEXT, sink, inline_limit=100)
    a.start()
    a.checkpoint({"small": 1}, "c1")
    a.checkpoint({"big": "x" * 500}, "c2")
    small, big = sink.drain()[1:]
    assert small.state == {"small": 1}  # type: ignore[attr-defined]
    assert small.artifact is None  # type: ignore[attr-defined]
    assert big.state is None  # type: ignore[attr-defined]
    assert big.artifact.digest == big.state_digest  # type: ignore[attr-defined]
    assert json.loads(stored[0]) == {"big": "x" * 500}
    assert sink.drain() == []


def test_jsonl_sink(tmp_path: Path) -> None:
    path = tmp_path / "envelopes.jsonl"
    sink = JsonlSink(path)
    a = AgentRunAdapter(CONTEXT, sink)
    a.start()
    a.complete("done")
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["start", "complete"]
    stream = io.StringIO()
    b = AgentRunAdapter(CONTEXT, JsonlSink(stream))
    b.start()
    assert json.loads(stream.getvalue())["kind"] == "start"


def test_assert_envelopes_catches_bad_sequences() -> None:
    a, sink = adapter()
    a.start()
    a.complete(1)
    with pytest.raises(AssertionError, match="expected"):
        assert_envelopes(sink.envelopes, ["start", "emit:message", "complete"])
    with pytest.raises(AssertionError, match="do not count from 0"):
        assert_envelopes(sink.envelopes[1:])
    with pytest.raises(AssertionError, match="no envelopes"):
        assert_envelopes([])


@pytest.mark.anyio
async def test_in_memory_fleet_and_fake_worker() -> None:
    spec = {
        "name": "users-test",
        "seed": 1,
        "steps": [
            {"id": "plan", "type": "agent", "agent": "planner"},
            {"id": "write", "type": "agent", "agent": "writer", "depends_on": ["plan"],
             "inputs": {"outline": {"from": "steps.plan.output#/outline"}}},
        ],
    }  # fmt: skip
    async with in_memory_fleet() as fleet:
        run = await fleet.submit_run(spec)
        stats = await run_fake_worker(fleet, {"plan": {"outline": ["a", "b"]}, "write": "draft"})
        done = await fleet.get_run(run.run_id)
    assert stats.completed == 2
    assert done.status == "completed"
    assert done.outputs["write"] == "draft"
