"""What the alert operations return (:mod:`fleetforge.operations.alerts`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["AlertList", "AlertRecord", "RetriedAlerts"]


class AlertRecord(BaseModel):
    """One alert of the outbox: what it reports and how its delivery went."""

    alert_id: str = Field(description="The alert (also the webhook-id of every delivery).")
    policy: str = Field(description="The policy that fired it (`fleet:NAME` or `run:NAME`).")
    event_class: str = Field(description="What happened: run_failed, worker_offline...")
    subject: str = Field(description="What it is about: a run, a step, a worker.")
    run_id: str | None = Field(None, description="The run, when it is about one.")
    channel: str = Field(description="webhook, slack, email, pagerduty or log.")
    status: Literal["pending", "delivered", "dead"] = Field(
        description="pending (to deliver or retry), delivered, or dead (attempts spent)."
    )
    attempts: int = Field(description="Delivery attempts so far.")
    max_attempts: int = Field(description="Attempts before it becomes a dead letter.")
    next_attempt_at: datetime | None = Field(None, description="When it is tried next.")
    last_error: str | None = Field(None, description="Why the last attempt failed.")
    escalation: bool = Field(description="An escalation of an earlier alert.")
    fired_at: datetime | None = Field(None, description="When it fired.")
    delivered_at: datetime | None = Field(None, description="When it was delivered.")


class AlertList(BaseModel):
    """Alerts, newest first."""

    alerts: list[AlertRecord] = Field(description="The alerts.")


class RetriedAlerts(BaseModel):
    """Alerts made due again."""

    alert_ids: list[str] = Field(
        description="The alerts queued for the dispatcher's next pass (delivered ones are left)."
    )
