"""``fleetforge schemas list|show``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from fleetforge.cli._console import err, out, print_json
from fleetforge.cli._errors import reporting

__all__ = ["app"]

app = typer.Typer(help="List and show the published JSON Schemas.", no_args_is_help=True)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List every published schema with its title (--json adds each $id)."""
    from fleetforge import schemas

    rows = [
        {"name": n, "title": schemas.load(n)["title"], "id": schemas.schema_id(n)}
        for n in schemas.names()
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("Name", style="cyan", no_wrap=True)
    table.add_column("Title")
    for row in rows:
        table.add_row(row["name"], row["title"])
    out.print(table)


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="Schema name, e.g. run_spec.")]) -> None:
    """Print one schema as JSON."""
    from fleetforge import schemas

    with reporting(out, err):
        document = schemas.load(name)
    print_json(document) if out.is_terminal else print(json.dumps(document, indent=2))
