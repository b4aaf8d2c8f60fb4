"""Operations on the alert outbox (issue 23; docs/alerts.md): list what fired and how its
delivery went, and send alerts again."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleetforge.operations._base import Args, Operation
from fleetforge.operations.alert_results import AlertList, RetriedAlerts

__all__ = ["ALERT_OPERATIONS", "LIST_ALERTS", "RETRY_ALERTS"]


class ListAlertsArgs(Args):
    status: Literal["pending", "delivered", "dead"] | None = Field(
        None, description="Only alerts in this state; omit for all."
    )
    limit: int = Field(50, ge=1, le=1000, description="At most this many, newest first.")


LIST_ALERTS = Operation(
    "list_alerts",
    ListAlertsArgs,
    AlertList,
    "read",
    "List alerts",
    """The alert outbox, newest first: each alert's class, subject, channel, delivery status
(pending, delivered, dead), attempts and last error. Dead ones can be sent again with
fleet_retry_alerts.""",
    lambda call, a: call.fleet.list_alerts(status=a.status, limit=a.limit),
    read_only=True,
    cli="alerts list",
)


class RetryAlertsArgs(Args):
    alert_ids: list[str] = Field(
        min_length=1, max_length=1000, description="Alerts to send again (e.g. dead ones)."
    )


RETRY_ALERTS = Operation(
    "retry_alerts",
    RetryAlertsArgs,
    RetriedAlerts,
    "admin",
    "Send alerts again",
    """Make alerts due now, so the dispatcher sends them at its next pass; a dead letter gets
one more attempt (alert_failed records who asked). All or nothing: NotFoundError naming the
unknown ids, and then nothing changes.""",
    lambda call, a: call.fleet.retry_alerts(a.alert_ids, by=call.by or "api"),
    cli="alerts retry",
)

ALERT_OPERATIONS = (LIST_ALERTS, RETRY_ALERTS)
