"""Agents (pilots): worker identities with a callsign, registered in a project."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal

from fleetforge.contracts import FleetWorkerSpec
from fleetforge.errors import ConflictError, ContractError, ErrorDetail, NotFoundError
from fleetforge.fleet.access import Caller
from fleetforge.fleet.coord._base import ACTIVE_SECONDS, CoordBase, Q, as_datetime, transient
from fleetforge.fleet.store import Tx
from fleetforge.ids import new_id
from fleetforge.operations.coord_results import AgentList, AgentRecord

__all__ = ["Agents", "agent_record"]

_ADJECTIVES = (
    "Amber",
    "Azure",
    "Bold",
    "Brave",
    "Bright",
    "Calm",
    "Clever",
    "Coral",
    "Crimson",
    "Swift",
    "Golden",
    "Green",
    "Indigo",
    "Iron",
    "Jade",
    "Keen",
    "Lunar",
    "Misty",
    "Noble",
    "Quiet",
    "Rapid",
    "Silver",
    "Solar",
    "Steady",
    "Stone",
    "Teal",
    "Violet",
    "Wild",
    "Young",
    "Zesty",
)
_NOUNS = (
    "Albatross",
    "Badger",
    "Condor",
    "Dolphin",
    "Eagle",
    "Falcon",
    "Fox",
    "Gecko",
    "Heron",
    "Ibis",
    "Jaguar",
    "Kestrel",
    "Lynx",
    "Marlin",
    "Newt",
    "Osprey",
    "Otter",
    "Panther",
    "Puffin",
    "Raven",
    "Salmon",
    "Sparrow",
    "Tern",
    "Tiger",
    "Viper",
    "Walrus",
    "Wolf",
    "Wren",
    "Yak",
)


def agent_record(row: tuple[Any, ...], now: datetime) -> AgentRecord:
    agent_id, project, callsign, program, model, task, status, registered, seen = row
    last_seen = as_datetime(seen)
    shown: Literal["active", "idle", "deregistered"]
    if status == "deregistered":
        shown = "deregistered"
    else:
        shown = "active" if (now - last_seen).total_seconds() <= ACTIVE_SECONDS else "idle"
    return AgentRecord(
        agent_id=agent_id,
        project=project,
        callsign=callsign,
        program=program,
        model=model,
        task=task,
        status=shown,
        registered_at=as_datetime(registered),
        last_seen_at=last_seen,
    )


class Agents(CoordBase):
    """Registering, listing and deregistering agents."""

    @transient
    def register_agent(
        self,
        project: str,
        *,
        callsign: str | None = None,
        program: str = "",
        model: str = "",
        task: str = "",
        agent_id: str | None = None,
        caller: Caller | None = None,
    ) -> AgentRecord:
        """Register (or re-register) an agent; a callsign is generated when none is given.

        Registering again with the callsign of a registered agent of the project is that agent
        coming back (after a restart): it keeps its id, checkpoints and inbox, unless the
        caller's token is bound to another worker (ConflictError)."""
        self._project(project, caller)
        if callsign is not None:
            self._callsign_ok(callsign, "/callsign")
        for name, value, limit in (
            ("program", program, 200),
            ("model", model, 200),
            ("task", task, 2000),
        ):
            if len(value) > limit:
                raise ContractError(
                    f"{name} is longer than {limit} characters",
                    details=[ErrorDetail(f"/{name}", "too long")],
                )
        bound = caller.worker_id if caller is not None and caller.bound else None
        now = self.clock.now()
        with self._unit() as unit:
            tx = unit.tx
            if callsign is None:
                callsign = self._new_callsign(tx, project)
            row = tx.fetchone(Q["agent_by_callsign"], {"project": project, "callsign": callsign})
            if row is not None:
                holder = row[0]
                wanted = bound or agent_id or holder
                if wanted != holder:
                    raise ConflictError(
                        f"callsign '{callsign}' is taken in project '{project}' by another agent; "
                        "pick another or omit it to get one",
                        details=[ErrorDetail("/callsign", "is taken")],
                        project=project,
                    )
                agent_id = holder
            else:
                agent_id = bound or agent_id or new_id("agt")
            worker = FleetWorkerSpec(
                worker_id=agent_id,
                name=callsign,
                role="agent",
                labels={"project": project, "callsign": callsign},
            )
            self._append(
                unit,
                [
                    self._event("worker_registered", now, worker=worker),
                    self._event(
                        "agent_registered",
                        now,
                        agent_id=agent_id,
                        project=project,
                        callsign=callsign,
                        program=program,
                        model=model,
                        task=task,
                    ),
                ],
            )
            found = tx.fetchone(Q["agent_by_id"], {"agent_id": agent_id})
            assert found is not None
            return agent_record(found, now)

    def _new_callsign(self, tx: Tx, project: str) -> str:
        taken = {r[1] for r in tx.fetchall(Q["agents_registered"], {"project": project})}
        for attempt in range(200):
            name = secrets.choice(_ADJECTIVES) + secrets.choice(_NOUNS)
            if attempt >= 50:
                name += str(secrets.randbelow(1000))
            if name not in taken:
                return name
        raise ConflictError(f"no free callsign left in project '{project}'; give one")

    @transient
    def deregister_agent(
        self, project: str, agent: str, *, caller: Caller | None = None
    ) -> AgentRecord:
        """The agent leaves the project (its reservations stay until released or expired)."""
        now = self.clock.now()
        with self._unit() as unit:
            me = self._agent(unit.tx, project, agent, caller)
            self._append(
                unit,
                [
                    self._event(
                        "agent_deregistered",
                        now,
                        agent_id=me.agent_id,
                        project=project,
                        callsign=me.callsign,
                    )
                ],
            )
            found = unit.tx.fetchone(Q["agent_by_id"], {"agent_id": me.agent_id})
            assert found is not None
            return agent_record(found, now)

    def list_agents(self, project: str, *, caller: Caller | None = None) -> AgentList:
        """Every agent of the project, by callsign."""
        self._project(project, caller)
        now = self.clock.now()
        with self.store.backend.read() as tx:
            rows = tx.fetchall(Q["agents"], {"project": project})
        return AgentList(agents=[agent_record(r, now) for r in rows])

    def get_agent(self, project: str, agent: str, *, caller: Caller | None = None) -> AgentRecord:
        """One agent of the project."""
        self._project(project, caller)
        now = self.clock.now()
        with self.store.backend.read() as tx:
            rows = [r for r in tx.fetchall(Q["agents"], {"project": project}) if r[2] == agent]
        if not rows:
            raise NotFoundError(
                f"no agent '{agent}' in project '{project}'",
                details=[ErrorDetail("/agent", "not found")],
            )
        registered = [r for r in rows if r[6] == "registered"]
        return agent_record((registered or rows)[0], now)
