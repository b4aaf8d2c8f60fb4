"""Claims on shared things: file reservations (path patterns, exclusive or shared, with a TTL)
and named locks with fencing tokens. The overlap rule is in :mod:`.paths`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fleetforge.errors import ConflictError, ContractError, ErrorDetail, LeaseLostError
from fleetforge.fleet.access import Caller
from fleetforge.fleet.coord._base import Agent, Q, as_datetime, transient
from fleetforge.fleet.coord.messages import Messages
from fleetforge.fleet.coord.paths import matches, normalize_path, normalize_pattern, overlap
from fleetforge.fleet.store import Tx, Unit
from fleetforge.fleet.store._base import iso
from fleetforge.ids import new_id
from fleetforge.operations.coord_results import (
    LockRecord,
    PathBlock,
    PathCheck,
    ReservationList,
    ReservationRecord,
    Reserved,
)

__all__ = ["Claims"]

MAX_PATTERNS = 100
MAX_CHECK = 1000
_RES_COLUMNS = (
    "reservation_id, project, agent_id, callsign, pattern, exclusive, reason, "
    "advisory, granted_at, expires_at, status"
)


def _reservation(row: tuple[Any, ...]) -> ReservationRecord:
    rid, project, _aid, callsign, pattern, exclusive, reason, advisory, granted, expires, _s = row
    return ReservationRecord(
        reservation_id=rid,
        project=project,
        callsign=callsign,
        pattern=pattern,
        exclusive=bool(exclusive),
        reason=reason,
        advisory=bool(advisory),
        granted_at=as_datetime(granted),
        expires_at=as_datetime(expires),
    )


def _lock(row: tuple[Any, ...]) -> LockRecord:
    project, name, _aid, callsign, token, expires, status = row
    return LockRecord(
        project=project,
        name=name,
        holder=callsign,
        fencing_token=int(token),
        expires_at=as_datetime(expires),
        status=status,
    )


def _ancestors(path: str) -> list[str]:
    """The static prefixes a pattern matching ``path`` can have: ``""``, ``a/``, ``a/b/``..."""
    parts = path.split("/")
    return ["/".join(parts[:i]) + ("/" if i else "") for i in range(len(parts))]


class Claims(Messages):
    """File reservations and locks."""

    # ── reservations ────────────────────────────────────────────────────────────────────────

    def _live_reservations(self, unit: Unit, project: str, now: datetime) -> list[tuple[Any, ...]]:
        """Active reservations of the project, recording the expiry of those past their time
        (in this unit: whoever observes an expiry records it)."""
        unit.tx.lock(f"fleetforge-coord-reservations:{project}")
        rows = unit.tx.fetchall(Q["reservations_active"], {"project": project})
        expired = [r for r in rows if as_datetime(r[9]) <= now]
        if expired:
            self._append(
                unit,
                [
                    self._event(
                        "reservation_expired",
                        now,
                        reservation_id=r[0],
                        project=project,
                        agent_id=r[2],
                    )
                    for r in expired
                ],
            )
        return [r for r in rows if as_datetime(r[9]) > now]

    @transient
    def reserve_paths(
        self,
        project: str,
        agent: str,
        paths: list[str],
        *,
        exclusive: bool = True,
        ttl_seconds: float = 3600.0,
        reason: str = "",
        advisory: bool = False,
        caller: Caller | None = None,
    ) -> Reserved:
        """Reserve path patterns, all or none. A pattern overlapping another agent's reservation
        (exclusive against any, shared against exclusive) is refused with ConflictError naming
        the holder, its pattern and expiry; with ``advisory`` it is granted anyway and the
        conflicts are recorded."""
        if not paths or len(paths) > MAX_PATTERNS:
            raise ContractError(
                f"paths must list 1..{MAX_PATTERNS} patterns",
                details=[ErrorDetail("/paths", "empty or too many")],
            )
        patterns = list(
            dict.fromkeys(normalize_pattern(p, f"/paths/{i}") for i, p in enumerate(paths))
        )
        if len(reason) > 2000:
            raise ContractError(
                "reason is longer than 2000 characters",
                details=[ErrorDetail("/reason", "too long")],
            )
        now = self.clock.now()
        expires = now + self._ttl(ttl_seconds)
        with self._unit() as unit:
            me = self._agent(unit.tx, project, agent, caller)
            live = self._live_reservations(unit, project, now)
            events, conflicts_seen, problems = [], [], []
            for i, pattern in enumerate(patterns):
                conflicts = [
                    {
                        "reservation_id": r[0],
                        "callsign": r[3],
                        "pattern": r[4],
                        "expires_at": as_datetime(r[9]),
                    }
                    for r in live
                    if r[2] != me.agent_id and (exclusive or r[5]) and overlap(pattern, r[4])
                ]
                if conflicts and not advisory:
                    problems += [
                        ErrorDetail(
                            f"/paths/{i}",
                            f"overlaps '{c['pattern']}' held by {c['callsign']} "
                            f"until {iso(c['expires_at'])}",
                        )
                        for c in conflicts
                    ]
                    continue
                conflicts_seen += conflicts
                events.append(
                    self._event(
                        "reservation_granted",
                        now,
                        reservation_id=new_id("rsv"),
                        project=project,
                        agent_id=me.agent_id,
                        callsign=me.callsign,
                        pattern=pattern,
                        exclusive=exclusive,
                        reason=reason,
                        expires_at=expires,
                        advisory=bool(conflicts),
                        conflicts=conflicts,
                    )
                )
            if problems:
                first = problems[0].message
                raise ConflictError(
                    f"not reserved: {first}"
                    + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                    + "; message the holder or wait for its release",
                    details=problems,
                    project=project,
                )
            self._append(unit, events)
            granted = [
                unit.tx.fetchone(
                    Q["reservation"],
                    {"reservation_id": e.data["reservation_id"], "project": project},
                )
                for e in events
            ]
        return Reserved(
            granted=[_reservation(r) for r in granted if r is not None],
            conflicts=[{**c, "expires_at": iso(c["expires_at"])} for c in conflicts_seen],
        )

    def _mine(
        self, unit: Unit, me: Agent, ids: list[str] | None, now: datetime
    ) -> list[tuple[Any, ...]]:
        live = self._live_reservations(unit, me.project, now)
        mine = [r for r in live if r[2] == me.agent_id]
        if ids is None:
            return mine
        by_id = {r[0]: r for r in mine}
        missing = [
            ErrorDetail(f"/reservation_ids/{i}", "not an active reservation of yours")
            for i, rid in enumerate(ids)
            if rid not in by_id
        ]
        if missing:
            raise LeaseLostError(
                f"{len(missing)} reservation(s) are not active reservations of '{me.callsign}' "
                "(released, expired, or another agent's)",
                details=missing,
            )
        return [by_id[rid] for rid in dict.fromkeys(ids)]

    @transient
    def renew_reservations(
        self,
        project: str,
        agent: str,
        *,
        reservation_ids: list[str] | None = None,
        ttl_seconds: float = 3600.0,
        caller: Caller | None = None,
    ) -> ReservationList:
        """Move the expiry of the agent's reservations (all of them, or those named) to now +
        ``ttl_seconds``. One that expired is gone (LeaseLostError): reserve again."""
        now = self.clock.now()
        expires = now + self._ttl(ttl_seconds)
        with self._unit() as unit:
            me = self._agent(unit.tx, project, agent, caller)
            rows = self._mine(unit, me, reservation_ids, now)
            self._append(
                unit,
                [
                    self._event(
                        "reservation_renewed",
                        now,
                        reservation_id=r[0],
                        project=project,
                        agent_id=me.agent_id,
                        expires_at=expires,
                    )
                    for r in rows
                ],
            )
            fresh = [
                unit.tx.fetchone(Q["reservation"], {"reservation_id": r[0], "project": project})
                for r in rows
            ]
        return ReservationList(reservations=[_reservation(r) for r in fresh if r is not None])

    @transient
    def release_reservations(
        self,
        project: str,
        agent: str,
        *,
        reservation_ids: list[str] | None = None,
        paths: list[str] | None = None,
        caller: Caller | None = None,
    ) -> ReservationList:
        """Release the agent's reservations: those named by id or by pattern, or all."""
        patterns = (
            None
            if paths is None
            else {normalize_pattern(p, f"/paths/{i}") for i, p in enumerate(paths)}
        )
        now = self.clock.now()
        with self._unit() as unit:
            me = self._agent(unit.tx, project, agent, caller)
            rows = self._mine(unit, me, reservation_ids, now)
            if patterns is not None:
                rows = [r for r in rows if r[4] in patterns]
            self._append(
                unit,
                [
                    self._event(
                        "reservation_released",
                        now,
                        reservation_id=r[0],
                        project=project,
                        agent_id=me.agent_id,
                    )
                    for r in rows
                ],
            )
        return ReservationList(reservations=[_reservation(r) for r in rows])

    def list_reservations(
        self, project: str, *, agent: str | None = None, caller: Caller | None = None
    ) -> ReservationList:
        """The project's active reservations (of one agent, when named)."""
        self._project(project, caller)
        now = self.clock.now()
        with self.store.backend.read() as tx:
            rows = tx.fetchall(Q["reservations_active"], {"project": project})
        return ReservationList(
            reservations=[
                _reservation(r)
                for r in rows
                if as_datetime(r[9]) > now and (agent is None or r[3] == agent)
            ]
        )

    def check_paths(
        self,
        project: str,
        paths: list[str],
        *,
        agent: str | None = None,
        caller: Caller | None = None,
    ) -> PathCheck:
        """May ``agent`` write these paths? Lists each path another agent reserved exclusively
        (a read: it records nothing)."""
        if not paths or len(paths) > MAX_CHECK:
            raise ContractError(
                f"paths must list 1..{MAX_CHECK} paths",
                details=[ErrorDetail("/paths", "empty or too many")],
            )
        wanted = [normalize_path(p, f"/paths/{i}") for i, p in enumerate(paths)]
        now = iso(self.clock.now())
        with self.store.backend.read() as tx:
            me = self._agent(tx, project, agent, caller).agent_id if agent else None
            blocked = self._blocking(tx, project, wanted, me, now)
        return PathCheck(ok=not blocked, blocked=blocked)

    def _blocking(
        self, tx: Tx, project: str, paths: list[str], me: str | None, now: str
    ) -> list[PathBlock]:
        prefixes = sorted({a for path in paths for a in _ancestors(path)})
        params: dict[str, Any] = {"project": project, "now": now}
        inside = self.store.backend.in_list("prefix", prefixes, params)
        rows = tx.fetchall(
            f"SELECT {_RES_COLUMNS} FROM coord_reservations WHERE project = :project "
            f"AND status = 'active' AND {inside} AND exclusive = 1 AND expires_at > :now "
            "ORDER BY reservation_id",
            params,
        )
        return [
            PathBlock(
                path=path,
                holder=r[3],
                pattern=r[4],
                reservation_id=r[0],
                expires_at=as_datetime(r[9]),
            )
            for path in paths
            for r in rows
            if r[2] != me and matches(r[4], path)
        ]

    # ── locks ───────────────────────────────────────────────────────────────────────────────

    @staticmethod
    def _lock_name(name: str) -> str:
        if not name or len(name) > 200 or "\x00" in name:
            raise ContractError(
                "lock name must be 1..200 characters, without NUL",
                details=[ErrorDetail("/name", "invalid")],
            )
        return name

    @transient
    def acquire_lock(
        self,
        project: str,
        agent: str,
        name: str,
        *,
        ttl_seconds: float = 300.0,
        caller: Caller | None = None,
    ) -> LockRecord:
        """Take a named lock; its fencing token is one more than the lock's last. Held by
        another agent (or by you: renew instead) -> ConflictError naming the holder."""
        self._lock_name(name)
        now = self.clock.now()
        expires = now + self._ttl(ttl_seconds)
        with self._unit() as unit:
            me = self._agent(unit.tx, project, agent, caller)
            unit.tx.lock(f"fleetforge-coord-lock:{project}:{name}")
            row = unit.tx.fetchone(Q["lock"], {"project": project, "name": name})
            token = 1
            if row is not None:
                token = int(row[4]) + 1
                if row[6] == "held" and as_datetime(row[5]) > now:
                    who = "you" if row[2] == me.agent_id else row[3]
                    raise ConflictError(
                        f"lock '{name}' is held by {who} (token {row[4]}) until "
                        f"{iso(row[5])}" + ("; renew it instead" if who == "you" else ""),
                        holder=row[3],
                        project=project,
                    )
                if row[6] == "held":
                    self._append(
                        unit,
                        [
                            self._event(
                                "lock_expired",
                                now,
                                project=project,
                                name=name,
                                agent_id=row[2],
                                fencing_token=int(row[4]),
                            )
                        ],
                    )
            self._append(
                unit,
                [
                    self._event(
                        "lock_acquired",
                        now,
                        project=project,
                        name=name,
                        agent_id=me.agent_id,
                        callsign=me.callsign,
                        fencing_token=token,
                        expires_at=expires,
                    )
                ],
            )
            found = unit.tx.fetchone(Q["lock"], {"project": project, "name": name})
            assert found is not None
            return _lock(found)

    def _held(self, unit: Unit, me: Agent, name: str, token: int, now: datetime) -> None:
        unit.tx.lock(f"fleetforge-coord-lock:{me.project}:{name}")
        row = unit.tx.fetchone(Q["lock"], {"project": me.project, "name": name})
        if row is None:
            raise LeaseLostError(
                f"no lock '{name}' in project '{me.project}'",
                details=[ErrorDetail("/name", "not held")],
            )
        if (
            row[2] != me.agent_id
            or int(row[4]) != token
            or row[6] != "held"
            or as_datetime(row[5]) <= now
        ):
            raise LeaseLostError(
                f"stale fencing token {token} for lock '{name}' (current {row[4]}, "
                f"{row[6]} by {row[3]}): it was released, expired or taken again",
                details=[ErrorDetail("/fencing_token", "stale")],
                project=me.project,
            )

    @transient
    def renew_lock(
        self,
        project: str,
        agent: str,
        name: str,
        fencing_token: int,
        *,
        ttl_seconds: float = 300.0,
        caller: Caller | None = None,
    ) -> LockRecord:
        """Extend a lock you hold; a stale token (released, expired, taken again) is refused."""
        self._lock_name(name)
        now = self.clock.now()
        expires = now + self._ttl(ttl_seconds)
        with self._unit() as unit:
            me = self._agent(unit.tx, project, agent, caller)
            self._held(unit, me, name, fencing_token, now)
            self._append(
                unit,
                [
                    self._event(
                        "lock_renewed",
                        now,
                        project=project,
                        name=name,
                        agent_id=me.agent_id,
                        fencing_token=fencing_token,
                        expires_at=expires,
                    )
                ],
            )
            found = unit.tx.fetchone(Q["lock"], {"project": project, "name": name})
            assert found is not None
            return _lock(found)

    @transient
    def release_lock(
        self,
        project: str,
        agent: str,
        name: str,
        fencing_token: int,
        *,
        caller: Caller | None = None,
    ) -> LockRecord:
        """Release a lock you hold; a stale token is refused (LeaseLostError)."""
        self._lock_name(name)
        now = self.clock.now()
        with self._unit() as unit:
            me = self._agent(unit.tx, project, agent, caller)
            self._held(unit, me, name, fencing_token, now)
            self._append(
                unit,
                [
                    self._event(
                        "lock_released",
                        now,
                        project=project,
                        name=name,
                        agent_id=me.agent_id,
                        fencing_token=fencing_token,
                    )
                ],
            )
            found = unit.tx.fetchone(Q["lock"], {"project": project, "name": name})
            assert found is not None
            return _lock(found)

    def get_lock(self, project: str, name: str, *, caller: Caller | None = None) -> LockRecord:
        """A lock's state (a held lock past its expiry shows as expired)."""
        from fleetforge.errors import NotFoundError

        self._project(project, caller)
        self._lock_name(name)
        now = self.clock.now()
        with self.store.backend.read() as tx:
            row = tx.fetchone(Q["lock"], {"project": project, "name": name})
        if row is None:
            raise NotFoundError(
                f"no lock '{name}' in project '{project}'",
                details=[ErrorDetail("/name", "not found")],
            )
        record = _lock(row)
        if record.status == "held" and record.expires_at <= now:
            record.status = "expired"
        return record
