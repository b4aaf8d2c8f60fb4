"""Run every benchmarks/bench_*.py, print one table, write benchmarks/results/<name>.json.

A bench module has ``run() -> {metric: value}``, and may have ``GOALS`` ({metric: (op, target)},
read after ``run``, which may add to it) and ``NOTES`` (lines printed after the table and kept in
the JSON: what a figure's mode was, what was missing).

python benchmarks/run.py [NAME ...]      # e.g. `contracts`; default: all
"""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def _load(path: Path) -> object:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _meets(value: float, goal: tuple[str, float] | None) -> str:
    if goal is None:
        return ""
    op, target = goal
    ok = value >= target if op == ">=" else value <= target
    return f"{'[green]yes' if ok else '[red]NO'}[/] ({op} {target:,})"


def main(argv: list[str]) -> int:
    wanted = set(argv)
    table = Table(title="FleetForge benchmarks", header_style="bold")
    for column in ("benchmark", "metric", "value", "goal met"):
        table.add_column(column, justify="right" if column == "value" else "left")
    RESULTS.mkdir(exist_ok=True)
    failed = False
    notes: list[str] = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        module = _load(path)
        figures: dict[str, float] = module.run()  # type: ignore[attr-defined]
        goals: dict[str, tuple[str, float]] = getattr(module, "GOALS", {})
        module_notes: list[str] = list(getattr(module, "NOTES", []))
        notes += [f"{name}: {note}" for note in module_notes]
        for metric, value in figures.items():
            verdict = _meets(value, goals.get(metric))
            failed |= "NO" in verdict
            table.add_row(name, metric, f"{value:,.2f}", verdict)
        record = {
            "benchmark": name,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": __import__("os").cpu_count(),
            "figures": figures,
            "goals": {k: list(v) for k, v in goals.items()},
            "notes": module_notes,
        }
        (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    Console(width=max(Console().width, 120)).print(table)
    for note in notes:
        print(note)
    print(f"results written to {RESULTS}/")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
