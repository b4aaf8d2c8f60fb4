"""``fleetforge validate FILE [--schema NAME] [--tree] [--json]``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.tree import Tree

from fleetforge import schemas
from fleetforge.cli._console import err, out
from fleetforge.cli._errors import reporting
from fleetforge.cli._files import read_json
from fleetforge.contracts.spec import MapStep, RunSpec
from fleetforge.validation import check_json_value, validate_run_spec

__all__ = ["dag_tree", "validate"]


def validate(
    file: Annotated[str, typer.Argument(help="JSON file to check ('-' reads stdin).")],
    schema: Annotated[
        str, typer.Option("--schema", "-s", help="Schema name (see 'fleetforge schemas list').")
    ] = "run_spec",
    tree: Annotated[bool, typer.Option("--tree", help="Print a run spec's DAG as a tree.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check a document against a schema; run specs also get the DAG and seed rules.

    Exit status: 0 valid, 1 invalid (a table of JSON pointers and problems), 2 unreadable file,
    3 unknown schema.
    """
    with reporting(out, err, as_json=as_json):
        document = read_json(file)
        if schema == "run_spec":
            spec = validate_run_spec(document)
            summary = f"{len(spec.steps)} steps, seed {spec.seed}"
        else:
            document = check_json_value(document, what=schema)
            schemas.validate(schema, document)
            spec, summary = None, schemas.load(schema)["title"]
    if as_json:
        out.print_json(json.dumps({"valid": True, "schema": schema, "file": file}))
        return
    out.print(f"[green]valid[/] {file} ({schema}: {summary})")
    if tree and spec is not None:
        out.print(dag_tree(spec))


def _does(step: object) -> str:
    return str(getattr(step, "agent", None) or getattr(step, "tool", None) or "")


def _label(step: object, spec: RunSpec) -> str:
    sid = getattr(step, "id", "?")
    kind = getattr(step, "type", "?")
    what = _does(step)
    if isinstance(step, MapStep):
        what = f"over items → {step.step.type} {_does(step.step)}"
    marks = []
    if sid in spec.breakpoints:
        marks.append("[yellow]⏸ breakpoint[/]")
    if kind == "human":
        marks.append("[magenta]waits for approval[/]")
    if getattr(step, "optional", False):
        marks.append("[dim]optional[/]")
    head = f"[bold]{sid}[/] [dim]{kind}[/] {what}".rstrip()
    return " ".join([head, *marks])


_STATE_STYLE = {
    "completed": "green",
    "running": "cyan",
    "ready": "cyan",
    "waiting": "yellow",
    "failed": "red",
    "skipped": "dim",
    "cancelled": "dim",
    "pending": "dim",
}


def dag_tree(spec: RunSpec, states: dict[str, str] | None = None) -> Tree:
    """The DAG as a rich tree: roots at the top, each step under the steps it depends on.

    A step with several parents is drawn in full under the first and referenced under the rest.
    With ``states`` (step id → status) each step shows where it stands.
    """
    children: dict[str, list[str]] = {s.id: [] for s in spec.steps}
    for step in spec.steps:
        for dep in step.depends_on:
            children[dep].append(step.id)
    root = Tree(f"[bold]{spec.name}[/] [dim](seed {spec.seed})[/]")
    drawn: set[str] = set()

    def add(parent: Tree, sid: str) -> None:
        if sid in drawn:
            parent.add(f"[dim]↳ {sid} (see above)[/]")
            return
        drawn.add(sid)
        label = _label(spec.step(sid), spec)
        if states is not None and sid in states:
            style = _STATE_STYLE.get(states[sid], "")
            label += f" [{style}]\\[{states[sid]}][/]"
        node = parent.add(label)
        for child in children[sid]:
            add(node, child)

    for step in spec.steps:
        if not step.depends_on:
            add(root, step.id)
    return root
