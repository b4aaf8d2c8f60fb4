"""Reading the outbox, sending an alert again, and test alerts (``fleetforge alerts``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from fleetforge.contracts import FleetAlertPolicy
from fleetforge.fleet._events import engine_row
from fleetforge.fleet._sql import named_queries
from fleetforge.fleet._state import to_dt
from fleetforge.fleet.alerts.channels import Delivery, Outcome, deliver
from fleetforge.fleet.alerts.config import AlertSettings
from fleetforge.fleet.clock import Clock, clock_for
from fleetforge.fleet.store import EventStore
from fleetforge.ids import new_id

__all__ = ["list_alerts", "retry_alerts", "send_test"]

Q = named_queries("service.sql")
_COLUMNS = ("alert_id", "policy", "event_class", "subject", "run_id", "channel", "status",
            "attempts", "max_attempts", "next_attempt_at", "last_error", "escalation",
            "fired_at", "delivered_at")  # fmt: skip


def list_alerts(
    store: EventStore, *, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Alerts, newest first."""
    with store.backend.read() as tx:
        rows = tx.fetchall(Q["alerts_page"], {"status": status, "limit": limit})
    out = []
    for row in rows:
        record = dict(zip(_COLUMNS, row, strict=True))
        for key in ("next_attempt_at", "fired_at", "delivered_at"):
            record[key] = to_dt(record[key])
        out.append(record)
    return out


def retry_alerts(
    store: EventStore, alert_ids: Sequence[str], *, by: str, clock: Clock | None = None
) -> tuple[list[str], list[str]]:
    """Make alerts due now, in one transaction (a dead letter gets one more attempt); return
    the ids that do not exist (then nothing is changed) and the ids queued (delivered ones are
    left as they are)."""
    now = (clock or clock_for(store)).now()
    with store.transaction() as unit:
        events = []
        missing: list[str] = []
        for alert_id in alert_ids:
            row = unit.tx.fetchone(Q["alert_state"], {"alert_id": alert_id})
            if row is None:
                missing.append(alert_id)
                continue
            if row[0] == "delivered":
                continue
            data = {"alert_id": alert_id, "attempt": max(1, int(row[1])),
                    "error": f"sent again by {by}", "next_attempt_at": now}  # fmt: skip
            events.append(engine_row("alert_failed", None, now, data))
        if missing:
            return missing, []
        unit.append_rows(events)  # pending again: the next failure makes it dead again
    return [], [e.data["alert_id"] for e in events]


async def send_test(
    policies: Mapping[str, FleetAlertPolicy], settings: AlertSettings
) -> list[tuple[str, str, Outcome]]:
    """A test alert to every endpoint of ``policies``: (policy, channel, outcome) each."""
    results = []
    async with httpx.AsyncClient(timeout=settings.dispatch.timeout_s) as client:
        for name, policy in policies.items():
            for endpoint in policy.endpoints:
                alert_id = new_id("alrt")
                payload: dict[str, Any] = {"type": "fleetforge.alert.test", "alert_id": alert_id,
                                           "policy": f"fleet:{name}", "event_class": "test",
                                           "subject": "test"}  # fmt: skip
                outcome = await deliver(Delivery(alert_id, endpoint, payload, 1), client)
                results.append((name, endpoint.channel.value, outcome))
    return results
