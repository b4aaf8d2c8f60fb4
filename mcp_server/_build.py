"""Writes ``tools.json``: every tool as MCP clients see it, generated from the operation table.

A server registers its tools from this file, so starting ``fleetforge mcp`` needs neither the
contract models nor the engine (both load on the first call); ``tests/test_mcp_server.py`` fails
when the file and the operation table disagree.

    python -m fleetforge.mcp_server._build --out mcp_server    # rewrite (make schemas does)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fleetforge.mcp_server._schema import published_output
from fleetforge.operations import OPERATIONS, Operation

__all__ = ["render", "tool_entry"]

HERE = Path(__file__).parent


def tool_entry(op: Operation[Any, Any]) -> dict[str, Any]:
    """One tool: its name, texts, hints, and input and output schemas (self-contained)."""
    schema = op.args.model_json_schema()
    defs = schema.pop("$defs", {})
    params = []
    for name, prop in schema.get("properties", {}).items():
        params.append(
            {
                "name": name,
                "required": name in schema.get("required", []),
                "schema": _inline(prop, defs),
            }
        )
    return {
        "name": op.tool,
        "operation": op.name,
        "title": op.title,
        "description": op.description,
        "scope": op.scope,
        "annotations": {
            "readOnlyHint": op.read_only,
            "destructiveHint": None if op.read_only else op.destructive,
            "idempotentHint": None if op.read_only else op.idempotent,
            "openWorldHint": False,
        },
        "params": params,
        "output_schema": published_output(op),
    }


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every local ``$ref`` replaced by its definition (our models are not
    recursive), so each parameter's schema stands alone."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = defs[ref.removeprefix("#/$defs/")]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return _inline({**target, **rest}, defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "examples"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def render() -> str:
    """The text of ``tools.json``."""
    tools = [tool_entry(op) for op in OPERATIONS.values()]
    return json.dumps({"tools": tools}, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else HERE
    (out / "tools.json").write_text(render(), encoding="utf-8")
    print(f"{len(OPERATIONS)} tools written to {out / 'tools.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
