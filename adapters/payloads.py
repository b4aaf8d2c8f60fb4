"""One payload shape per emit event, whatever the framework.

A consumer reads a step, a message or a tool call the same way from a LangGraph, an AutoGen or a
CrewAI run: each ``emit`` envelope's payload has exactly the keys of :data:`PAYLOAD_KEYS` for its
event. What only one framework knows goes under ``framework`` (a JSON object, possibly empty).

=================  ===============================================================
event              keys
=================  ===============================================================
``step_started``   ``step``, ``kind``, ``name``, ``framework``
``step_finished``  ``step``, ``kind``, ``name``, ``error``, ``framework``
``message``        ``step``, ``role``, ``name``, ``content``, ``framework``
``tool_call``      ``step``, ``id``, ``name``, ``arguments``, ``framework``
``tool_result``    ``step``, ``id``, ``name``, ``result``, ``error``, ``framework``
``paused``         ``step``, ``waiting_for``, ``framework``
``custom``         ``step``, ``type``, ``data``, ``framework``
=================  ===============================================================

``step`` numbers the attempt's steps from 1 in the order they started (a step's start and end
carry the same number; messages and tool calls carry the step they happened in, or null);
``kind`` says what a step is in its framework (``node``, ``agent``, ``task``); ``error`` is null
unless the step or the tool failed. A :class:`Reporter` builds these payloads for an adapter;
framework adapters use it, and so can third-party ones (the conformance suite,
:mod:`fleetforge.testing.adapter_conformance`, checks the keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetforge.adapter import AgentRunAdapter

__all__ = ["PAYLOAD_KEYS", "Reporter"]

PAYLOAD_KEYS: dict[str, frozenset[str]] = {
    "step_started": frozenset({"step", "kind", "name", "framework"}),
    "step_finished": frozenset({"step", "kind", "name", "error", "framework"}),
    "message": frozenset({"step", "role", "name", "content", "framework"}),
    "tool_call": frozenset({"step", "id", "name", "arguments", "framework"}),
    "tool_result": frozenset({"step", "id", "name", "result", "error", "framework"}),
    "paused": frozenset({"step", "waiting_for", "framework"}),
    "custom": frozenset({"step", "type", "data", "framework"}),
}
"""The keys of each emit event's payload (see the module doc)."""

Framework = Mapping[str, Any] | None


class Reporter:
    """Emits one attempt's steps, messages and tool calls with the common payloads.

    ``step_kind`` is what a step is in the framework (``node``, ``agent``, ``task``). Steps are
    known by a framework key (a LangGraph task id, a CrewAI task id, an AutoGen turn): the
    reporter numbers them and remembers which one is current.
    """

    def __init__(self, adapter: AgentRunAdapter, step_kind: str) -> None:
        self.adapter = adapter
        self.step_kind = step_kind
        self.current: int | None = None
        self._steps: dict[str, tuple[int, str]] = {}

    def step_of(self, key: str | None) -> int | None:
        """The number of the step known as ``key`` (None when there is none)."""
        found = self._steps.get(key) if key is not None else None
        return found[0] if found else None

    def step_started(self, key: str, name: str, framework: Framework = None) -> int:
        number = len(self._steps) + 1
        self._steps[key] = (number, name)
        self.current = number
        fields = {"kind": self.step_kind, "name": name}
        self._emit("step_started", number, fields, framework)
        return number

    def step_finished(
        self, key: str, *, error: str | None = None, framework: Framework = None
    ) -> None:
        number, name = self._steps.get(key) or (self.step_started(key, key), key)
        if self.current == number:
            self.current = None
        fields = {"kind": self.step_kind, "name": name, "error": error}
        self._emit("step_finished", number, fields, framework)

    def message(
        self,
        role: str,
        content: Any,
        *,
        name: str | None = None,
        step: int | None = None,
        framework: Framework = None,
    ) -> None:
        fields = {"role": role, "name": name, "content": content}
        self._emit("message", self._at(step), fields, framework)

    def tool_call(
        self,
        call_id: str | None,
        name: str,
        arguments: Any,
        *,
        step: int | None = None,
        framework: Framework = None,
    ) -> None:
        fields = {"id": call_id, "name": name, "arguments": arguments}
        self._emit("tool_call", self._at(step), fields, framework)

    def tool_result(
        self,
        call_id: str | None,
        name: str,
        result: Any,
        *,
        error: str | None = None,
        step: int | None = None,
        framework: Framework = None,
    ) -> None:
        fields = {"id": call_id, "name": name, "result": result, "error": error}
        self._emit("tool_result", self._at(step), fields, framework)

    def paused(
        self, waiting_for: list[Any], *, step: int | None = None, framework: Framework = None
    ) -> None:
        self._emit("paused", self._at(step), {"waiting_for": waiting_for}, framework)

    def custom(
        self, kind: str, data: Any = None, *, step: int | None = None, framework: Framework = None
    ) -> None:
        self._emit("custom", self._at(step), {"type": kind, "data": data}, framework)

    def _at(self, step: int | None) -> int | None:
        return step if step is not None else self.current

    def _emit(
        self, event: str, step: int | None, fields: dict[str, Any], framework: Framework
    ) -> None:
        self.adapter.emit(event, {"step": step, **fields, "framework": dict(framework or {})})
