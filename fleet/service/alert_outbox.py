"""The alert outbox as operations: list what fired and send alerts again (the dispatcher that
delivers them is :mod:`fleetforge.fleet.alerts.dispatcher`)."""

from __future__ import annotations

from collections.abc import Sequence

from fleetforge.errors import ContractError, ErrorDetail, NotFoundError
from fleetforge.fleet.service.dead_letters import DeadLetters
from fleetforge.operations.alert_results import AlertList, AlertRecord, RetriedAlerts

__all__ = ["AlertOutbox"]


class AlertOutbox(DeadLetters):
    """Reading the alert outbox and queueing alerts again."""

    def list_alerts(self, *, status: str | None = None, limit: int = 50) -> AlertList:
        """Alerts, newest first; ``status`` keeps pending, delivered or dead ones."""
        from fleetforge.fleet.alerts import admin  # its channels' imports, only when asked

        rows = admin.list_alerts(self.store, status=status, limit=limit)
        return AlertList(alerts=[AlertRecord.model_validate(r) for r in rows])

    def retry_alerts(self, alert_ids: Sequence[str], *, by: str) -> RetriedAlerts:
        """Make alerts due now (a dead letter gets one more attempt), all in one transaction;
        NotFoundError naming unknown ids, and then nothing changes."""
        from fleetforge.fleet.alerts import admin

        bad = [ErrorDetail(f"/alert_ids/{i}", "contains NUL")
               for i, alert_id in enumerate(alert_ids) if "\x00" in alert_id]  # fmt: skip
        if bad:  # not an id; refused the same on every store (PostgreSQL's text cannot hold NUL)
            raise ContractError("an alert id may not contain NUL; nothing was changed", details=bad)
        missing, queued = admin.retry_alerts(self.store, alert_ids, by=by, clock=self.clock)
        if missing:
            raise NotFoundError(
                f"no alert {', '.join(repr(m) for m in missing)}; nothing was changed",
                details=[
                    ErrorDetail(f"/alert_ids/{i}", "not found")
                    for i, alert_id in enumerate(alert_ids)
                    if alert_id in missing
                ],
            )
        return RetriedAlerts(alert_ids=queued)
