"""Tool schemas as MCP clients receive them: self-contained, and outputs two levels deep.

MCP clients validate each tool result against the tool's ``outputSchema`` without fetching
anything, so references to our published schemas are inlined. Output schemas keep their top-level
fields and one level below in full; deeper objects (a run's spec steps, a task's scorer) keep
their description and JSON type only: validating a full ``Run`` schema cost the client ~1 ms a
call (~0.2 ms at two levels), while the complete contracts stay published as
``fleet://schemas/{name}`` and the server builds every result from the full pydantic model.
"""

from __future__ import annotations

import json
from typing import Any

from fleetforge import schemas

__all__ = ["ERROR_SCHEMA", "OUTPUT_DEPTH", "inline_refs", "output_schema", "summarize"]

OUTPUT_DEPTH = 2
_STRUCTURE = ("properties", "anyOf", "oneOf", "allOf", "items", "additionalProperties")
_PY_TO_JSON = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "FleetForgeError",
    "description": "The call failed (the result has isError set): what was wrong and where.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "FleetForgeError subclass, e.g. ContractError, NotFoundError, "
                    "LeaseLostError, RunCancelledError, ForbiddenError.",
                },
                "message": {"type": "string", "description": "What was wrong, for people."},
                "details": {
                    "type": "array",
                    "description": "Each problem with a JSON pointer into the arguments.",
                    "items": {
                        "type": "object",
                        "required": ["pointer", "message"],
                        "properties": {
                            "pointer": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
                "context": {"type": "object", "description": "Ids involved, when useful."},
            },
        }
    },
}


def output_schema(result: dict[str, Any]) -> dict[str, Any]:
    """A tool's outputSchema: its result (summarized) or the structured error of a failed call.

    Some clients (the TypeScript SDK before it skipped error results) validate the structured
    content of error results too, so the schema admits both shapes.
    """
    body = summarize(result)
    head: dict[str, Any] = {key: body[key] for key in ("title", "description") if key in body}
    return {"type": "object", **head, "anyOf": [body, ERROR_SCHEMA]}


def inline_refs(node: Any) -> None:
    """Replace ``$ref``s to our published schemas by their content, in place."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(schemas.SCHEMA_BASE_URI):
            del node["$ref"]
            target = schemas.load(ref.removeprefix(schemas.SCHEMA_BASE_URI).removesuffix(".json"))
            drop = {"$schema", "$id", "examples"}
            node.update(json.loads(json.dumps({k: v for k, v in target.items() if k not in drop})))
        for value in node.values():
            inline_refs(value)
    elif isinstance(node, list):
        for value in node:
            inline_refs(value)


def summarize(schema: dict[str, Any], depth: int = OUTPUT_DEPTH) -> dict[str, Any]:
    """``schema`` with local refs resolved and objects below ``depth`` levels reduced to their
    title, description and JSON type."""
    defs = schema.get("$defs", {})
    result: dict[str, Any] = _summarize(schema, defs, depth)
    return result


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    while isinstance(node, dict) and str(node.get("$ref", "")).startswith("#/$defs/"):
        target = defs[node["$ref"].removeprefix("#/$defs/")]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _types(node: Any, defs: dict[str, Any]) -> set[str]:
    node = _resolve(node, defs)
    if not isinstance(node, dict):
        return set()
    if "type" in node:
        kind = node["type"]
        return set(kind) if isinstance(kind, list) else {kind}
    if "const" in node or "enum" in node:
        values = node.get("enum", [node.get("const")])
        return {_PY_TO_JSON.get(type(v), "object") for v in values}
    found: set[str] = set()
    for key in ("anyOf", "oneOf"):
        for branch in node.get(key, []):
            branch_types = _types(branch, defs)
            if not branch_types:  # an unconstrained branch: any JSON value
                return set()
            found |= branch_types
    return found


def _summarize(node: Any, defs: dict[str, Any], depth: int) -> Any:
    node = _resolve(node, defs)
    if not isinstance(node, dict):
        return node
    if depth <= 0 and any(key in node for key in _STRUCTURE):
        out = {key: node[key] for key in ("title", "description") if key in node}
        types = _types(node, defs)
        if types:
            out["type"] = sorted(types) if len(types) > 1 else types.pop()
        return out
    out = {}
    for key, value in node.items():
        if key in ("$defs", "examples"):
            continue
        if key == "properties":
            out[key] = {name: _summarize(sub, defs, depth - 1) for name, sub in value.items()}
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [_summarize(branch, defs, depth) for branch in value]
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _summarize(value, defs, depth)
        else:
            out[key] = value
    return out
