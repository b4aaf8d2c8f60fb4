"""Alerts: the outbox, one row per alert delivery (``alert_fired``), with its attempts, its
next attempt and whether it was delivered or became a dead letter."""

from __future__ import annotations

from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.store._base import EventRow, Tx, canonical_json, iso

__all__ = ["AlertsProjection"]

Q = named_queries("projections.sql")


class AlertsProjection:
    """Rows of ``alerts``."""

    name = "alerts"
    tables = {"alerts": ("alert_id",)}
    handles = frozenset({"alert_fired", "alert_delivered", "alert_failed"})

    def apply(self, tx: Tx, event: EventRow) -> None:
        data = event.data
        if event.type == "alert_fired":
            endpoint = data["endpoint"]
            tx.execute(
                Q["alert_insert"],
                {
                    "alert_id": data["alert_id"],
                    "policy": data["policy"],
                    "event_class": data["event_class"],
                    "subject": data["subject"],
                    "run_id": event.run_id,
                    "channel": endpoint["channel"],
                    "endpoint": canonical_json(endpoint),
                    "payload": canonical_json(data["payload"]),
                    "max_attempts": data["max_attempts"],
                    "escalation": data.get("escalation", 0),
                    "escalates": data.get("escalates"),
                    "escalate_after_s": data.get("escalate_after_s"),
                    "at": event.at,
                },
            )
            if data.get("escalates"):
                tx.execute(
                    Q["alert_escalated"],
                    {"alert_id": data["alert_id"], "escalates": data["escalates"]},
                )
        elif event.type == "alert_delivered":
            tx.execute(
                Q["alert_delivered"],
                {"alert_id": data["alert_id"], "attempt": data["attempt"], "at": event.at},
            )
        else:
            retry_at = data.get("next_attempt_at")
            tx.execute(
                Q["alert_failed"],
                {
                    "alert_id": data["alert_id"],
                    "attempt": data["attempt"],
                    "status": "pending" if retry_at else "dead",
                    "next_attempt_at": iso(retry_at) if retry_at else None,
                    "error": data["error"],
                },
            )
