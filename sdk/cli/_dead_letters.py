"""``fleetforge dead-letters``: the steps that failed for good, to read and retry."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from fleetforge.cli._console import err, json_text, out, print_json, text
from fleetforge.cli._context import open_fleet
from fleetforge.cli._errors import reporting
from fleetforge.cli._runs import JsonFlag

__all__ = ["dead_letters"]


def dead_letters(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run's.")] = None,
    inputs: Annotated[bool, typer.Option("--inputs", help="Show each step's inputs.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Continue where a page ended.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the steps that failed for good, newest run first: last error, attempts, inputs.
    Retry some with `fleetforge retry RUN STEP...`."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        page = fleet.dead_letters(run_id=run_id, cursor=cursor, limit=limit)
    if as_json:
        print_json(page.model_dump_json())
        return
    if not page.dead_letters:
        err.print("no dead letters: no step failed for good")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("run", "step", "attempts", "failed", "kind", "error"):
        table.add_column(column, no_wrap=column != "error")
    if inputs:
        table.add_column("inputs")
    for d in page.dead_letters:
        failed = d.failed_at.strftime("%Y-%m-%d %H:%M:%S") if d.failed_at else "-"
        row = [text(d.run_id), text(d.step_id), str(d.attempts), failed,
               text(d.failure_kind or "-"), text(d.error or "-")]  # fmt: skip
        if inputs:
            row.append(text(json_text(json.dumps(d.inputs, ensure_ascii=False))))
        table.add_row(*row)
    out.print(table)
    if page.next_cursor:
        err.print(text(f"more: --cursor {page.next_cursor}"))
