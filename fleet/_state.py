"""Typed reads of projection rows, inside a service transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.store import Tx
from fleetforge.fleet.store._base import json_loads

__all__ = [
    "RunHead",
    "RunState",
    "StepState",
    "TaskState",
    "at",
    "load_outputs",
    "load_run",
    "load_run_head",
    "load_statuses",
    "load_step_tasks",
    "load_steps",
    "load_task",
    "load_task_and_run",
    "load_task_for_receipt",
    "task_from_row",
    "to_dt",
]

Q = named_queries("service.sql")


def at(value: Any) -> datetime:
    """A NOT NULL timestamp column as an aware datetime."""
    found = to_dt(value)
    if found is None:
        raise ValueError("expected a timestamp, got NULL")
    return found


def to_dt(value: Any) -> datetime | None:
    """A timestamp column as an aware datetime (SQLite stores text, PostgreSQL timestamptz)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(value)


@dataclass
class RunState:
    run_id: str
    name: str
    status: str
    seed: int
    labels: dict[str, str]
    spec: dict[str, Any]
    outputs: dict[str, Any]
    error: str | None
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    usage: dict[str, Any]


@dataclass
class StepState:
    step_id: str
    position: int
    type: str
    status: str
    attempt: int
    task_ids: list[str]
    output: Any
    failure_kind: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass
class TaskState:
    """A row of ``tasks``. Its spec (JSON, ~1 KB) is decoded on first use: a lease check, a
    heartbeat and a receipt never need it (the service keeps parsed specs by entry)."""

    run_id: str
    task_id: str
    step_id: str
    map_index: int | None
    entry_id: str
    attempt: int
    status: str
    spec_json: Any
    worker_id: str | None
    fencing_token: int
    leased_at: datetime | None
    lease_expires_at: datetime | None
    expiries: int
    output: Any
    enqueued_at: datetime
    available_at: datetime
    resume: dict[str, Any] | None = None  # {"value": ...} once resume_run gave it a value
    lease_credential: str | None = None  # the unbound token that took the lease, if one did
    run_status: str | None = None  # read with the task when the query joins its run
    _spec: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def spec(self) -> dict[str, Any]:
        if self._spec is None:
            self._spec = (
                json_loads(self.spec_json) if isinstance(self.spec_json, str) else (self.spec_json)
            )
        return self._spec


def load_run(tx: Tx, run_id: str) -> RunState | None:
    row = tx.fetchone(Q["run"], {"run_id": run_id})
    if row is None:
        return None
    j = tx.load_json
    return RunState(
        row[0],
        row[1],
        row[2],
        int(row[3]),
        j(row[4]),
        j(row[5]),
        j(row[6]),
        row[7],
        row[8],
        at(row[9]),
        at(row[10]),
        to_dt(row[11]),
        to_dt(row[12]),
        j(row[13]),
    )


def load_steps(tx: Tx, run_id: str) -> dict[str, StepState]:
    j = tx.load_json
    return {
        r[0]: StepState(
            r[0],
            int(r[1]),
            r[2],
            r[3],
            int(r[4]),
            j(r[5]),
            None if r[6] is None else j(r[6]),
            r[7],
            r[8],
            to_dt(r[9]),
            to_dt(r[10]),
        )
        for r in tx.fetchall(Q["steps"], {"run_id": run_id})
    }


def task_from_row(tx: Tx, r: tuple[Any, ...]) -> TaskState:
    j = tx.load_json
    output = None if r[13] is None else j(r[13])
    run_status = r[18] if len(r) > 18 else None
    return TaskState(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        int(r[5]),
        r[6],
        r[7],
        r[8],
        int(r[9]),
        to_dt(r[10]),
        to_dt(r[11]),
        int(r[12]),
        output,
        at(r[14]),
        at(r[15]),
        None if r[16] is None else j(r[16]),
        r[17],
        run_status,
    )


def load_task(tx: Tx, task_id: str, *, lock: bool = False) -> TaskState | None:
    """The task; ``lock`` holds its row to the end of the transaction."""
    sql = tx.for_update(Q["task"]) if lock else Q["task"]
    row = tx.fetchone(sql, {"task_id": task_id})
    return None if row is None else task_from_row(tx, row)


def load_task_for_receipt(tx: Tx, task_id: str, receipt_id: str) -> tuple[TaskState | None, bool]:
    """The task, locked, and whether its receipt ``receipt_id`` is stored already."""
    params = {"task_id": task_id, "run_id": task_id.split(".", 1)[0], "receipt_id": receipt_id}
    row = tx.fetchone(tx.for_update(Q["task_for_receipt"]), params)
    if row is None:
        return None, False
    return task_from_row(tx, row[:18]), bool(row[18])


def load_task_and_run(tx: Tx, task_id: str, run_id: str) -> TaskState | None:
    """The task with its run's status (``run_status``), in one read (no lock)."""
    row = tx.fetchone(Q["task_and_run"], {"task_id": task_id, "run_id": run_id})
    return None if row is None else task_from_row(tx, row)


def load_step_tasks(tx: Tx, run_id: str, step_id: str) -> list[TaskState]:
    """The tasks of one step (one, or a map step's items in order)."""
    rows = tx.fetchall(Q["step_tasks"], {"run_id": run_id, "step_id": step_id})
    return [task_from_row(tx, r) for r in rows]


@dataclass(frozen=True)
class RunHead:
    """What most decisions need of a run: its status (no JSON decoded)."""

    run_id: str
    status: str
    seed: int


def load_run_head(tx: Tx, run_id: str, *, lock: bool = False) -> RunHead | None:
    """The run's head; ``lock`` holds its row to the end of the transaction."""
    sql = tx.for_update(Q["run_head"]) if lock else Q["run_head"]
    row = tx.fetchone(sql, {"run_id": run_id})
    return None if row is None else RunHead(row[0], row[1], int(row[2]))


def load_statuses(tx: Tx, run_id: str) -> dict[str, tuple[str, int]]:
    """Step id → (status, attempt), in spec order, without decoding any JSON."""
    return {r[0]: (r[1], int(r[2])) for r in tx.fetchall(Q["step_statuses"], {"run_id": run_id})}


def load_outputs(tx: Tx, run_id: str) -> dict[str, Any]:
    """Outputs of the run's completed steps."""
    rows = tx.fetchall(Q["step_outputs"], {"run_id": run_id})
    return {r[0]: None if r[1] is None else tx.load_json(r[1]) for r in rows}
