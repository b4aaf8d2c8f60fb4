"""Projections: views of the event log, updated in the same transaction as the events.

A projection declares the event types it handles and the tables it owns; the store calls
``apply`` for every handled event inside the append transaction, and replay rebuilds the tables
from the events alone. Projections must be deterministic: they read only the event (its ``at``,
never the clock) and the projection's own tables.

:data:`DEFAULT_PROJECTIONS`: runs and steps, artifacts, tasks (the inbox), workers, receipts,
tokens,
alerts (the outbox), coordination (issue 22), budgets (run-level budgets, issue 23).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from fleetforge.fleet.projections.alerts import AlertsProjection
from fleetforge.fleet.projections.artifacts import ArtifactsProjection
from fleetforge.fleet.projections.budgets import BudgetsProjection
from fleetforge.fleet.projections.coordination import CoordinationProjection
from fleetforge.fleet.projections.receipts import ReceiptsProjection
from fleetforge.fleet.projections.runs import RunsProjection
from fleetforge.fleet.projections.tasks import TasksProjection
from fleetforge.fleet.projections.tokens import TokensProjection
from fleetforge.fleet.projections.workers import WorkersProjection
from fleetforge.fleet.store._base import EventRow, Tx

__all__ = [
    "DEFAULT_PROJECTIONS",
    "AlertsProjection",
    "ArtifactsProjection",
    "BudgetsProjection",
    "CoordinationProjection",
    "Projection",
    "ReceiptsProjection",
    "RunsProjection",
    "TasksProjection",
    "TokensProjection",
    "WorkersProjection",
]


class Projection(Protocol):
    """A view of the event log kept in tables of its own."""

    @property
    def name(self) -> str: ...

    @property
    def handles(self) -> frozenset[str]:
        """Event types this projection reacts to."""
        ...

    @property
    def tables(self) -> Mapping[str, tuple[str, ...]]:
        """Tables it owns, each with its primary-key columns (the order replay compares in)."""
        ...

    def apply(self, tx: Tx, event: EventRow) -> None:
        """Update the tables for one event (inside the event's own transaction)."""
        ...


DEFAULT_PROJECTIONS: tuple[Projection, ...] = (
    RunsProjection(),
    ArtifactsProjection(),
    TasksProjection(),
    WorkersProjection(),
    ReceiptsProjection(),
    TokensProjection(),
    AlertsProjection(),
    CoordinationProjection(),
    BudgetsProjection(),
)
