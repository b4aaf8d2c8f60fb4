"""Writes the published JSON Schema files from the contract models.

The ``.json`` files beside this module are the contract; they are generated from the pydantic
models so the two cannot drift, and committed so that every change to the contract shows in review.
``tests/test_schemas.py`` fails when the files and the models disagree.

    python -m fleetforge.schemas._build          # rewrite the files
    python -m fleetforge.schemas._build --check  # exit 1 if they are out of date

What the generator adds to pydantic's output:

- models that have their own file are referenced by ``$id`` instead of copied into ``$defs``;
- discriminated unions become ``if``/``then`` per discriminator value (precise errors, no
  ``oneOf`` that tries every branch) plus an ``x-discriminator`` map the loader dispatches on;
- ``$schema``, ``$id``, ``title``, ``description`` and ``examples`` on every file.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from fleetforge.contracts import envelope, events, protocol, run, spec, toolpack
from fleetforge.contracts._base import FLEET_PROTOCOL_VERSION, SCHEMA_BASE_URI
from fleetforge.contracts.artifact import Artifact

HERE = Path(__file__).parent
DRAFT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class Entry:
    """One published schema: its file name, the type it mirrors, and its texts."""

    name: str
    type: Any
    title: str
    description: str | None = None
    examples: list[Any] = field(default_factory=list)


_TS = "2026-11-22T10:00:00Z"
_ENVELOPE = {
    "run_id": "run_01JD3Z6Q",
    "step_id": "plan",
    "task_id": "tsk_01JD3Z6Q_plan",
    "adapter": {"name": "langgraph", "version": "1.2.22"},
    "at": _TS,
    "seed": 42,
    "trace": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
}

CATALOG: tuple[Entry, ...] = (
    # seed 000
    Entry("run_spec", spec.RunSpec, "Run spec"),
    Entry(
        "step",
        spec.Step,
        "Step",
        "One node of a run's DAG, selected by `type`: agent, tool, llm, human or map.",
        [
            {"id": "plan", "type": "agent", "agent": "planner"},
            {
                "id": "each",
                "type": "map",
                "over": {"from": "steps.plan.output#/sections"},
                "step": {"type": "tool", "tool": "workspace.read"},
                "depends_on": ["plan"],
            },
            {"id": "ok", "type": "human", "prompt": "Publish?", "depends_on": ["plan"]},
        ],
    ),
    Entry(
        "input_ref",
        spec.InputRef,
        "Input reference",
        examples=[{"from": "inputs.topic"}, {"from": "steps.plan.output#/outline"}],
    ),
    Entry("run", run.Run, "Run"),
    Entry(
        "run_event",
        events.AnyRunEvent,
        "Run event",
        "An append-only fact of the fleet, selected by `type`; `data` has the type's shape.",
        [
            {
                "event_id": "evt_01",
                "type": "step_ready",
                "run_id": "run_01JD3Z6Q",
                "at": _TS,
                "seq": 4,
                "data": {"step_id": "plan"},
            },
            {
                "event_id": "evt_02",
                "type": "worker_offline",
                "run_id": None,
                "at": _TS,
                "data": {"worker_id": "wkr_planner_1", "reason": "no heartbeat for 60s"},
            },
        ],
    ),
    Entry("artifact", Artifact, "Artifact"),
    Entry(
        "tool_pack",
        toolpack.ToolPack,
        "Tool pack",
        "A tool pack manifest (TOML): MCP servers and which of their tools an agent gets.",
        [
            {
                "name": "workspace",
                "version": "1.0",
                "description": "Files in one workspace directory",
                "prefix": "workspace.",
                "servers": [
                    {
                        "name": "files",
                        "command": "python",
                        "args": ["-m", "fleetforge.armory.workspace", "--root", "."],
                    }
                ],
                "tools": {"requires": {"write": "workspace.write", "*": "workspace.read"}},
            }
        ],
    ),
    Entry(
        "agent_run",
        envelope.AnyAgentRunEnvelope,
        "Agent run envelope",
        "What an agent adapter reports about one task, selected by `kind`.",
        [
            {**_ENVELOPE, "kind": "start", "seq": 0, "inputs": {"topic": "event sourcing"}},
            {
                **_ENVELOPE,
                "kind": "emit",
                "seq": 1,
                "event": "tool_call",
                "payload": {"tool": "workspace.read", "arguments": {"path": "notes.md"}},
            },
            {
                **_ENVELOPE,
                "kind": "checkpoint",
                "seq": 2,
                "checkpoint_id": "1f0c9a",
                "state_digest": "sha256:" + "cd" * 32,
            },
            {
                **_ENVELOPE,
                "kind": "complete",
                "seq": 3,
                "output": {"outline": ["a", "b"]},
                "usage": {"input_tokens": 120, "output_tokens": 48, "total_tokens": 168},
            },
            {
                **_ENVELOPE,
                "kind": "error",
                "seq": 3,
                "failure_kind": "timeout",
                "message": "model call timed out after 30s",
                "retryable": True,
            },
        ],
    ),
    # seed 001
    Entry("fleet_run", protocol.FleetRun, "FleetRun"),
    Entry("fleet_task_spec", protocol.FleetTaskSpec, "FleetTaskSpec"),
    Entry("fleet_inbox_entry", protocol.FleetInboxEntry, "FleetInboxEntry"),
    Entry(
        "fleet_lease",
        protocol.FleetLease,
        "FleetLease",
        examples=[{"worker_id": "wkr_1", "fencing_token": 3, "leased_at": _TS, "expires_at": _TS}],
    ),
    Entry("fleet_receipt", protocol.FleetReceipt, "FleetReceipt"),
    Entry("fleet_score", protocol.FleetScore, "FleetScore"),
    Entry(
        "fleet_scorer_spec",
        protocol.FleetScorerSpec,
        "FleetScorerSpec",
        "Scoring rule used to verify a task result, selected by `kind`.",
        [
            {"kind": "exact", "value": "OK"},
            {"kind": "regex", "pattern": "^Dear ", "pointer": "/letter"},
            {"kind": "numeric_range", "min": 0, "max": 1, "pointer": "/confidence"},
            {"kind": "custom", "name": "rubric", "params": {"threshold": 0.8}},
        ],
    ),
    Entry(
        "fleet_task_result",
        protocol.FleetTaskResult,
        "FleetTaskResult",
        "What a worker reports for one task attempt, selected by `outcome`.",
        [
            {"outcome": "success", "output": {"answer": 42}},
            {"outcome": "failure", "kind": "tool_error", "message": "workspace.read: no such file"},
        ],
    ),
    Entry(
        "fleet_task_failure_kind",
        protocol.FleetTaskFailureKind,
        "FleetTaskFailureKind",
        examples=["transient"],
    ),
    Entry("fleet_usage", protocol.FleetUsage, "FleetUsage"),
    Entry("fleet_worker_spec", protocol.FleetWorkerSpec, "FleetWorkerSpec"),
    Entry("fleet_worker_event", protocol.FleetWorkerEvent, "FleetWorkerEvent"),
    Entry(
        "fleet_worker_event_payload",
        protocol.FleetWorkerEventPayload,
        "FleetWorkerEventPayload",
        "Union of all worker event payloads, selected by `kind`.",
        [
            {"kind": "heartbeat", "status": "idle"},
            {"kind": "log", "level": "warning", "message": "model rate-limited; backing off"},
        ],
    ),
    Entry(
        "fleet_worker_status", protocol.FleetWorkerStatus, "FleetWorkerStatus", examples=["busy"]
    ),
    Entry(
        "fleet_worker_auth",
        protocol.FleetWorkerAuth,
        "FleetWorkerAuth",
        "How a worker authenticates to the fleet, selected by `kind`.",
        [{"kind": "none"}, {"kind": "bearer", "token_ref": {"ref": "env://FLEETFORGE_TOKEN"}}],
    ),
    Entry(
        "fleet_host_spec",
        protocol.FleetHostSpec,
        "FleetHostSpec",
        "Host on which a worker runs, selected by `kind`.",
        [
            {"kind": "local", "hostname": "dev-box"},
            {"kind": "mcp_client", "client_name": "claude-code"},
        ],
    ),
    Entry("fleet_trust_level", protocol.FleetTrustLevel, "FleetTrustLevel", examples=["internal"]),
    Entry("fleet_capability_grant", protocol.FleetCapabilityGrant, "FleetCapabilityGrant"),
    Entry("fleet_secret_ref", protocol.FleetSecretRef, "FleetSecretRef"),
    Entry("fleet_security_policy", protocol.FleetSecurityPolicy, "FleetSecurityPolicy"),
    Entry("fleet_task_budget", protocol.FleetTaskBudget, "FleetTaskBudget"),
    Entry("fleet_run_budget", protocol.FleetRunBudget, "FleetRunBudget"),
    Entry("fleet_retry_policy", protocol.FleetRetryPolicy, "FleetRetryPolicy"),
    Entry("fleet_alert_policy", protocol.FleetAlertPolicy, "FleetAlertPolicy"),
    Entry("fleet_alert_endpoint", protocol.FleetAlertEndpoint, "FleetAlertEndpoint"),
    Entry(
        "fleet_alert_channel", protocol.FleetAlertChannel, "FleetAlertChannel", examples=["webhook"]
    ),
    Entry(
        "fleet_alert_event_class",
        protocol.FleetAlertEventClass,
        "FleetAlertEventClass",
        examples=["run_failed"],
    ),
    Entry("fleet_artifact_ref", protocol.FleetArtifactRef, "FleetArtifactRef"),
    Entry(
        "fleet_artifact_kind", protocol.FleetArtifactKind, "FleetArtifactKind", examples=["report"]
    ),
    Entry(
        "fleet_environment_requirements",
        protocol.FleetEnvironmentRequirements,
        "FleetEnvironmentRequirements",
    ),
    Entry(
        "fleet_workspace_requirements",
        protocol.FleetWorkspaceRequirements,
        "FleetWorkspaceRequirements",
    ),
    Entry("fleet_task_worker_profile", protocol.FleetTaskWorkerProfile, "FleetTaskWorkerProfile"),
    Entry("fleet_run_status", protocol.FleetRunStatus, "FleetRunStatus", examples=["running"]),
    Entry("fleet_inbox_status", protocol.FleetInboxStatus, "FleetInboxStatus", examples=["queued"]),
    Entry(
        "fleet_receipt_status",
        protocol.FleetReceiptStatus,
        "FleetReceiptStatus",
        examples=["accepted"],
    ),
    Entry(
        "trace_context",
        protocol.TraceContext,
        "TraceContext",
        examples=[{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}],
    ),
)

PROTOCOL_VERSION_SCHEMA: dict[str, Any] = {
    "$schema": DRAFT,
    "$id": f"{SCHEMA_BASE_URI}fleet_protocol_version.json",
    "title": "FLEET_PROTOCOL_VERSION",
    "description": "Version of the fleet protocol these schemas describe (seed 001).",
    "type": "string",
    "const": FLEET_PROTOCOL_VERSION,
    "examples": [FLEET_PROTOCOL_VERSION],
}


def _def_name(ref: str) -> str | None:
    return ref.removeprefix("#/$defs/") if ref.startswith("#/$defs/") else None


def _walk(node: Any, fn: Any) -> Any:
    """Rebuild ``node`` bottom-up, applying ``fn`` to every dict."""
    if isinstance(node, dict):
        return fn({k: _walk(v, fn) for k, v in node.items()})
    if isinstance(node, list):
        return [_walk(v, fn) for v in node]
    return node


def _discriminated(node: dict[str, Any]) -> dict[str, Any]:
    if "oneOf" not in node or "discriminator" not in node:
        return node
    prop = node["discriminator"]["propertyName"]
    mapping: dict[str, str] = node["discriminator"]["mapping"]
    rest = {k: v for k, v in node.items() if k not in {"oneOf", "discriminator"}}
    return {
        **rest,
        "type": "object",
        "required": [prop],
        "properties": {
            prop: {"description": "Selects the variant.", "enum": sorted(mapping)},
        },
        "allOf": [
            {
                "if": {"required": [prop], "properties": {prop: {"const": value}}},
                "then": {"$ref": ref},
            }
            for value, ref in sorted(mapping.items())
        ],
        "x-discriminator": {"propertyName": prop, "mapping": dict(sorted(mapping.items()))},
    }


def _raw(entry: Entry) -> dict[str, Any]:
    schema = TypeAdapter(entry.type).json_schema(ref_template="#/$defs/{model}")
    return _walk(schema, _discriminated)  # type: ignore[no-any-return]


@cache
def _published() -> tuple[dict[str, str], dict[frozenset[str], str]]:
    """Def names of published models/enums → $id; member sets of published unions → $id."""
    by_def: dict[str, str] = {}
    by_union: dict[frozenset[str], str] = {}
    for entry in CATALOG:
        schema = _raw(entry)
        sid = f"{SCHEMA_BASE_URI}{entry.name}.json"
        disc = schema.get("x-discriminator")
        if disc is not None:
            by_union[frozenset(filter(None, map(_def_name, disc["mapping"].values())))] = sid
        elif isinstance(getattr(entry.type, "__name__", None), str):
            by_def[entry.type.__name__] = sid
    return by_def, by_union


def _refs(node: Any) -> set[str]:
    found: set[str] = set()

    def collect(d: dict[str, Any]) -> dict[str, Any]:
        ref = d.get("$ref")
        name = _def_name(ref) if isinstance(ref, str) else None
        if name:
            found.add(name)
        return d

    _walk(node, collect)
    return found


def build(entry: Entry) -> dict[str, Any]:
    """The schema document of one catalogue entry."""
    by_def, by_union = _published()
    own_id = f"{SCHEMA_BASE_URI}{entry.name}.json"
    schema = _raw(entry)

    def link(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        name = _def_name(ref) if isinstance(ref, str) else None
        if name in by_def and by_def[name] != own_id:
            return {**node, "$ref": by_def[name]}
        disc = node.get("x-discriminator")
        if disc is not None:
            members = frozenset(filter(None, map(_def_name, disc["mapping"].values())))
            target = by_union.get(members)
            if target is not None and target != own_id:
                keep = {k: v for k, v in node.items() if k in {"description", "title", "default"}}
                return {"$ref": target, **keep}
        return node

    defs: dict[str, Any] = schema.pop("$defs", {})
    body = _walk(schema, link)
    defs = {k: _walk(v, link) for k, v in defs.items()}
    # keep only definitions still reachable from the body
    reachable: set[str] = set()
    frontier = _refs(body)
    while frontier:
        name = frontier.pop()
        if name in reachable or name not in defs:
            continue
        reachable.add(name)
        frontier |= _refs(defs[name])
    kept = {k: defs[k] for k in sorted(reachable)}

    doc: dict[str, Any] = {
        "$schema": DRAFT,
        "$id": own_id,
        "title": entry.title,
        "description": entry.description or body.get("description", ""),
    }
    examples = entry.examples or body.get("examples", [])
    doc.update({k: v for k, v in body.items() if k not in {"title", "description", "examples"}})
    doc["examples"] = examples
    if kept:
        doc["$defs"] = kept
    return doc


def build_all() -> dict[str, dict[str, Any]]:
    """Every published schema, by file name (without `.json`)."""
    docs = {entry.name: build(entry) for entry in CATALOG}
    docs["fleet_protocol_version"] = PROTOCOL_VERSION_SCHEMA
    return docs


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    # --out DIR: the source folder (an editable install's package dir is a tree of links)
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else HERE
    docs = build_all()
    stale = []
    for name, doc in docs.items():
        path = out / f"{name}.json"
        text = render(doc)
        if not path.exists() or path.read_text("utf-8") != text:
            stale.append(name)
            if not check:
                path.write_text(text, "utf-8")
    extra = sorted(p.stem for p in out.glob("*.json") if p.stem not in docs)
    for name in extra:
        stale.append(name)
        if not check:
            (out / f"{name}.json").unlink()
    if check and stale:
        print("out of date: " + ", ".join(sorted(stale)), file=sys.stderr)
        return 1
    print(f"{len(docs)} schemas {'checked' if check else 'written'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
