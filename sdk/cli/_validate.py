"""``fleetforge validate FILE [--schema NAME] [--tree] [--json]``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text
from rich.tree import Tree

from fleetforge.cli._console import err, out, print_json, text
from fleetforge.cli._errors import reporting
from fleetforge.cli._files import read_json

if TYPE_CHECKING:
    from fleetforge.contracts.spec import RunSpec

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
    from fleetforge import schemas
    from fleetforge.validation import check_json_value, validate_run_spec

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
        print_json({"valid": True, "schema": schema, "file": file})
        return
    out.print(Text.assemble(("valid", "green"), " ", text(f"{file} ({schema}: {summary})")))
    if tree and spec is not None:
        out.print(dag_tree(spec))


def _does(step: object) -> str:
    return str(getattr(step, "agent", None) or getattr(step, "tool", None) or "")


def _label(step: object, spec: RunSpec) -> Text:
    sid = getattr(step, "id", "?")
    kind = getattr(step, "type", "?")
    what = _does(step)
    from fleetforge.contracts.spec import MapStep

    if isinstance(step, MapStep):
        what = f"over items → {step.step.type} {_does(step.step)}"
    label = Text.assemble(text(sid, "bold"), " ", text(kind, "dim"))
    if what:
        label.append_text(Text(" ") + text(what))
    if sid in spec.breakpoints:
        label.append(" ⏸ breakpoint", "yellow")
    if kind == "human":
        label.append(" waits for approval", "magenta")
    if getattr(step, "optional", False):
        label.append(" optional", "dim")
    return label


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
    root = Tree(Text.assemble(text(spec.name, "bold"), (f" (seed {spec.seed})", "dim")))
    drawn: set[str] = set()

    def add(parent: Tree, sid: str) -> None:
        if sid in drawn:
            parent.add(text(f"↳ {sid} (see above)", "dim"))
            return
        drawn.add(sid)
        label = _label(spec.step(sid), spec)
        if states is not None and sid in states:
            style = _STATE_STYLE.get(states[sid], "")
            label.append_text(Text(" ") + text(f"[{states[sid]}]", style))
        node = parent.add(label)
        for child in children[sid]:
            add(node, child)

    for step in spec.steps:
        if not step.depends_on:
            add(root, step.id)
    return root
