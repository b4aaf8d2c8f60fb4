"""Small builders of valid events for store tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fleetforge.contracts import RunSpec
from fleetforge.contracts._base import utcnow
from fleetforge.contracts.events import (
    EVENT_TYPES,
    RunEvent,
)
from fleetforge.ids import new_id

SPEC = RunSpec.model_validate(
    {
        "name": "store-test",
        "seed": 5,
        "labels": {"suite": "store"},
        "steps": [
            {"id": "a", "type": "tool", "tool": "echo"},
            {"id": "b", "type": "agent", "agent": "writer", "depends_on": ["a"]},
        ],
    }
)
DIGEST = "sha256:" + "0" * 64


def event(type_: str, run_id: str | None, at: datetime | None = None, **data: Any) -> RunEvent:
    """One event of ``type_`` with a fresh id."""
    return EVENT_TYPES[type_](event_id=new_id("evt"), run_id=run_id, at=at or utcnow(), data=data)


def run_lifecycle(run_id: str, *, start: datetime | None = None) -> list[RunEvent]:
    """Submitted → started → a ready/started/completed → b ready/started/failed → run failed."""
    t = start or utcnow()
    tick = iter(range(100))
    at = lambda: t + timedelta(milliseconds=next(tick))  # noqa: E731
    return [
        event("run_submitted", run_id, at(), spec=SPEC, spec_digest=DIGEST, idempotency_key="k1"),
        event("run_started", run_id, at()),
        event("step_ready", run_id, at(), step_id="a"),
        event("step_started", run_id, at(), step_id="a", task_id=f"{run_id}_a", attempt=1),
        event("step_completed", run_id, at(), step_id="a", output={"echo": "hi"}),
        event("step_ready", run_id, at(), step_id="b"),
        event("step_started", run_id, at(), step_id="b", task_id=f"{run_id}_b", attempt=1),
        event("step_failed", run_id, at(), step_id="b", kind="agent_error", message="boom"),
        event("run_failed", run_id, at(), reason="step b failed", step_id="b"),
    ]
