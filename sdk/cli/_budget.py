"""How ``fleetforge show`` prints a run's budget and live usage (issue 23)."""

from __future__ import annotations

from fleetforge.contracts import FleetUsage, Run

__all__ = ["budget_lines"]


def budget_lines(run: Run) -> list[str]:
    """Lines for people: the run's budget against what it used, and each running attempt's
    usage so far (nothing for a run with neither a budget nor reported usage)."""
    status = run.budget
    if status is None:
        return []
    limits = status.limits
    tokens = f"{status.tokens} tokens"
    cost = f"${status.cost_usd:.4f}"
    wall = None if status.wall_s is None else f"{status.wall_s:.0f}s"
    if limits is not None:
        if limits.max_tokens is not None:
            tokens += f" of {limits.max_tokens}"
        if limits.max_cost_usd is not None:
            cost += f" of ${limits.max_cost_usd:.4f}"
        if limits.max_wall_s is not None and wall is not None:
            wall += f" of {limits.max_wall_s:g}s"
    parts = [tokens, cost]
    if status.cost_unknown:
        parts.append(f"{status.cost_unknown} attempt(s) of unknown cost")
    if wall is not None and limits is not None and limits.max_wall_s is not None:
        parts.append(f"{wall} wall time")
    head = "budget: " if limits is not None else "live usage: "
    line = head + ", ".join(parts)
    if limits is not None:
        line += f"; on exceed: {limits.on_exceed}"
    if status.exceeded:
        line += f"; EXCEEDED ({status.exceeded})"
    lines = [line]
    for attempt in status.running:
        who = f", {attempt.worker_id}" if attempt.worker_id else ""
        lines.append(
            f"  running {attempt.task_id} (attempt {attempt.attempt}{who}): "
            + _usage(attempt.usage)
        )
    return lines


def _usage(usage: FleetUsage) -> str:
    tokens = usage.total_tokens or usage.input_tokens + usage.output_tokens
    cost = "cost unknown" if usage.cost_usd is None else f"${usage.cost_usd:.4f}"
    model = f" ({usage.model})" if usage.model else ""
    return f"{tokens} tokens, {cost}{model}"
