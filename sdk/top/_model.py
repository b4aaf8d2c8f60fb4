"""What ``fleetforge top`` shows, folded from the event log: runs and their progress, workers
and what they hold, queue depth per role, throughput per minute, runs waiting for a person, and
recent alerts and refusals.

:meth:`FleetModel.apply` takes events in ``seq`` order (the log from the start, then each page
a follower reads), so a refresh costs the new events only, never a re-read of the store. No
Textual here: the model is plain Python (tested and benchmarked without a terminal).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

__all__ = ["Alert", "EventLike", "FleetModel", "RunLine", "WorkerLine"]

FINAL = frozenset({"completed", "failed", "cancelled"})
_ALERTS = {
    "access_denied",
    "tool_refused",
    "budget_exceeded",
    "task_failed",
    "receipt_rejected",
    "run_failed",
    "task_lease_expired",
    "worker_offline",
}
_ENDS = {"receipt_recorded", "receipt_posted", "task_failed", "task_lease_expired", "task_released",
         "task_paused"}  # fmt: skip


class EventLike(Protocol):
    """An event as a follower reads it (``EventRecord`` or a stored ``EventRow``)."""

    @property
    def seq(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def run_id(self) -> str | None: ...
    @property
    def at(self) -> Any: ...  # datetime, or its ISO text
    @property
    def data(self) -> Mapping[str, Any]: ...


@dataclass
class RunLine:
    run_id: str
    name: str
    status: str = "pending"
    steps: dict[str, str] = field(default_factory=dict)  # step id -> status
    kinds: dict[str, str] = field(default_factory=dict)  # step id -> type
    depends: dict[str, list[str]] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # step id -> worker role
    paused_for: str | None = None
    updated: datetime | None = None

    @property
    def done(self) -> int:
        return sum(1 for s in self.steps.values() if s in ("completed", "skipped"))

    @property
    def waiting_human(self) -> list[str]:
        """Human steps that wait for an approval (or the reason a paused run waits)."""
        if self.status in FINAL:
            return []
        found = [
            s for s, kind in self.kinds.items() if kind == "human" and self.steps[s] == "ready"
        ]
        if self.status == "paused" and self.paused_for:
            found.append(self.paused_for)
        return found


@dataclass
class WorkerLine:
    worker_id: str
    role: str | None = None
    status: str = "idle"
    tasks: set[str] = field(default_factory=set)
    last_seen: datetime | None = None


@dataclass(frozen=True)
class Alert:
    at: datetime
    type: str
    run_id: str | None
    text: str


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class FleetModel:
    """The fleet as ``top`` draws it; feed it events with :meth:`apply`."""

    def __init__(self, *, alerts: int = 50) -> None:
        self.cursor = 0  # the seq of the last event applied
        self.runs: dict[str, RunLine] = {}
        self.workers: dict[str, WorkerLine] = {}
        self.alerts: deque[Alert] = deque(maxlen=alerts)
        self.queued: dict[str, str] = {}  # task id -> role ("" for any)
        self.active: dict[str, tuple[str, str | None]] = {}  # task id -> (role, worker)
        self.done_per_minute: Counter[datetime] = Counter()
        self.now: datetime | None = None  # the time of the newest event
        self._order: list[str] = []  # run ids as submitted (newest last)
        self._waiting: set[str] = set()  # runs with someone to wait for, kept per event

    # ── folding ─────────────────────────────────────────────────────────────────────────────

    def apply(self, events: Iterable[EventLike]) -> int:
        """Apply events (in ``seq`` order, after :attr:`cursor`); returns how many changed it."""
        applied = 0
        for event in events:
            if event.seq <= self.cursor:
                continue
            self.cursor = event.seq
            self._apply(event)
            applied += 1
        return applied

    def _apply(self, event: EventLike) -> None:
        kind, data, run_id = event.type, event.data, event.run_id
        at = _when(event.at)
        self.now = at if self.now is None or at > self.now else self.now
        run = self.runs.get(run_id) if run_id else None
        if kind == "run_submitted" and run_id:
            spec = data.get("spec", {})
            run = self.runs[run_id] = RunLine(run_id, str(spec.get("name", run_id)))
            self._order.append(run_id)
            defaults = (spec.get("defaults") or {}).get("worker") or {}
            for step in spec.get("steps", []):
                step_id = step["id"]
                run.steps[step_id] = "pending"
                run.kinds[step_id] = step.get("type", "agent")
                run.depends[step_id] = list(step.get("depends_on", []))
                role = (step.get("worker") or {}).get("role") or defaults.get("role") or ""
                run.roles[step_id] = role
        elif kind.startswith("run_") and run is not None:
            run.status = {
                "run_started": "running",
                "run_paused": "paused",
                "run_resumed": "running",
                "run_completed": "completed",
                "run_failed": "failed",
                "run_cancelled": "cancelled",
            }.get(kind, run.status)
            if kind == "run_paused":
                run.paused_for = str(data.get("step_id") or data.get("reason") or "paused")
            elif kind == "run_resumed":
                run.paused_for = None
            if run.status in FINAL:  # nothing of it is queued any more
                for task_id in [t for t in self.queued if t.startswith(run.run_id)]:
                    del self.queued[task_id]
        elif kind.startswith("step_") and run is not None and data.get("step_id") in run.steps:
            run.steps[data["step_id"]] = {
                "step_ready": "ready",
                "step_started": "running",
                "step_completed": "completed",
                "step_failed": "failed",
                "step_skipped": "skipped",
                "step_approved": "completed",
                "step_reset": "pending",
            }.get(kind, run.steps[data["step_id"]])
        elif kind == "task_enqueued":
            task = data.get("task", {})
            role = (task.get("worker") or {}).get("role") or ""
            self.queued[task.get("task_id", "")] = role
        elif kind == "task_leased":
            task_id, worker_id = data.get("task_id", ""), data.get("worker_id")
            role = self.queued.pop(task_id, "")
            self.active[task_id] = (role, worker_id)
            step_id = data.get("step_id")
            if run is not None and step_id in run.steps:
                run.steps[step_id] = "running"
            if worker_id:
                worker = self._worker(worker_id)
                worker.tasks.add(task_id)
                worker.status, worker.last_seen = "busy", at
        elif kind in _ENDS:
            task_id = (data.get("receipt") or {}).get("task_id") or data.get("task_id", "")
            _role, worker_id = self.active.pop(task_id, ("", None))
            if worker_id in self.workers:
                worker = self.workers[worker_id]
                worker.tasks.discard(task_id)
                worker.last_seen = at
                if not worker.tasks and worker.status == "busy":
                    worker.status = "idle"
            if kind == "receipt_recorded":
                minute = at.replace(second=0, microsecond=0)
                self.done_per_minute[minute] += 1
        elif kind == "worker_registered":
            spec = data.get("worker", {})
            worker = self._worker(spec.get("worker_id", "?"))
            worker.role, worker.last_seen = spec.get("role"), at
            worker.status = "idle" if not worker.tasks else "busy"
        elif kind == "worker_heartbeat":
            worker = self._worker(data.get("worker_id", "?"))
            worker.status, worker.last_seen = str(data.get("status", worker.status)), at
        elif kind == "worker_offline":
            self._worker(data.get("worker_id", "?")).status = "offline"
        if run is not None:
            run.updated = at
            if run.waiting_human:
                self._waiting.add(run.run_id)
            else:
                self._waiting.discard(run.run_id)
        if kind in _ALERTS:
            self.alerts.appendleft(Alert(at, kind, run_id, _alert_text(kind, data)))

    def _worker(self, worker_id: str) -> WorkerLine:
        worker = self.workers.get(worker_id)
        if worker is None:
            worker = self.workers[worker_id] = WorkerLine(worker_id)
        return worker

    # ── what top draws ──────────────────────────────────────────────────────────────────────

    def active_tasks(self) -> int:
        return len(self.active)

    def queue_depth(self) -> dict[str, int]:
        """Queued tasks per role ("any" for tasks that name none)."""
        depth: Counter[str] = Counter(role or "any" for role in self.queued.values())
        return dict(sorted(depth.items()))

    def throughput(self, minutes: int = 15) -> list[int]:
        """Receipts recorded per minute, the last ``minutes`` minutes, oldest first."""
        if self.now is None:
            return [0] * minutes
        end = self.now.replace(second=0, microsecond=0)
        return [self.done_per_minute.get(end - timedelta(minutes=i), 0) for i in range(minutes)][
            ::-1
        ]

    def rows(self, limit: int = 200) -> list[RunLine]:
        """Runs to list: unfinished ones first, each group newest first (submission order)."""
        live: list[RunLine] = []
        final: list[RunLine] = []
        for run_id in reversed(self._order):
            run = self.runs[run_id]
            if run.status not in FINAL:
                live.append(run)
                if len(live) == limit:
                    break
            elif len(final) < limit:
                final.append(run)
        return (live + final)[:limit]

    def waiting(self) -> list[RunLine]:
        """Runs with a human step to approve or paused for input, oldest first."""
        return [self.runs[r] for r in self._order if r in self._waiting] if self._waiting else []


def _alert_text(kind: str, data: Mapping[str, Any]) -> str:
    if kind == "access_denied":
        return f"{data.get('who')} refused {data.get('what')}: {data.get('reason')}"
    if kind == "tool_refused":
        return f"tool {data.get('tool')} refused: {data.get('reason')}"
    if kind == "budget_exceeded":
        return f"{data.get('budget')} budget exceeded ({data.get('used')} > {data.get('limit')})"
    if kind == "task_failed":
        return f"{data.get('task_id')} failed ({data.get('kind')}): {data.get('message')}"
    if kind == "receipt_rejected":
        return f"receipt of {data.get('task_id')} rejected"
    if kind == "worker_offline":
        return f"worker {data.get('worker_id')} offline"
    if kind == "task_lease_expired":
        return f"lease of {data.get('task_id')} expired ({data.get('worker_id')})"
    return str(data.get("error") or data.get("reason") or kind)
