"""The artifacts projection: one metadata row per stored digest (the first one wins)."""

from __future__ import annotations

from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.store._base import EventRow, Tx, canonical_json, iso

__all__ = ["ArtifactsProjection"]

Q = named_queries("projections.sql")


class ArtifactsProjection:
    """Rows of ``artifacts``, from ``artifact_stored`` events."""

    name = "artifacts"
    tables = {"artifacts": ("digest",)}
    handles = frozenset({"artifact_stored"})

    def apply(self, tx: Tx, event: EventRow) -> None:
        artifact = event.data["artifact"]
        tx.execute(
            Q["artifact_insert"],
            {
                "digest": artifact["digest"],
                "size_bytes": artifact["size_bytes"],
                "media_type": artifact["media_type"],
                "kind": artifact.get("kind", "file"),
                "name": artifact.get("name"),
                "path": artifact["path"],
                "created_at": iso(artifact["created_at"]),
                "run_id": artifact.get("run_id"),
                "step_id": artifact.get("step_id"),
                "task_id": artifact.get("task_id"),
                "labels": canonical_json(artifact.get("labels", {})),
            },
        )
