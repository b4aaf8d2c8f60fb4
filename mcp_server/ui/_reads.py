"""What the dashboard's pages read: runs pages, a run's receipts, attempts and recent events.

Synchronous (the store's drivers are): the routes run these in a worker thread. They read the
projections (``runs``, ``steps``, ``receipts``) and, for a run's attempts and events, that
run's slice of the log through the ``events_by_run`` index; none scans every run.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleetforge.contracts import Run
from fleetforge.fleet._state import to_dt
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store._base import EventRow, Tx
from fleetforge.operations.results import WorkerRecord

__all__ = [
    "Attempt",
    "ReceiptRow",
    "RunRow",
    "RunView",
    "attempts_of",
    "recent_events",
    "run_view",
    "runs_page",
    "workers_view",
]

_RUNS_PAGE = """\
SELECT run_id, name, status, labels, created_at, updated_at FROM runs
WHERE (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:cursor AS TEXT) IS NULL OR run_id < :cursor)
  AND (CAST(:pattern AS TEXT) IS NULL OR name LIKE :pattern ESCAPE '!'){label}
ORDER BY run_id DESC LIMIT :limit"""
# one label in SQL (the rest, if any, are checked on the rows read)
_LABEL = {
    "sqlite": "\n  AND json_extract(labels, :label_path) = :label_value",
    "postgres": "\n  AND labels ->> :label_key = :label_value",
}

_STEP_COUNTS = """\
SELECT run_id, status, COUNT(*) FROM steps WHERE {runs} GROUP BY run_id, status"""

_RECEIPTS = """\
SELECT receipt_id, task_id, step_id, attempt, worker_id, status, {artifacts}, score, hash,
       prev_hash, posted_at, attestation
FROM receipts WHERE run_id = :run_id ORDER BY position"""
# only the artifacts of each receipt (not its output) leave the database
_RECEIPT_ARTIFACTS = {
    "sqlite": "json_extract(receipt, '$.artifacts')",
    "postgres": "receipt -> 'artifacts'",
}

_RECENT = """\
SELECT seq, event_id, run_id, type, at, data FROM events
WHERE run_id = :run_id{horizon} ORDER BY seq DESC LIMIT :limit"""

_ATTEMPT_ROWS = """\
SELECT seq, event_id, run_id, type, at, data FROM events
WHERE run_id = :run_id AND {types} ORDER BY seq"""

_LEASED = "SELECT worker_id, run_id, task_id, step_id FROM tasks WHERE status = 'leased'"

_ATTEMPT_TYPES: tuple[str, ...] = (
    "task_leased",
    "receipt_recorded",
    "receipt_posted",
    "task_failed",
    "task_lease_expired",
    "task_released",
    "task_paused",
)


@dataclass(frozen=True)
class RunRow:
    run_id: str
    name: str
    status: str
    labels: dict[str, str]
    created_at: datetime | None
    updated_at: datetime | None
    steps: dict[str, int]  # status -> how many


def runs_page(
    service: SyncFleetService,
    *,
    status: str | None = None,
    name: str | None = None,
    labels: dict[str, str] | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[RunRow], str | None]:
    """Runs, newest first, filtered; returns the page and the cursor of the next one."""
    pattern = None
    if name:
        escaped = name.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        pattern = f"%{escaped}%"
    found: list[RunRow] = []
    after = cursor or None
    backend = service.store.backend
    extra: dict[str, Any] = {}
    sql = _RUNS_PAGE.format(label="")
    if labels and backend.name in _LABEL:
        key, value = next(iter(labels.items()))
        sql = _RUNS_PAGE.format(label=_LABEL[backend.name])
        if backend.name == "sqlite":
            extra = {"label_path": '$."' + key.replace('"', '\\"') + '"', "label_value": value}
        else:
            extra = {"label_key": key, "label_value": value}
    with backend.read() as tx:
        while len(found) <= limit:
            params = {"status": status, "cursor": after, "pattern": pattern, "limit": limit * 2}
            rows = tx.fetchall(sql, params | extra)
            for r in rows:
                after = r[0]
                run_labels = tx.load_json(r[3])
                if labels and any(run_labels.get(k) != v for k, v in labels.items()):
                    continue
                found.append(RunRow(r[0], r[1], r[2], run_labels, to_dt(r[4]), to_dt(r[5]), {}))
                if len(found) > limit:
                    break
            if len(rows) < limit * 2:
                break
        more = len(found) > limit
        found = found[:limit]
        if found:
            params = {}
            where = service.store.backend.in_list("run_id", [r.run_id for r in found], params)
            for run_id, step_status, count in tx.fetchall(_STEP_COUNTS.format(runs=where), params):
                next(r for r in found if r.run_id == run_id).steps[step_status] = int(count)
    return found, (found[-1].run_id if more and found else None)


@dataclass(frozen=True)
class ReceiptRow:
    receipt_id: str
    task_id: str
    step_id: str
    attempt: int
    worker_id: str
    status: str
    score: Any
    hash: str
    prev_hash: str | None
    posted_at: datetime | None
    artifacts: list[dict[str, Any]]
    chain_ok: bool  # prev_hash names the receipt posted before it in this run
    signature: str = "unsigned"  # "signed", "unsigned", or why its attestation does not verify


@dataclass(frozen=True)
class Attempt:
    step_id: str
    task_id: str
    attempt: int
    worker_id: str | None
    start: datetime
    end: datetime | None
    outcome: str  # running, accepted, rejected, pending, failed, expired, released, paused


@dataclass(frozen=True)
class RunView:
    run: Run
    receipts: list[ReceiptRow]
    attempts: list[Attempt]
    events: list[EventRow]  # the most recent, oldest first
    horizon: int  # the live stream continues after this seq


def run_view(service: SyncFleetService, run_id: str, *, events: int = 100) -> RunView:
    """Everything a run's page shows (NotFoundError for an unknown run)."""
    run = service.get_run(run_id)
    task_steps = {t: s.step_id for s in run.steps for t in s.task_ids}
    with service.store.backend.read() as tx:
        receipts: list[ReceiptRow] = []
        previous: str | None = None
        backend = service.store.backend
        artifacts_of = _RECEIPT_ARTIFACTS.get(backend.name, "receipt")
        for r in tx.fetchall(_RECEIPTS.format(artifacts=artifacts_of), {"run_id": run_id}):
            body = tx.load_json(r[6]) if r[6] is not None else None
            if isinstance(body, dict):  # a backend without the JSON operator: the receipt
                body = body.get("artifacts")
            receipts.append(
                ReceiptRow(
                    receipt_id=r[0],
                    task_id=r[1],
                    step_id=r[2],
                    attempt=int(r[3]),
                    worker_id=r[4],
                    status=r[5],
                    score=None if r[7] is None else tx.load_json(r[7]),
                    hash=r[8],
                    prev_hash=r[9],
                    posted_at=to_dt(r[10]),
                    artifacts=list(body or []),
                    chain_ok=r[9] == previous,
                    signature=signature_status(r[8], r[11], to_dt(r[10]), tx),
                )
            )
            previous = r[8]
        recent, horizon = recent_events(service, run_id, limit=events, tx=tx)
        attempts = attempts_of(service, run_id, task_steps, receipts, tx=tx)
    return RunView(run, receipts, attempts, recent, horizon)


_SIGNATURES: dict[str, str] = {}  # receipt hash -> status (a receipt never changes)
_TRUST: dict[tuple[str, int], Any] = {}  # (trust file, its mtime) -> its parsed keys


def _trusted_keys() -> Any:
    """This machine's trust store, parsed once per version of the file."""
    from fleetforge.fleet.settings import fleet_home
    from fleetforge.fleet.trust.keys import TRUST_FILE, TrustStore, keys_dir
    from fleetforge.fleet.trust.verify import _Keys

    path = keys_dir(fleet_home()) / TRUST_FILE
    try:
        stamp = (str(path), path.stat().st_mtime_ns)
    except OSError:
        stamp = (str(path), 0)
    keys = _TRUST.get(stamp)
    if keys is None:
        _TRUST.clear()
        keys = _TRUST[stamp] = _Keys(TrustStore.load(path))
    return keys


def signature_status(
    receipt_hash: str, attestation: Any, posted_at: datetime | None, tx: Tx
) -> str:
    """Whether a receipt's DSSE attestation verifies against this machine's trust store
    (``FLEETFORGE_HOME/keys/trust.json``): ``signed``, ``unsigned``, or what is wrong.
    Verified once per receipt per process."""
    if attestation is None:
        return "unsigned"
    known = _SIGNATURES.get(receipt_hash)
    if known is None:
        at = posted_at.isoformat() if posted_at else None  # the key's window is checked at it
        envelope = tx.load_json(attestation)
        failures = _trusted_keys().verify(envelope, at, receipt_hash, "signature")
        known = "signed" if not failures else failures[0].message
        if len(_SIGNATURES) > 100_000:
            _SIGNATURES.clear()
        _SIGNATURES[receipt_hash] = known
    return known


def recent_events(
    service: SyncFleetService, run_id: str, *, limit: int, tx: Tx | None = None
) -> tuple[list[EventRow], int]:
    """The run's last ``limit`` events (oldest first) and the seq a follower continues after."""
    backend = service.store.backend
    horizon = backend.horizon()
    params: dict[str, Any] = {"run_id": run_id, "limit": limit}
    clause = ""
    if horizon is not None:
        clause, params["horizon"] = " AND seq <= :horizon", horizon
    with nullcontext(tx) if tx is not None else backend.read() as reading:
        found = reading.fetchall(_RECENT.format(horizon=clause), params)
    rows = [backend.decode_row(r) for r in reversed(found)]
    last = rows[-1].seq if rows else 0
    return rows, max(last, horizon or 0) if horizon is not None else last


def attempts_of(
    service: SyncFleetService,
    run_id: str,
    task_steps: dict[str, str],
    receipts: list[ReceiptRow] | None = None,
    *,
    tx: Tx | None = None,
) -> list[Attempt]:
    """Every attempt of every task of the run, from its lease to its end (the Gantt chart).

    Leases and the ends that are not receipts come from the run's events; an attempt that a
    receipt ended takes its end from ``receipts`` (the projection), so the large
    ``receipt_recorded`` events are not read again."""
    by_attempt = {(r.task_id, r.attempt): r for r in receipts or ()}
    if receipts is None:
        wanted = _ATTEMPT_TYPES
    else:
        wanted = tuple(t for t in _ATTEMPT_TYPES if not t.startswith("receipt_"))
    open_: dict[str, dict[str, Any]] = {}
    done: list[Attempt] = []

    def close(started: dict[str, Any], end: datetime | None, outcome: str) -> None:
        receipt = by_attempt.get((started["task_id"], started["attempt"]))
        if receipt is not None and receipt.posted_at is not None:
            end, outcome = receipt.posted_at, receipt.status
        done.append(Attempt(**started, end=end, outcome=outcome))

    backend = service.store.backend
    params: dict[str, Any] = {"run_id": run_id}
    sql = _ATTEMPT_ROWS.format(types=backend.in_list("type", wanted, params))
    with nullcontext(tx) if tx is not None else backend.read() as reading:
        found = reading.fetchall(sql, params)
    for raw in found:
        row = backend.decode_row(raw)
        data, at = row.data, to_dt(row.at)
        if row.type == "task_leased":
            task_id = data["task_id"]
            if task_id in open_:  # ended by a receipt (not among these events)
                close(open_.pop(task_id), None, "running")
            open_[task_id] = {
                "step_id": data.get("step_id") or task_steps.get(task_id, "?"),
                "task_id": task_id,
                "attempt": int(data.get("attempt", 1)),
                "worker_id": data.get("worker_id"),
                "start": at,
            }
            continue
        if row.type in ("receipt_recorded", "receipt_posted"):
            receipt = data.get("receipt", {})
            task_id = receipt.get("task_id", "")
            recorded = row.type == "receipt_recorded"
            outcome = receipt.get("status", "pending") if recorded else "pending"
        else:
            task_id = data.get("task_id", "")
            outcome = {
                "task_failed": "failed",
                "task_lease_expired": "expired",
                "task_released": "released",
                "task_paused": "paused",
            }[row.type]
        started = open_.pop(task_id, None)
        if started is not None and at is not None:
            close(started, at, outcome)
    for started in open_.values():
        close(started, None, "running")
    done.sort(key=lambda a: (a.start, a.task_id))
    return done


def workers_view(
    service: SyncFleetService,
) -> tuple[list[WorkerRecord], dict[str, list[tuple[str, str, str]]]]:
    """The registered workers, and the tasks each holds (run id, task id, step id)."""
    workers = service.list_workers()
    holding: dict[str, list[tuple[str, str, str]]] = {}
    with service.store.backend.read() as tx:
        for worker_id, run_id, task_id, step_id in tx.fetchall(_LEASED, {}):
            holding.setdefault(worker_id, []).append((run_id, task_id, step_id))
    return workers, holding
