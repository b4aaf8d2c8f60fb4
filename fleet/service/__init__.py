"""FleetService: the one API every surface calls (CLI, MCP server, SDK client).

Each operation is one transaction of the event store: it reads projection state, decides, and
appends the events that record the decision (the projections follow in the same transaction).
Nothing is half-written: an operation that raises has written nothing.

:class:`SyncFleetService` holds the behaviour; :class:`FleetService` is its async face (each call
runs in a worker thread, so an event loop never blocks on the database).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from fleetforge.fleet.access import Caller
from fleetforge.fleet.service.alert_outbox import AlertOutbox
from fleetforge.fleet.service.artifacts import DEFAULT_MAX_ARTIFACT_BYTES
from fleetforge.fleet.service.core import A, M
from fleetforge.fleet.store import EventStore
from fleetforge.operations._base import Call, Operation

if TYPE_CHECKING:
    from fleetforge.fleet.coord import Coordination

__all__ = ["DEFAULT_MAX_ARTIFACT_BYTES", "FleetService", "SyncFleetService"]


class SyncFleetService(AlertOutbox):
    """The fleet's behaviour, synchronous. See :class:`FleetService` for the async face.

    The behaviour is written by concern, each a class of its own module that builds on the one
    before: :mod:`.core` (state, caches, who may act), :mod:`.steps` (scheduling),
    :mod:`.workers`, :mod:`.leasing`, :mod:`.heartbeats`, :mod:`.artifacts`, :mod:`.receipts`,
    :mod:`.batches`, :mod:`.runs`, :mod:`.dead_letters` and :mod:`.alert_outbox`. Coordination
    of agents (issue 22) is :attr:`coord`.
    """

    @cached_property
    def coord(self) -> Coordination:
        """Agents, messages, reservations, locks, checkpoints and cursors
        (:mod:`fleetforge.fleet.coord`), on the same store, clock and CAS."""
        from fleetforge.fleet.coord import Coordination

        return Coordination(self.store, self.clock, self.artifacts)


class FleetService:
    """The engine for async surfaces (the MCP server, the client's local transport).

    :meth:`call` runs an operation's engine call (:mod:`fleetforge.operations`) in a worker
    thread: the database drivers are synchronous, so a long-polling lease never blocks the
    event loop. ``sync`` is the :class:`SyncFleetService` underneath.
    """

    def __init__(self, store: EventStore, **options: Any) -> None:
        self.sync = SyncFleetService(store, **options)

    async def call(
        self,
        op: Operation[A, M],
        args: A,
        *,
        caller: Caller | None = None,
        by: str | None = None,
        client: dict[str, Any] | None = None,
        max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
    ) -> M:
        """Run ``op`` with ``args`` as ``caller``; ``by`` is recorded on what a person does."""
        call = Call(self.sync, caller, by, max_artifact_bytes, client)
        return await anyio.to_thread.run_sync(op.run, call, args)
