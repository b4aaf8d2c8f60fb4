"""Coordination: agents, messages and inboxes, reservations, locks, checkpoints and cursors
(issue 22), each row scoped by its project. Deterministic: it reads only the event."""

from __future__ import annotations

from typing import Any

from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.store._base import EventRow, Tx, canonical_json, iso

__all__ = ["CoordinationProjection", "static_prefix"]

Q = named_queries("coordination.sql")
_GLOB = "*?["


def static_prefix(pattern: str) -> str:
    """The folder part of a pattern before its first glob character, with its ``/``: every path
    the pattern matches lies in it (``src/app/*.py`` -> ``src/app/``; ``*.md`` -> ``""``; a
    literal ``src/app.py`` -> ``src/``). Indexed, so a path check reads only the reservations
    filed under the path's folders."""
    cut = min((i for i, ch in enumerate(pattern) if ch in _GLOB), default=len(pattern))
    head = pattern[:cut]
    return head[: head.rfind("/") + 1]


def _when(value: Any) -> str | None:
    return None if value is None else iso(value)


class CoordinationProjection:
    """Rows of the ``coord_*`` tables."""

    name = "coordination"
    tables = {
        "coord_agents": ("agent_id",),
        "coord_messages": ("message_id",),
        "coord_inbox": ("agent_id", "message_id"),
        "coord_reservations": ("reservation_id",),
        "coord_locks": ("project", "name"),
        "coord_checkpoints": ("checkpoint_id",),
        "coord_cursors": ("agent_id", "project", "name"),
    }
    handles = frozenset(
        {
            "agent_registered",
            "agent_deregistered",
            "message_sent",
            "message_read",
            "message_acknowledged",
            "reservation_granted",
            "reservation_renewed",
            "reservation_released",
            "reservation_expired",
            "lock_acquired",
            "lock_renewed",
            "lock_released",
            "lock_expired",
            "agent_checkpoint_saved",
            "cursor_moved",
        }
    )

    def apply(self, tx: Tx, event: EventRow) -> None:
        d, at, kind = event.data, event.at, event.type
        if kind == "agent_registered":
            tx.execute(
                Q["agent_register"],
                {
                    **_pick(d, "agent_id", "project", "callsign", "program", "model", "task"),
                    "at": at,
                },
            )
            return
        if kind == "agent_deregistered":
            tx.execute(Q["agent_deregister"], {"agent_id": d["agent_id"], "at": at})
            return
        if not kind.endswith("_expired"):
            tx.execute(Q["agent_seen"], {"agent_id": d["agent_id"], "at": at})
        if kind == "message_sent":
            expires = _when(d.get("expires_at"))
            tx.execute(
                Q["message_insert"],
                {
                    **_pick(
                        d,
                        "message_id",
                        "project",
                        "agent_id",
                        "sender",
                        "subject",
                        "body",
                        "importance",
                        "thread_id",
                        "reply_to",
                    ),
                    "recipients": canonical_json(d["recipients"]),
                    "addressed": canonical_json(d["to"]),
                    "ack_required": int(bool(d.get("ack_required"))),
                    "at": at,
                    "expires_at": expires,
                },
            )
            for agent_id in d["recipients"]:
                tx.execute(
                    Q["inbox_insert"],
                    {
                        "agent_id": agent_id,
                        **_pick(d, "message_id", "project", "importance", "thread_id"),
                        "expires_at": expires,
                    },
                )
        elif kind in ("message_read", "message_acknowledged"):
            query = Q["inbox_read"] if kind == "message_read" else Q["inbox_ack"]
            tx.execute(query, {**_pick(d, "agent_id", "message_id"), "at": at})
        elif kind == "reservation_granted":
            tx.execute(
                Q["reservation_insert"],
                {
                    **_pick(d, "reservation_id", "project", "agent_id", "callsign", "pattern"),
                    "prefix": static_prefix(d["pattern"]),
                    "exclusive": int(d["exclusive"]),
                    "reason": d.get("reason", ""),
                    "advisory": int(bool(d.get("advisory"))),
                    "at": at,
                    "expires_at": iso(d["expires_at"]),
                },
            )
        elif kind == "reservation_renewed":
            params = {"reservation_id": d["reservation_id"], "expires_at": iso(d["expires_at"])}
            tx.execute(Q["reservation_renew"], params)
        elif kind in ("reservation_released", "reservation_expired"):
            status = kind.removeprefix("reservation_")
            tx.execute(
                Q["reservation_end"],
                {"reservation_id": d["reservation_id"], "status": status, "at": at},
            )
        elif kind == "lock_acquired":
            tx.execute(
                Q["lock_acquire"],
                {
                    **_pick(d, "project", "name", "agent_id", "callsign", "fencing_token"),
                    "expires_at": iso(d["expires_at"]),
                },
            )
        elif kind == "lock_renewed":
            tx.execute(
                Q["lock_renew"], {**_pick(d, "project", "name"), "expires_at": iso(d["expires_at"])}
            )
        elif kind in ("lock_released", "lock_expired"):
            tx.execute(
                Q["lock_end"], {**_pick(d, "project", "name"), "status": kind.removeprefix("lock_")}
            )
        elif kind == "agent_checkpoint_saved":
            body = _pick(d, "summary", "state", "files", "next_steps")
            tx.execute(
                Q["checkpoint_insert"],
                {
                    **_pick(d, "checkpoint_id", "project", "agent_id", "reason"),
                    "body": canonical_json(body),
                    "state_digest": d.get("state_digest"),
                    "at": at,
                },
            )
        elif kind == "cursor_moved":
            tx.execute(
                Q["cursor_move"], {**_pick(d, "agent_id", "project", "name", "position"), "at": at}
            )


def _pick(data: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: data.get(name) for name in names}
