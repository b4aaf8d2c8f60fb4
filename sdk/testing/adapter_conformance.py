"""The conformance suite every framework adapter passes (and third-party adapters can reuse).

One scenario, built in each framework: two steps, ``research`` then ``write``. ``research``
calls the tool ``search`` once with ``{"q": TOPIC}`` (it answers ``results for TOPIC``) and
``write`` answers ``OUTPUT``. Whatever the framework, the envelope sequence must have the same
shape once messages, custom events and checkpoints are set aside::

    start, step_started, tool_call, tool_result, step_finished,
           step_started, step_finished, complete

with at least one checkpoint before ``complete``, the tool call and its result paired by name
and id, every envelope valid (:func:`~fleetforge.testing.assert_envelopes`), and every emit's
payload with exactly the keys :data:`fleetforge.adapters.payloads.PAYLOAD_KEYS` documents for
its event — so a consumer reads a step, a message or a tool call the same way whatever the
framework (:func:`payload_keys` gives a run's key sets, to compare runs). The error path: a step
that raises ends the sequence with ``error`` carrying a failure kind.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetforge.adapter import envelope_kinds
from fleetforge.adapters.payloads import PAYLOAD_KEYS
from fleetforge.contracts.envelope import AgentRunEnvelope, EmitEnvelope, ErrorEnvelope
from fleetforge.testing.fleet import assert_envelopes

__all__ = [
    "OUTPUT",
    "SHAPE",
    "TOOL",
    "TOPIC",
    "assert_conforms",
    "assert_error_path",
    "payload_keys",
    "search",
    "shape",
]

TOPIC = "leases"
TOOL = "search"
OUTPUT = f"draft about {TOPIC}"
SHAPE = [
    "start",
    "emit:step_started",
    "emit:tool_call",
    "emit:tool_result",
    "emit:step_finished",
    "emit:step_started",
    "emit:step_finished",
    "complete",
]


def search(q: str) -> str:
    """Search the knowledge base for ``q``."""
    return f"results for {q}"


def shape(envelopes: Sequence[AgentRunEnvelope]) -> list[str]:
    """The structural kinds of a sequence: messages, custom emits and checkpoints left out."""
    ignored = {"emit:message", "emit:custom", "checkpoint"}
    return [k for k in envelope_kinds(envelopes) if k not in ignored]


def payload_keys(envelopes: Sequence[AgentRunEnvelope]) -> dict[str, set[frozenset[str]]]:
    """For each emit event of a run, the key sets its payloads had (one set when consistent)."""
    found: dict[str, set[frozenset[str]]] = {}
    for e in envelopes:
        if isinstance(e, EmitEnvelope):
            found.setdefault(str(e.event), set()).add(frozenset(e.payload))
    return found


def assert_conforms(envelopes: Sequence[AgentRunEnvelope], *, output: object = OUTPUT) -> None:
    """The scenario's envelopes have the common shape (see the module doc)."""
    assert_envelopes(envelopes)
    for event, key_sets in payload_keys(envelopes).items():
        assert key_sets == {PAYLOAD_KEYS[event]}, (
            f"{event} payloads have keys {[sorted(k) for k in key_sets]}, "
            f"not {sorted(PAYLOAD_KEYS[event])}"
        )
    assert shape(envelopes) == SHAPE, f"shape {shape(envelopes)} != {SHAPE}"
    kinds = envelope_kinds(envelopes)
    assert "checkpoint" in kinds[: kinds.index("complete")], "no checkpoint before complete"
    emits = [e for e in envelopes if isinstance(e, EmitEnvelope)]
    [call] = [e.payload for e in emits if e.event == "tool_call"]
    [result] = [e.payload for e in emits if e.event == "tool_result"]
    assert call["name"] == result["name"] == TOOL, (call, result)
    assert call.get("id") == result.get("id"), "the tool result does not answer the call"
    assert call["arguments"] == {"q": TOPIC}, call
    assert str(result["result"]).find(f"results for {TOPIC}") >= 0, result
    assert result["error"] is None, result
    assert call["step"] == result["step"] is not None, "the tool call belongs to no step"
    final = envelopes[-1]
    assert getattr(final, "output", None) == output, f"output {getattr(final, 'output', None)!r}"


def assert_error_path(envelopes: Sequence[AgentRunEnvelope]) -> None:
    """A failed run: valid envelopes, ``start`` first, ``error`` last with a failure kind."""
    assert_envelopes(envelopes)
    last = envelopes[-1]
    assert isinstance(last, ErrorEnvelope), f"last envelope is {last.kind}, not error"
    assert last.failure_kind, "the error envelope has no failure kind"
    assert last.message, "the error envelope has no message"
