"""The inbox: one row per task, re-enqueued per attempt; fencing tokens only ever grow."""

from __future__ import annotations

from collections.abc import Callable

from fleetforge.contracts import FleetTrustLevel
from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.store._base import EventRow, Tx, canonical_json, iso

__all__ = ["TasksProjection"]

Q = named_queries("projections.sql")


def _key(e: EventRow) -> dict[str, object]:
    return {"run_id": e.run_id, "task_id": e.data["task_id"]}


def _enqueued(tx: Tx, e: EventRow) -> None:
    task = e.data["task"]
    worker = task.get("worker") or {}
    security = task.get("security") or {}
    index = task.get("map_index")
    if index is not None:  # an item of a map step (its step's items_done: a schema trigger)
        params = {"run_id": e.run_id, "step_id": task["step_id"], "next_item": index + 1}
        tx.execute(Q["step_next_item"], params)
    tx.execute(
        Q["task_enqueue"],
        {
            "run_id": e.run_id,
            "task_id": task["task_id"],
            "step_id": task["step_id"],
            "map_index": task.get("map_index"),
            "entry_id": e.data["entry_id"],
            "attempt": e.data["attempt"],
            "spec": canonical_json(task),
            "role": worker.get("role"),
            "min_trust": max(
                FleetTrustLevel(worker.get("min_trust", "untrusted")).rank,
                FleetTrustLevel(security.get("min_trust", "untrusted")).rank,
            ),
            "needs_key": 1 if security.get("require_signed_receipts") else 0,
            "priority": 0,
            "at": e.at,
            "available_at": iso(e.data["available_at"]),
            "resume": None if e.data.get("resume") is None else canonical_json(e.data["resume"]),
        },
    )


def _leased(tx: Tx, e: EventRow) -> None:
    d = e.data
    params = {
        "worker_id": d["worker_id"],
        "fencing_token": d["fencing_token"],
        "credential": d.get("credential"),
    }
    expires = iso(d["expires_at"])
    tx.execute(Q["task_leased"], {**_key(e), **params, "at": e.at, "expires_at": expires})


def _heartbeat(tx: Tx, e: EventRow) -> None:
    tx.execute(Q["task_heartbeat"], {**_key(e), "expires_at": iso(e.data["expires_at"])})


def _lease_ended(status: str, expired: int) -> Callable[[Tx, EventRow], None]:
    def apply(tx: Tx, e: EventRow) -> None:
        tx.execute(Q["task_lease_ended"], {**_key(e), "status": status, "expired": expired})

    return apply


def _paused(tx: Tx, e: EventRow) -> None:
    d = e.data
    waiting = {
        "reason": d.get("reason", ""),
        "waiting_for": d.get("waiting_for", []),
        "since": e.at,
    }
    tx.execute(Q["task_paused"], {**_key(e), "waiting": canonical_json(waiting)})


def _failed(tx: Tx, e: EventRow) -> None:
    tx.execute(Q["task_failed"], {**_key(e), "kind": e.data["kind"], "message": e.data["message"]})


def _receipt_posted(tx: Tx, e: EventRow) -> None:
    receipt = e.data["receipt"]
    result = receipt["result"]
    if result.get("outcome") == "success":
        key = {"run_id": e.run_id, "task_id": receipt["task_id"]}
        tx.execute(Q["task_output"], {**key, "output": canonical_json(result.get("output"))})


def _receipt_recorded(tx: Tx, e: EventRow) -> None:
    receipt = e.data["receipt"]
    result = receipt["result"]
    output = result.get("output") if result.get("outcome") == "success" else None
    key = {"run_id": e.run_id, "task_id": receipt["task_id"]}
    accepted = 1 if receipt["status"] == "accepted" else 0
    if result.get("outcome") != "success" and not accepted:
        return  # a failure report: task_failed follows
    params = {**key, "output": canonical_json(output), "accepted": accepted}
    tx.execute(Q["task_receipt"], params)


def _accepted(tx: Tx, e: EventRow) -> None:
    tx.execute(Q["task_completed"], _key(e))


def _hold(held: int) -> Callable[[Tx, EventRow], None]:
    def apply(tx: Tx, e: EventRow) -> None:
        tx.execute(Q["tasks_hold"], {"run_id": e.run_id, "held": held})

    return apply


def _run_ended(tx: Tx, e: EventRow) -> None:
    tx.execute(Q["tasks_cancel_run"], {"run_id": e.run_id})


class TasksProjection:
    """Rows of ``tasks`` (the inbox and the leases)."""

    name = "tasks"
    tables = {"tasks": ("run_id", "task_id")}
    _handlers: dict[str, Callable[[Tx, EventRow], None]] = {
        "task_enqueued": _enqueued,
        "task_leased": _leased,
        "task_heartbeat": _heartbeat,
        "task_lease_expired": _lease_ended("expired", 1),
        "task_released": _lease_ended("released", 0),
        "task_paused": _paused,
        "task_failed": _failed,
        "receipt_recorded": _receipt_recorded,
        "receipt_posted": _receipt_posted,
        "receipt_accepted": _accepted,
        "run_paused": _hold(1),
        "run_resumed": _hold(0),
        "run_cancelled": _run_ended,
        "run_failed": _run_ended,
    }
    handles = frozenset(_handlers)

    def apply(self, tx: Tx, event: EventRow) -> None:
        self._handlers[event.type](tx, event)
