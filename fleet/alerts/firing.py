"""Which events raise alerts: the engine calls :meth:`AlertRouter.fire` with the events it is
about to append, and appends the ``alert_fired`` events it returns in the same transaction, so
an alert is in the outbox exactly when the event it reports is in the log (and the write path
never waits on the network: delivery is the dispatcher's, :mod:`.dispatcher`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from fleetforge.contracts import FleetAlertEventClass, FleetAlertPolicy, RunSpec
from fleetforge.fleet._events import engine_row
from fleetforge.fleet._sql import named_queries
from fleetforge.fleet._state import to_dt
from fleetforge.fleet.alerts.config import AlertSettings
from fleetforge.fleet.store import EventRow, Unit
from fleetforge.ids import new_id

__all__ = ["SOURCES", "AlertRouter", "subject_of"]

Q = named_queries("service.sql")
C = FleetAlertEventClass

#: The event types that can raise an alert, and the class each one is (``step_ready`` only for
#: a human step, ``receipt_recorded`` only for a rejected receipt).
SOURCES: dict[str, FleetAlertEventClass] = {
    "run_completed": C.RUN_COMPLETED,
    "run_failed": C.RUN_FAILED,
    "task_failed": C.TASK_FAILED,
    "receipt_rejected": C.RECEIPT_REJECTED,
    "receipt_recorded": C.RECEIPT_REJECTED,
    "budget_exceeded": C.BUDGET_EXCEEDED,
    "task_lease_expired": C.LEASE_EXPIRED,
    "worker_offline": C.WORKER_OFFLINE,
    "step_ready": C.APPROVAL_REQUIRED,
    "breakpoint_hit": C.BREAKPOINT_HIT,
    "tool_refused": C.TOOL_REFUSED,
}


def subject_of(event: EventRow) -> str:
    """What an alert about ``event`` is about: its task, step, worker or run."""
    data = event.data
    if event.type == "receipt_recorded":
        return str(data["receipt"]["task_id"])
    for key in ("task_id", "worker_id"):
        if data.get(key):
            return str(data[key])
    if data.get("step_id") and event.run_id:
        return f"{event.run_id}.{data['step_id']}"
    return event.run_id or "fleet"


def _summary(event: EventRow) -> dict[str, Any]:
    """The event as the alert carries it (a run's outputs and a receipt's body left out)."""
    data = event.data
    if event.type == "run_completed":
        return {"steps": sorted(data.get("outputs") or {})}
    if event.type == "receipt_recorded":
        r = data["receipt"]
        return {k: r.get(k) for k in ("receipt_id", "task_id", "step_id", "status", "score")}
    return dict(data)


class AlertRouter:
    """Decides, per event, which policies fire (see the module doc)."""

    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings
        self.fleet = [(f"fleet:{name}", p) for name, p in settings.policies.items()]

    def fire(
        self,
        unit: Unit,
        events: Sequence[EventRow],
        spec_of: Callable[[str], RunSpec | None],
        clock: Callable[[], datetime],
    ) -> list[EventRow]:
        """The ``alert_fired`` events ``events`` raise (often none, at the cost of a dict
        lookup per event)."""
        fired: list[EventRow] = []
        now: datetime | None = None
        recent: dict[tuple[str, str], datetime] = {}
        for event in events:
            cls = SOURCES.get(event.type)
            if cls is None:
                continue
            policies = [(key, p) for key, p in self.fleet if cls in p.events]
            spec = spec_of(event.run_id) if event.run_id else None
            if spec is not None and spec.alerts is not None and cls in spec.alerts.events:
                policies.append(("run", spec.alerts))
            if not policies or not _applies(event, cls, spec):
                continue
            subject = subject_of(event)
            now = now or clock()
            for key, policy in policies:
                if self._quiet(unit, recent, key, subject, policy, now):
                    continue
                recent[(key, subject)] = now
                fired += self.rows(event, cls, key, subject, policy, now)
        return fired

    def rows(
        self,
        event: EventRow,
        cls: FleetAlertEventClass,
        key: str,
        subject: str,
        policy: FleetAlertPolicy,
        now: datetime,
        *,
        escalates: str | None = None,
    ) -> list[EventRow]:
        """One ``alert_fired`` per endpoint of ``policy``."""
        out = []
        for endpoint in policy.endpoints:
            alert_id = new_id("alrt")
            payload = {
                "type": "fleetforge.alert",
                "alert_id": alert_id,
                "event_class": cls.value,
                "policy": key,
                "subject": subject,
                "run_id": event.run_id,
                "escalation": 0 if escalates is None else 1,
                "at": now.isoformat().replace("+00:00", "Z"),
                "event": {
                    "event_id": event.event_id,
                    "type": event.type,
                    "at": event.at,
                    "data": _summary(event),
                },
            }
            out.append(
                engine_row(
                    "alert_fired",
                    event.run_id,
                    now,
                    {
                        "alert_id": alert_id,
                        "policy": key,
                        "event_class": cls,
                        "subject": subject,
                        "endpoint": endpoint,
                        "payload": payload,
                        "max_attempts": self.settings.dispatch.max_attempts,
                        "escalation": 0 if escalates is None else 1,
                        "escalates": escalates,
                        "escalate_after_s": None if escalates else policy.escalate_after_s,
                    },
                )
            )
        return out

    def _quiet(
        self,
        unit: Unit,
        recent: dict[tuple[str, str], datetime],
        key: str,
        subject: str,
        policy: FleetAlertPolicy,
        now: datetime,
    ) -> bool:
        """Whether (policy, subject) alerted less than ``min_interval_s`` ago."""
        if policy.min_interval_s <= 0:
            return False
        last = recent.get((key, subject))
        if last is None:
            row = unit.tx.fetchone(Q["alert_last_fired"], {"policy": key, "subject": subject})
            last = to_dt(row[0]) if row and row[0] is not None else None
        return last is not None and now - last < timedelta(seconds=policy.min_interval_s)


def _applies(event: EventRow, cls: FleetAlertEventClass, spec: RunSpec | None) -> bool:
    if event.type == "receipt_recorded":
        return bool(event.data["receipt"].get("status") == "rejected")
    if cls is C.APPROVAL_REQUIRED:
        step_id = event.data.get("step_id")
        return spec is not None and any(s.id == step_id and s.type == "human" for s in spec.steps)
    return True
