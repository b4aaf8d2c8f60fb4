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
    tables = {"tokens": ("token_id",), "revoked_capabilities": ("capability_id",)}
    handles = frozenset({"token_created", "token_revoked", "capability_revoked"})

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
                    "trust_level": data.get("trust_level") or "sandboxed",
                    "public_key": data.get("public_key"),
                    "projects": (
                        None if data.get("projects") is None else canonical_json(data["projects"])
                    ),
                },
            )
        elif event.type == "capability_revoked":
            params = {
                "capability_id": data["capability_id"],
                "at": event.at,
                "by": data.get("by"),
                "reason": data.get("reason") or "",
            }
            tx.execute(Q["capability_revoke"], params)
        else:
            tx.execute(Q["token_revoke"], {"token_id": data["token_id"], "at": event.at})
