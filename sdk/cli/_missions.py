"""``fleetforge missions``: runs grouped by their ``mission`` label, with progress.

A mission is a named group of runs (its sorties): every run whose spec carries the label
``mission=NAME`` (docs/contracts.md, "Missions and sorties"). Progress is read from the runs
projection: how many of a mission's runs are completed, failed, cancelled or still going.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any

import typer
from rich.table import Table

from fleetforge.cli._console import err, out, print_json, text
from fleetforge.cli._context import open_fleet
from fleetforge.cli._errors import reporting

__all__ = ["MISSION_LABEL", "missions"]

MISSION_LABEL = "mission"
_PAGES = 100
_FINAL = ("completed", "failed", "cancelled")


def missions(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this mission.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Missions (runs labelled mission=NAME) with their progress: runs by status."""
    by_mission: dict[str, Counter[str]] = {}
    labels = {MISSION_LABEL: name} if name else None
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        cursor = None
        for _ in range(_PAGES):
            page = fleet.list_runs(labels=labels, cursor=cursor, limit=1000)
            for run in page.runs:
                mission = run.labels.get(MISSION_LABEL)
                if mission is not None:
                    by_mission.setdefault(mission, Counter())[str(run.status)] += 1
            cursor = page.next_cursor
            if cursor is None:
                break
    rows: list[dict[str, Any]] = []
    for mission, counts in sorted(by_mission.items()):
        total = sum(counts.values())
        rows.append(
            {
                "mission": mission,
                "runs": total,
                "by_status": dict(sorted(counts.items())),
                "done": sum(counts[s] for s in _FINAL),
                "progress": round(counts["completed"] / total, 4),
            }
        )
    if as_json:
        print_json(json.dumps({"missions": rows}))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("mission", "sorties", "completed", "failed", "active", "progress"):
        table.add_column(column)
    for row in rows:
        statuses: dict[str, int] = row["by_status"]
        table.add_row(
            text(row["mission"]),
            str(row["runs"]),
            str(statuses.get("completed", 0)),
            str(statuses.get("failed", 0)),
            str(row["runs"] - row["done"]),
            f"{row['progress']:.0%}",
        )
    out.print(table)
