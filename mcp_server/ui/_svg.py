"""Server-side SVG: a run's DAG (steps by depth, coloured by state) and the Gantt chart of its
attempts. No script, no style attribute (the pages' CSP allows neither): classes only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from html import escape as _escape

from fleetforge.contracts import Run
from fleetforge.mcp_server.ui._reads import Attempt

__all__ = ["dag_svg", "duration", "escape", "gantt_svg"]

# the same short texts (step ids, states, worker ids) recur on a page: escape each once
escape = lru_cache(maxsize=8192)(_escape)

_W, _H, _GAP_X, _GAP_Y, _PAD = 150, 44, 56, 16, 12


def duration(start: datetime | None, end: datetime | None) -> str:
    """``1.2s``, ``3m05s``, ``2h10m``; empty when not started."""
    if start is None:
        return ""
    if end is None:
        return "…"
    seconds = max((end - start).total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _levels(run: Run) -> dict[str, int]:
    """Each step's depth: 0 for roots, else one more than its deepest dependency."""
    deps = {s.id: list(s.depends_on) for s in run.spec.steps}
    level: dict[str, int] = {}
    for _ in range(len(deps) + 1):
        changed = False
        for step_id, before in deps.items():
            depth = 1 + max((level.get(d, 0) for d in before if d in deps), default=-1)
            if level.get(step_id) != depth:
                level[step_id], changed = depth, True
        if not changed:
            break
    return level


def dag_svg(run: Run) -> str:
    """The run's steps as boxes in columns by depth, arrows from each dependency."""
    level = _levels(run)
    states = {s.step_id: s for s in run.steps}
    columns: dict[int, list[str]] = {}
    for step in run.spec.steps:
        columns.setdefault(level.get(step.id, 0), []).append(step.id)
    where: dict[str, tuple[int, int]] = {}
    for depth, ids in columns.items():
        for row, step_id in enumerate(ids):
            where[step_id] = (_PAD + depth * (_W + _GAP_X), _PAD + row * (_H + _GAP_Y))
    width = _PAD * 2 + max(columns, default=0) * (_W + _GAP_X) + _W
    height = _PAD * 2 + max((len(c) for c in columns.values()), default=1) * (_H + _GAP_Y)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="steps of the run" '
        f'data-run-status="{escape(run.status.value)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'class="arrowhead"/></marker></defs>',
    ]
    for step in run.spec.steps:
        x2, y2 = where[step.id]
        for dep in step.depends_on:
            if dep not in where:
                continue
            x1, y1 = where[dep]
            sx, sy, ex, ey = x1 + _W, y1 + _H // 2, x2, y2 + _H // 2
            if x2 - x1 > _W + _GAP_X:  # skips a column: leave by the bottom, round the boxes
                sx, sy, ey = x1 + _W // 2, y1 + _H, y2 + _H
                ex = x2 + _W // 2
                low = max(sy, ey) + _GAP_Y
                path = f"M{sx},{sy} C{sx},{low} {ex},{low} {ex},{ey}"
            else:
                mid = (sx + ex) // 2
                path = f"M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}"
            parts.append(f'<path class="edge" d="{path}" marker-end="url(#arrow)"/>')
    for step in run.spec.steps:
        x, y = where[step.id]
        state = states.get(step.id)
        status = state.status if state else "pending"
        took = duration(state.started_at, state.finished_at) if state else ""
        attempt = f" · try {state.attempt}" if state and state.attempt > 1 else ""
        label = step.id if len(step.id) <= 20 else step.id[:19] + "…"
        parts.append(
            f'<g class="node st-{escape(status)}" data-step="{escape(step.id)}" '
            f'data-status="{escape(status)}" transform="translate({x},{y})">'
            f"<title>{escape(step.id)}: {escape(status)}{escape(attempt)}</title>"
            f'<rect width="{_W}" height="{_H}" rx="6"/>'
            f'<text x="8" y="18" class="step-id">{escape(label)}</text>'
            f'<text x="8" y="35" class="step-state">{escape(status)} {escape(took)}'
            f"{escape(attempt)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def gantt_svg(attempts: Sequence[Attempt], now: datetime) -> str:
    """One bar per attempt on a shared time axis, labelled with the step and the worker."""
    if not attempts:
        return '<p class="muted">No attempt yet.</p>'
    start = min(a.start for a in attempts)
    end = max((a.end or now) for a in attempts)
    span = max((end - start).total_seconds(), 0.001)
    label_w, bar_w, row_h = 170, 560, 22
    width, height = label_w + bar_w + 10, row_h * len(attempts) + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="attempts over time">'
    ]
    for i, a in enumerate(attempts):
        y = i * row_h
        x0 = label_w + (a.start - start).total_seconds() / span * bar_w
        x1 = label_w + ((a.end or now) - start).total_seconds() / span * bar_w
        who = f" @ {a.worker_id}" if a.worker_id else ""
        tip = f"{a.step_id} try {a.attempt}{who}: {a.outcome} {duration(a.start, a.end)}"
        parts.append(
            f'<g class="bar out-{escape(a.outcome)}" data-step="{escape(a.step_id)}">'
            f"<title>{escape(tip)}</title>"
            f'<text x="0" y="{y + 15}">{escape(a.step_id[:18])} #{a.attempt}</text>'
            f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 2):.1f}" height="{row_h - 8}" '
            'rx="3"/></g>'
        )
    parts.append(
        f'<text x="{label_w}" y="{height - 6}" class="axis">0s</text>'
        f'<text x="{width - 10}" y="{height - 6}" class="axis" text-anchor="end">'
        f"{escape(duration(start, end))}</text></svg>"
    )
    return "".join(parts)
