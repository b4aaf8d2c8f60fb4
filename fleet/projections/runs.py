"""The runs and steps projection: one row per run, one per step, from run_* and step_* events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.store._base import EventRow, Tx, canonical_json

__all__ = ["RunsProjection"]

Q = named_queries("projections.sql")

_FINAL = {"run_completed": "completed", "run_failed": "failed", "run_cancelled": "cancelled"}
_STEP_FINAL = {"step_completed": "completed", "step_failed": "failed", "step_skipped": "skipped"}


def _submitted(tx: Tx, e: EventRow) -> None:
    spec = e.data["spec"]
    tx.execute(
        Q["run_insert"],
        {
            "run_id": e.run_id,
            "name": spec["name"],
            "seed": spec["seed"],
            "labels": canonical_json(spec.get("labels", {})),
            "spec": canonical_json(spec),
            "outputs": canonical_json({}),
            "idempotency_key": e.data.get("idempotency_key"),
            "at": e.at,
            "trace": canonical_json(e.data["trace"]) if e.data.get("trace") else None,
        },
    )
    for position, step in enumerate(spec["steps"]):
        tx.execute(
            Q["step_insert"],
            {
                "run_id": e.run_id,
                "step_id": step["id"],
                "position": position,
                "type": step["type"],
                "task_ids": canonical_json([]),
            },
        )


def _run_status(status: str) -> Callable[[Tx, EventRow], None]:
    def apply(tx: Tx, e: EventRow) -> None:
        tx.execute(Q["run_set_status"], {"run_id": e.run_id, "status": status, "at": e.at})

    return apply


def _started(tx: Tx, e: EventRow) -> None:
    tx.execute(Q["run_started"], {"run_id": e.run_id, "at": e.at})


def _finished(tx: Tx, e: EventRow) -> None:
    outputs = e.data.get("outputs", {}) if e.type == "run_completed" else {}
    error = e.data.get("reason") if e.type == "run_failed" else None
    params = {"run_id": e.run_id, "status": _FINAL[e.type], "at": e.at, "error": error}
    if e.type == "run_completed":
        tx.execute(Q["run_finished"], {**params, "outputs": canonical_json(outputs)})
    else:  # keep the outputs gathered so far
        row = tx.fetchone("SELECT outputs FROM runs WHERE run_id = :run_id", params)
        kept = tx.load_json(row[0]) if row else {}
        tx.execute(Q["run_finished"], {**params, "outputs": canonical_json(kept)})


def _step_status(status: str) -> Callable[[Tx, EventRow], None]:
    def apply(tx: Tx, e: EventRow) -> None:
        params = {"run_id": e.run_id, "step_id": e.data["step_id"], "status": status}
        tx.execute(Q["step_set_status"], params)

    return apply


def _step_reset(tx: Tx, e: EventRow) -> None:
    tx.execute(Q["step_reset"], {"run_id": e.run_id, "step_id": e.data["step_id"]})


def _resumed(tx: Tx, e: EventRow) -> None:
    tx.execute(Q["run_reopened"], {"run_id": e.run_id, "at": e.at})


def _step_started(tx: Tx, e: EventRow) -> None:
    key = {"run_id": e.run_id, "step_id": e.data["step_id"]}
    row = tx.fetchone(Q["step_task_ids"], key)
    task_ids: list[Any] = tx.load_json(row[0]) if row else []
    if e.data["task_id"] not in task_ids:
        task_ids.append(e.data["task_id"])
    params = {**key, "attempt": e.data["attempt"], "task_ids": canonical_json(task_ids)}
    tx.execute(Q["step_started"], {**params, "at": e.at})


def _leased(tx: Tx, e: EventRow) -> None:
    """A lease starts its step's attempt unless that attempt is running already (logs before
    0.2 have no ``step_id`` here and record a ``step_started`` instead)."""
    step_id = e.data.get("step_id")
    if step_id is None:
        return
    key = {"run_id": e.run_id, "step_id": step_id}
    task_id = e.data["task_id"]
    if task_id == f"{e.run_id}.{step_id}":  # the step's only task (not a map item)
        params = {**key, "attempt": e.data["attempt"], "task_ids": canonical_json([task_id])}
        tx.execute(Q["step_lease_single"], {**params, "at": e.at})
        return
    row = tx.fetchone(tx.for_update(Q["step_lease"]), key)  # concurrent leases of a map step
    if row is None:
        return
    status, attempt = row[0], int(row[1])
    if status == "running" and attempt >= e.data["attempt"]:
        return
    task_ids: list[Any] = tx.load_json(row[2])
    if e.data["task_id"] not in task_ids:
        task_ids.append(e.data["task_id"])
    params = {**key, "attempt": e.data["attempt"], "task_ids": canonical_json(task_ids)}
    tx.execute(Q["step_started"], {**params, "at": e.at})


def _step_finished(tx: Tx, e: EventRow) -> None:
    output = e.data.get("output") if e.type == "step_completed" else None
    tx.execute(
        Q["step_finished"],
        {
            "run_id": e.run_id,
            "step_id": e.data["step_id"],
            "status": _STEP_FINAL[e.type],
            "output": None if output is None else canonical_json(output),
            "failure_kind": e.data.get("kind"),
            "error": e.data.get("message") or e.data.get("reason"),
            "at": e.at,
        },
    )


def _usage(tx: Tx, e: EventRow) -> None:
    """Add a receipt's usage to its run's totals (visible in get_run)."""
    usage = e.data["receipt"].get("usage") or {}
    keys = ("input_tokens", "output_tokens", "total_tokens", "cost_usd")
    if not any(usage.get(k) for k in keys):
        return  # nothing to add
    row = tx.fetchone(Q["run_usage"], {"run_id": e.run_id})
    totals: dict[str, Any] = tx.load_json(row[0]) if row else {}
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        totals[key] = int(totals.get(key, 0)) + int(usage.get(key) or 0)
    if usage.get("cost_usd") is not None:
        totals["cost_usd"] = round(float(totals.get("cost_usd", 0.0)) + usage["cost_usd"], 9)
    tx.execute(Q["run_set_usage"], {"run_id": e.run_id, "usage": canonical_json(totals)})


class RunsProjection:
    """Rows of ``runs`` and ``steps``."""

    name = "runs"
    tables = {"runs": ("run_id",), "steps": ("run_id", "step_id")}
    _handlers: dict[str, Callable[[Tx, EventRow], None]] = {
        "run_submitted": _submitted,
        "run_started": _started,
        "run_paused": _run_status("paused"),
        "run_resumed": _resumed,
        "run_completed": _finished,
        "run_failed": _finished,
        "run_cancelled": _finished,
        "step_ready": _step_status("ready"),
        "breakpoint_hit": _step_status("waiting"),
        "task_paused": _step_status("waiting"),
        "step_started": _step_started,
        "task_leased": _leased,
        "step_completed": _step_finished,
        "step_failed": _step_finished,
        "step_skipped": _step_finished,
        "step_reset": _step_reset,
        "receipt_posted": _usage,
        "receipt_recorded": _usage,
    }
    handles = frozenset(_handlers)

    def apply(self, tx: Tx, event: EventRow) -> None:
        self._handlers[event.type](tx, event)
