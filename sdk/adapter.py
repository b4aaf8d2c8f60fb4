"""``AgentRunAdapter``: how agent code reports one task attempt as agent-run envelopes.

An adapter is bound to one :class:`AgentRunContext` (run, step, task, attempt, fencing token,
seed, labels, trace context). It must be used in order::

    adapter.start(inputs)
    adapter.emit("message", {...})            # any number of emits and checkpoints
    adapter.checkpoint(state, "ckpt-1")
    adapter.complete(output, usage)           # or adapter.error(exc) — exactly once

Each call builds an :class:`~fleetforge.contracts.AgentRunEnvelope` (sequence number from 0,
timestamp, adapter name and version), validates it (``validation="strict"`` checks it against
the envelope models ``agent_run.json`` is generated from, and the first envelope of each kind
in the process against the schema file too; ``"warn"`` logs a warning instead; ``"off"``
skips) and hands it to a :class:`EnvelopeSink`: the fleet (the Worker posts them as
``task_event``), a list in memory, or a JSON-lines file. Calls out of order raise
:class:`~fleetforge.errors.AdapterStateError`.

Payloads are made JSON-safe by :func:`to_jsonable`: pydantic models, dataclasses, datetimes,
dates, enums, UUIDs, paths, sets and bytes are converted; anything else becomes its ``repr``.
Checkpoint state larger than ``inline_limit`` bytes (64 KiB) is stored in the artifact store
when the sink can store artifacts, and the envelope carries its reference.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import json
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from itertools import islice
from pathlib import Path, PurePath
from typing import IO, Any, Literal, Protocol, runtime_checkable

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from pydantic import BaseModel, ValidationError

from fleetforge import __version__
from fleetforge.contracts import (
    FleetArtifactRef,
    FleetInboxEntry,
    FleetResume,
    FleetTaskFailureKind,
    FleetUsage,
    TraceContext,
)
from fleetforge.contracts._base import FLEET_PROTOCOL_VERSION, utcnow
from fleetforge.contracts.envelope import (
    AdapterInfo,
    AgentRunEnvelope,
    CheckpointEnvelope,
    CompleteEnvelope,
    EmitEnvelope,
    EmitEvent,
    ErrorEnvelope,
    StartEnvelope,
)
from fleetforge.errors import AdapterStateError, ContractError, UsageError
from fleetforge.redaction import get_logger
from fleetforge.schemas import stream_validator
from fleetforge.telemetry import context_from, tracer
from fleetforge.validation import pydantic_details

__all__ = [
    "AgentRunAdapter",
    "AgentRunContext",
    "EnvelopeSink",
    "JsonlSink",
    "MemorySink",
    "QueueSink",
    "ValidationMode",
    "envelope_kinds",
    "failure_kind_of",
    "to_jsonable",
]

log = get_logger("fleetforge.adapter")

# Envelope kinds whose wire form this process has checked against agent_run.json (see _send).
_SCHEMA_CHECKED: set[str] = set()

ValidationMode = Literal["strict", "warn", "off"]
INLINE_LIMIT = 64 * 1024


# ── context ─────────────────────────────────────────────────────────────────────────────────


@dataclasses.dataclass(frozen=True)
class AgentRunContext:
    """Who an adapter reports for: one attempt of one task."""

    run_id: str
    step_id: str
    task_id: str
    attempt: int = 1
    fencing_token: int = 1
    seed: int = 1
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    trace: TraceContext = dataclasses.field(default_factory=TraceContext)
    inputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    agent: str | None = None
    model: str | None = None
    resume: FleetResume | None = None  # set when the task paused for input and was resumed

    @classmethod
    def from_entry(cls, entry: FleetInboxEntry) -> AgentRunContext:
        """The context of a leased inbox entry."""
        if entry.lease is None:
            raise UsageError(f"inbox entry {entry.entry_id} is not leased")
        task = entry.task
        return cls(
            run_id=task.run_id,
            step_id=task.step_id,
            task_id=task.task_id,
            attempt=entry.attempt,
            fencing_token=entry.lease.fencing_token,
            seed=task.seed,
            labels=dict(task.labels),
            trace=task.trace,
            inputs=dict(task.inputs),
            agent=task.agent or task.tool or task.step_id,
            model=task.model,
            resume=entry.resume,
        )


# ── sinks ───────────────────────────────────────────────────────────────────────────────────


@runtime_checkable
class EnvelopeSink(Protocol):
    """Where envelopes go. ``write`` is called in order, from the adapter's thread."""

    def write(self, envelope: AgentRunEnvelope) -> None: ...


class MemorySink:
    """Keeps envelopes in a list (tests, and adapters run outside a fleet)."""

    def __init__(self) -> None:
        self.envelopes: list[AgentRunEnvelope] = []

    def write(self, envelope: AgentRunEnvelope) -> None:
        self.envelopes.append(envelope)

    @property
    def kinds(self) -> list[str]:
        """``kind`` of each envelope, ``emit`` ones as ``emit:EVENT``."""
        return envelope_kinds(self.envelopes)


def envelope_kinds(envelopes: Sequence[AgentRunEnvelope]) -> list[str]:
    """Each envelope's kind, emits as ``emit:EVENT`` (e.g. ``emit:tool_call``)."""
    return [f"emit:{e.event}" if isinstance(e, EmitEnvelope) else e.kind for e in envelopes]


class JsonlSink:
    """Appends each envelope as one JSON line to a file (or an open text stream)."""

    def __init__(self, target: str | Path | IO[str]) -> None:
        if isinstance(target, str | Path):
            self._own = True
            self._stream: IO[str] = open(target, "a", encoding="utf-8")  # noqa: SIM115 - close()
        else:
            self._own = False
            self._stream = target
        self._lock = threading.Lock()

    def write(self, envelope: AgentRunEnvelope) -> None:
        line = envelope.model_dump_json(exclude_none=True)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._own:
            self._stream.close()


class QueueSink:
    """Collects envelopes for someone else to deliver (the Worker posts them to the fleet).

    Thread-safe: the adapter may run in a worker thread while the deliverer reads the queue.
    A deliverer that must not lose an envelope reads the oldest with :meth:`peek` and removes
    it with :meth:`ack` only once it is delivered; :meth:`drain` takes everything at once.
    ``store_artifact`` (optional) stores large checkpoint state in the artifact store.
    """

    def __init__(
        self, store_artifact: Callable[[bytes, str], FleetArtifactRef] | None = None
    ) -> None:
        self._items: deque[AgentRunEnvelope] = deque()
        self._lock = threading.Lock()
        self.written = 0
        self.store_artifact = store_artifact

    def write(self, envelope: AgentRunEnvelope) -> None:
        with self._lock:
            self._items.append(envelope)
            self.written += 1

    def peek(self) -> AgentRunEnvelope | None:
        """The oldest envelope not yet taken (None when the queue is empty)."""
        with self._lock:
            return self._items[0] if self._items else None

    def peek_many(self, limit: int) -> list[AgentRunEnvelope]:
        """The oldest ``limit`` envelopes not yet taken, oldest first (they stay queued)."""
        with self._lock:
            return list(islice(self._items, limit))

    def ack(self, count: int = 1) -> None:
        """Remove the oldest ``count`` envelopes (the ones :meth:`peek` or :meth:`peek_many`
        gave): they were delivered."""
        with self._lock:
            for _ in range(count):
                self._items.popleft()

    def drain(self) -> list[AgentRunEnvelope]:
        """Everything written since the last drain, in order."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


# ── JSON-safe payloads ──────────────────────────────────────────────────────────────────────


_PLAIN = frozenset({str, int, float, bool, type(None)})
"""Types :func:`to_jsonable` returns as they are (exactly these: a subclass, e.g. a str enum,
takes the general path)."""


def to_jsonable(value: Any, dumped: dict[int, tuple[BaseModel, Any]] | None = None) -> Any:
    """``value`` as plain JSON data (dict, list, str, int, float, bool, None).

    ``dumped`` (optional) remembers each pydantic model's dump by identity, for callers that
    convert the same objects again and again (a graph's state at every checkpoint holds every
    message so far). The dump is shared, so it must not be changed afterwards.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:  # the common case first, with exact type tests (ABC checks are slow)
        return {
            k if type(k) is str else str(k): v if type(v) in _PLAIN else to_jsonable(v, dumped)
            for k, v in value.items()
        }
    if kind is list:
        return [v if type(v) in _PLAIN else to_jsonable(v, dumped) for v in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, dumped) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v, dumped) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((to_jsonable(v, dumped) for v in value), key=repr)
    if isinstance(value, BaseModel):
        if dumped is None:
            return value.model_dump(mode="json")
        seen = dumped.get(id(value))  # the entry keeps the model alive: its id stays its own
        if seen is None:
            seen = dumped[id(value)] = (value, value.model_dump(mode="json"))
        return seen[1]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": str(value)}
    return repr(value)


def _wire(value: Any) -> Any:
    """A field of an envelope in its JSON form (as ``model_dump(mode="json")`` gives it)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def failure_kind_of(exc: BaseException) -> FleetTaskFailureKind:
    """The failure kind an exception reports (``exc.kind`` when it carries one)."""
    kind = getattr(exc, "kind", None)
    if kind is not None:
        try:
            return FleetTaskFailureKind(kind)
        except ValueError:
            pass
    if isinstance(exc, TimeoutError):
        return FleetTaskFailureKind.TIMEOUT
    if isinstance(exc, ConnectionError):
        return FleetTaskFailureKind.TRANSIENT
    if isinstance(exc, ContractError):
        return FleetTaskFailureKind.INVALID_OUTPUT
    return FleetTaskFailureKind.AGENT_ERROR


# ── the adapter ─────────────────────────────────────────────────────────────────────────────


class AgentRunAdapter:
    """Builds, validates and sinks the envelopes of one task attempt (see the module doc)."""

    def __init__(
        self,
        context: AgentRunContext,
        sink: EnvelopeSink,
        *,
        name: str = "fleetforge",
        version: str = __version__,
        validation: ValidationMode = "strict",
        inline_limit: int = INLINE_LIMIT,
    ) -> None:
        if validation not in ("strict", "warn", "off"):
            raise UsageError(f"validation must be strict, warn or off; got {validation!r}")
        self.context = context
        self.sink = sink
        self._info = AdapterInfo(name=name, version=version)
        self.validation: ValidationMode = validation
        self.inline_limit = inline_limit
        self._seq = 0
        self._state: Literal["new", "started", "done"] = "new"
        self._lock = threading.Lock()
        self.output: Any = None
        self.usage: FleetUsage | None = None
        self.failure: tuple[FleetTaskFailureKind, str] | None = None
        self._agent_span: Span | None = None
        self._tool_spans: dict[str, Span] = {}
        self._checker = stream_validator("agent_run")
        self._dumped: dict[int, tuple[BaseModel, Any]] = {}
        self._wire_base = {
            "protocol_version": FLEET_PROTOCOL_VERSION,
            "run_id": context.run_id,
            "step_id": context.step_id,
            "task_id": context.task_id,
            "adapter": self._info.model_dump(mode="json"),
            "seed": context.seed,
            "trace": context.trace.model_dump(mode="json", exclude_none=True),
        }

    @property
    def info(self) -> AdapterInfo:
        """The adapter named in every envelope (settable until ``start``)."""
        return self._info

    @info.setter
    def info(self, value: AdapterInfo) -> None:
        if self.started:
            raise AdapterStateError("the adapter's name cannot change after start()")
        self._info = value
        self._wire_base["adapter"] = value.model_dump(mode="json")

    # spans (fleetforge.telemetry)

    def _attributes(self) -> dict[str, str | int]:
        c = self.context
        return {
            "fleet.run_id": c.run_id,
            "fleet.step_id": c.step_id,
            "fleet.task_id": c.task_id,
            "fleet.attempt": c.attempt,
        }

    def _open_agent_span(self) -> None:
        name = self.context.agent or self.context.step_id
        parent = trace.get_current_span().get_span_context()
        ctx = None if parent.is_valid else context_from(self.context.trace)
        attributes: dict[str, str | int] = {
            **self._attributes(),
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": name,
            "fleet.adapter": self.info.name,
        }
        if self.context.model:
            attributes["gen_ai.request.model"] = self.context.model
        self._agent_span = tracer.start_span(
            f"invoke_agent {name}", context=ctx, kind=SpanKind.INTERNAL, attributes=attributes
        )

    def _tool_span(self, event: EmitEvent, payload: Mapping[str, Any]) -> None:
        if self._agent_span is None:
            return
        name = str(payload.get("name") or payload.get("tool") or "tool")
        call = str(payload.get("id") or payload.get("call_id") or name)
        if event is EmitEvent.TOOL_CALL:
            self._tool_spans[call] = tracer.start_span(
                f"execute_tool {name}",
                context=trace.set_span_in_context(self._agent_span),
                kind=SpanKind.INTERNAL,
                attributes={
                    **self._attributes(),
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": name,
                    "gen_ai.tool.call.id": call,
                },
            )
        elif event is EmitEvent.TOOL_RESULT:
            span = self._tool_spans.pop(call, None)
            if span is None and self._tool_spans:
                span = self._tool_spans.pop(next(reversed(self._tool_spans)))
            if span is not None:
                if payload.get("error") or payload.get("is_error"):
                    span.set_status(Status(StatusCode.ERROR, str(payload.get("error") or "")))
                span.end()

    def _close_spans(self, failure: str | None) -> None:
        for open_tool in self._tool_spans.values():
            open_tool.end()
        self._tool_spans.clear()
        agent, self._agent_span = self._agent_span, None
        if agent is None:
            return
        if self.usage is not None:
            agent.set_attribute("gen_ai.usage.input_tokens", self.usage.input_tokens)
            agent.set_attribute("gen_ai.usage.output_tokens", self.usage.output_tokens)
            if self.usage.model:
                agent.set_attribute("gen_ai.response.model", self.usage.model)
        if failure is not None:
            agent.set_status(Status(StatusCode.ERROR, failure))
        agent.end()

    # state

    @property
    def started(self) -> bool:
        return self._state != "new"

    @property
    def finished(self) -> bool:
        return self._state == "done"

    def _common(self) -> dict[str, Any]:
        c = self.context
        return {
            "run_id": c.run_id,
            "step_id": c.step_id,
            "task_id": c.task_id,
            "adapter": self.info,
            "at": utcnow(),
            "seed": c.seed,
            "trace": c.trace,
        }

    def _send(self, cls: type[AgentRunEnvelope], fields: dict[str, Any]) -> AgentRunEnvelope:
        data = {**self._common(), "seq": self._seq, **fields}
        kind: str = cls.model_fields["kind"].default
        if self.validation != "off" and kind not in _SCHEMA_CHECKED:
            # The envelope models are what agent_run.json is generated from (tests/
            # test_schemas.py holds the file to them), so validating the model below checks
            # every envelope against the contract. The first envelope of each kind in this
            # process is also checked in its wire form against the schema file itself, with
            # jsonschema: the two cannot have drifted apart unnoticed.
            wire = {**self._wire_base, "kind": kind, "seq": self._seq, "at": data["at"].isoformat()}
            for key, value in fields.items():
                if value is not None or key == "output":  # a null output is an output
                    wire[key] = _wire(value)
            try:
                self._checker.validate(wire)
            except ContractError as exc:
                if self.validation == "strict":
                    raise
                log.warning("envelope #%d does not validate against agent_run: %s", self._seq, exc)
            else:
                _SCHEMA_CHECKED.add(kind)
        try:
            envelope = cls.model_validate(data)  # faster than model_construct, and checked
        except ValidationError as exc:
            error = ContractError("invalid agent_run envelope", details=pydantic_details(exc))
            if self.validation == "strict":
                raise error from None
            if self.validation == "warn":
                log.warning(
                    "envelope #%d does not validate against agent_run: %s", self._seq, error
                )
            envelope = cls.model_construct(**data)
        self.sink.write(envelope)
        self._seq += 1
        return envelope

    def _require(self, wanted: str, action: str) -> None:
        if self._state == wanted:
            return
        if self._state == "new":
            raise AdapterStateError(f"{action} before start(): call start(inputs) first")
        if self._state == "done":
            raise AdapterStateError(
                f"{action} after the attempt finished (complete() or error() was called)"
            )
        raise AdapterStateError(f"{action}: start() was already called")

    # the five envelopes

    def start(self, inputs: Mapping[str, Any] | None = None) -> AgentRunEnvelope:
        """The adapter began the task (``inputs`` default to the task's)."""
        with self._lock:
            self._require("new", "start()")
            given = self.context.inputs if inputs is None else inputs
            envelope = self._send(StartEnvelope, {"inputs": to_jsonable(dict(given))})
            self._state = "started"
            self._open_agent_span()
            return envelope

    def emit(
        self,
        event: EmitEvent | str,
        payload: Mapping[str, Any] | None = None,
        *,
        usage: FleetUsage | Mapping[str, Any] | None = None,
    ) -> AgentRunEnvelope:
        """Something happened: ``step_started``, ``step_finished``, ``message``, ``tool_call``,
        ``tool_result``, ``paused`` or ``custom``. ``usage``: what the attempt has used so far
        (cumulative), which the fleet counts against the run's budget as it arrives."""
        with self._lock:
            self._require("started", f"emit({event!r})")
            try:
                kind = EmitEvent(event)
            except ValueError:
                known = ", ".join(e.value for e in EmitEvent)
                raise UsageError(f"unknown emit event {event!r}; use one of {known}") from None
            body = to_jsonable(dict(payload or {}))
            fields: dict[str, Any] = {"event": kind, "payload": body}
            if usage is not None:
                fields["usage"] = (
                    usage if isinstance(usage, FleetUsage) else FleetUsage.model_validate(usage)
                )
            envelope = self._send(EmitEnvelope, fields)
            self._tool_span(kind, body)
            return envelope

    def checkpoint(self, state: Any, checkpoint_id: str) -> AgentRunEnvelope:
        """The agent saved ``state`` as ``checkpoint_id`` (large state goes to the CAS)."""
        with self._lock:
            self._require("started", "checkpoint()")
            data = to_jsonable(state, self._dumped)
            raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            fields: dict[str, Any] = {"checkpoint_id": checkpoint_id, "state_digest": digest}
            store = getattr(self.sink, "store_artifact", None)
            if len(raw) > self.inline_limit and store is not None:
                try:
                    fields["artifact"] = store(raw, "application/json")
                except RuntimeError:  # no artifact store reachable from this thread
                    log.debug("checkpoint %s kept inline", checkpoint_id)
            if "artifact" in fields:
                pass
            elif isinstance(data, dict):
                fields["state"] = data
            else:
                fields["state"] = {"value": data}
            return self._send(CheckpointEnvelope, fields)

    def complete(
        self, output: Any = None, usage: FleetUsage | Mapping[str, Any] | None = None
    ) -> AgentRunEnvelope:
        """The agent finished with ``output`` (any JSON value) and ``usage``."""
        with self._lock:
            self._require("started", "complete()")
            used = (
                usage if isinstance(usage, FleetUsage) else FleetUsage.model_validate(usage or {})
            )
            self.output, self.usage = to_jsonable(output), used
            envelope = self._send(CompleteEnvelope, {"output": self.output, "usage": used})
            self._state = "done"
            self._close_spans(None)
            return envelope

    def error(
        self,
        exc: BaseException | FleetTaskFailureKind | str,
        message: str | None = None,
        *,
        retryable: bool | None = None,
    ) -> AgentRunEnvelope:
        """The agent failed: pass the exception, or a failure kind and a message."""
        with self._lock:
            self._require("started", "error()")
            while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]  # report what was raised, not the task group around it
            if isinstance(exc, BaseException):
                kind = failure_kind_of(exc)
                text = message or f"{type(exc).__name__}: {exc}"
            else:
                try:
                    kind = FleetTaskFailureKind(exc)
                except ValueError:
                    raise UsageError(f"unknown failure kind {exc!r}") from None
                text = message or str(kind)
            self.failure = (kind, text)
            fields = {"failure_kind": kind, "message": text, "retryable": retryable}
            envelope = self._send(ErrorEnvelope, fields)
            self._state = "done"
            self._close_spans(f"{kind}: {text}")
            return envelope
