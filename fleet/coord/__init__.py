"""Coordination of agents that work side by side (issue 22; docs/coordination.md).

Agents (pilots) register with a callsign in a project; they message each other (inboxes,
threads, acknowledgements, full-text search), reserve path patterns that the armory's
workspace pack enforces, take named locks with fencing tokens, save context checkpoints and
keep cursors. Everything is an event in the store's one log, projected into ``coord_*`` tables
(:mod:`fleetforge.fleet.projections.coordination`) and rebuilt by replay.

:class:`Coordination` is the API; the fleet service exposes one as ``fleet.coord``.
"""

from __future__ import annotations

from fleetforge.fleet.coord.context import Context

__all__ = ["Coordination"]


class Coordination(Context):
    """Agents, messages, reservations, locks, checkpoints and cursors of a store.

    Each method that changes something is one transaction of the store; bad input raises a
    ContractError naming the field (JSON pointer) and writes nothing."""
