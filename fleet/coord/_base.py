"""What every coordination concern shares: the store and clock, events, transactions that retry
on a transient failure, and the agent a call acts as (with the token's project limits)."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from fleetforge.contracts.coordination import CALLSIGN_PATTERN, PROJECT_PATTERN
from fleetforge.errors import ContractError, ErrorDetail, ForbiddenError, NotFoundError, StoreError
from fleetforge.fleet._events import engine_row
from fleetforge.fleet._sql import named_queries
from fleetforge.fleet._state import at as as_datetime
from fleetforge.fleet._state import to_dt
from fleetforge.fleet.access import Caller
from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.clock import Clock
from fleetforge.fleet.store import EventRow, EventStore, Tx, Unit

__all__ = ["ACTIVE_SECONDS", "Agent", "CoordBase", "Q", "as_datetime", "to_dt", "transient"]

Q = named_queries("coordination.sql")
ACTIVE_SECONDS = 300.0
MAX_TTL_SECONDS = 30 * 24 * 3600
P = ParamSpec("P")
R = TypeVar("R")
_ATTEMPTS = 5


def transient(method: Callable[P, R]) -> Callable[P, R]:
    """Run a write again when the store rolled it back for a transient reason (a PostgreSQL
    deadlock or serialization failure); each attempt is one whole transaction."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return method(*args, **kwargs)
            except StoreError as exc:
                if not exc.context.get("transient") or attempt == _ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")

    return wrapper


class Agent:
    """The registered agent a call acts as."""

    __slots__ = ("agent_id", "callsign", "project")

    def __init__(self, agent_id: str, project: str, callsign: str) -> None:
        self.agent_id = agent_id
        self.project = project
        self.callsign = callsign


class CoordBase:
    """The store, clock and CAS of coordination, and the helpers every concern uses."""

    def __init__(
        self, store: EventStore, clock: Clock, artifacts: ArtifactStore | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.artifacts = artifacts

    # ── writing ─────────────────────────────────────────────────────────────────────────────

    @contextmanager
    def _unit(self) -> Iterator[Unit]:
        with self.store.transaction() as unit:
            yield unit

    @staticmethod
    def _event(type_: str, at: datetime, **data: Any) -> EventRow:
        return engine_row(type_, None, at, data)

    @staticmethod
    def _append(unit: Unit, events: Sequence[EventRow]) -> None:
        unit.append_rows(events)

    # ── checks ──────────────────────────────────────────────────────────────────────────────

    @staticmethod
    def _project(project: str, caller: Caller | None) -> str:
        import re

        if not isinstance(project, str) or not re.match(PROJECT_PATTERN, project):
            raise ContractError(
                f"project {project!r} is not a project key (letters, digits, '.', '_', '-'; "
                "at most 64)",
                details=[ErrorDetail("/project", "is not a project key")],
            )
        if caller is not None and not caller.in_project(project):
            raise ForbiddenError(
                f"forbidden: {caller.label} is limited to other projects than '{project}'",
                project=project,
            )
        return project

    @staticmethod
    def _callsign_ok(callsign: str, pointer: str) -> str:
        import re

        if not isinstance(callsign, str) or not re.match(CALLSIGN_PATTERN, callsign):
            problem = "must not be empty" if not callsign else "is not a callsign"
            raise ContractError(
                f"callsign {callsign!r} {problem} (a letter, then letters, digits, '_' or '-'; "
                "at most 48)",
                details=[ErrorDetail(pointer, problem)],
            )
        return callsign

    @staticmethod
    def _ttl(seconds: float, pointer: str = "/ttl_seconds") -> timedelta:
        if not (0 < seconds <= MAX_TTL_SECONDS):
            raise ContractError(
                f"ttl_seconds must be more than 0 and at most {MAX_TTL_SECONDS} (30 days), "
                f"got {seconds}",
                details=[ErrorDetail(pointer, "out of range")],
            )
        return timedelta(seconds=seconds)

    def _agent(
        self, tx: Tx, project: str, callsign: str, caller: Caller | None, pointer: str = "/agent"
    ) -> Agent:
        """The registered agent ``callsign`` of ``project``, which ``caller`` may act as."""
        self._project(project, caller)
        self._callsign_ok(callsign, pointer)
        row = tx.fetchone(Q["agent_by_callsign"], {"project": project, "callsign": callsign})
        if row is None:
            raise NotFoundError(
                f"no agent '{callsign}' in project '{project}': register it first (register_agent)",
                details=[ErrorDetail(pointer, "is not a registered agent of the project")],
                project=project,
            )
        agent = Agent(row[0], project, callsign)
        if (
            caller is not None
            and caller.bound
            and caller.worker_id != agent.agent_id
            and not caller.admin
        ):
            raise ForbiddenError(
                f"forbidden: {caller.label} acts as worker '{caller.worker_id}', not as "
                f"agent '{callsign}'",
                project=project,
            )
        return agent
