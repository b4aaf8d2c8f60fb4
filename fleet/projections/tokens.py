"""Tokens: one row per bearer token ever created (its SHA-256, never the token), revoked ones
kept with the time they were revoked."""

from __future__ import annotations

from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.store._base import EventRow, Tx, canonical_json

__all__ = ["TokensProjection"]

Q = named_queries("projections.sql")


class TokensProjection:
    """Rows of ``tokens``."""

    name = "tokens"
    tables = {"tokens": ("token_id",)}
    handles = frozenset({"token_created", "token_revoked"})

    def apply(self, tx: Tx, event: EventRow) -> None:
        data = event.data
        if event.type == "token_created":
            tx.execute(
                Q["token_insert"],
                {
                    "token_id": data["token_id"],
                    "name": data["name"],
                    "sha256": data["sha256"],
                    "scopes": canonical_json(data["scopes"]),
                    "worker_id": data.get("worker_id"),
                    "at": event.at,
                    "by": data.get("by"),
                    "projects": (
                        None if data.get("projects") is None else canonical_json(data["projects"])
                    ),
                },
            )
        else:
            tx.execute(Q["token_revoke"], {"token_id": data["token_id"], "at": event.at})
