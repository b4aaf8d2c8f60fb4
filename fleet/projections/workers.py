"""Workers: one row per registered worker, its spec, status and when it was last seen."""

from __future__ import annotations

from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.store._base import EventRow, Tx, canonical_json

__all__ = ["WorkersProjection"]

Q = named_queries("projections.sql")


class WorkersProjection:
    """Rows of ``workers``."""

    name = "workers"
    tables = {"workers": ("worker_id",)}
    handles = frozenset(
        {"worker_registered", "worker_heartbeat", "worker_offline", "task_leased", "task_heartbeat"}
    )

    def apply(self, tx: Tx, event: EventRow) -> None:
        data = event.data
        if event.type == "worker_registered":
            worker = data["worker"]
            params = {"worker_id": worker["worker_id"], "spec": canonical_json(worker)}
            tx.execute(Q["worker_register"], {**params, "at": event.at})
        elif event.type == "worker_heartbeat":
            params = {"worker_id": data["worker_id"], "status": data["status"], "at": event.at}
            tx.execute(Q["worker_seen"], params)
        elif event.type == "worker_offline":
            params = {"worker_id": data["worker_id"], "status": "offline", "at": event.at}
            tx.execute(Q["worker_seen"], params)
        else:  # task_leased / task_heartbeat: a worker holding a lease is alive and busy
            params = {"worker_id": data["worker_id"], "status": "busy", "at": event.at}
            tx.execute(Q["worker_seen"], params)
