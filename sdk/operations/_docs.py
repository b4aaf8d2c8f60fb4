"""The operations table of docs/contracts.md, generated from :data:`OPERATIONS` (a test keeps
the page equal to it)."""

from __future__ import annotations

from fleetforge.operations import OPERATIONS

__all__ = ["BEGIN", "END", "markdown_table"]

BEGIN = "<!-- operations: generated from fleetforge.operations; do not edit by hand -->"
END = "<!-- /operations -->"


def markdown_table() -> str:
    """One row per operation: client method, MCP tool, CLI, scope, hints, arguments."""
    rows = [
        "| operation (client method) | MCP tool | CLI | scope | hints | arguments |",
        "|---|---|---|---|---|---|",
    ]
    for op in OPERATIONS.values():
        hints = [
            name
            for name, on in (
                ("read-only", op.read_only),
                ("destructive", op.destructive),
                ("idempotent", op.idempotent),
                ("acts as a worker", op.as_worker),
            )
            if on
        ]
        arguments = ", ".join(
            f"`{name}`" if field.is_required() else f"`{name}`?"
            for name, field in op.args.model_fields.items()
        )
        rows.append(
            f"| `{op.name}` | `{op.tool}` | `{op.cli}` | {op.scope} | {', '.join(hints)} "
            f"| {arguments or '-'} |"
        )
    return "\n".join([BEGIN, *rows, END])
