"""Batch operations: many receipts (with the next leases), heartbeats or envelopes in one
transaction, each item all or nothing in a savepoint of its own.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any

from pydantic import BaseModel, ValidationError

from fleetforge._jsondomain import DomainChecked
from fleetforge.contracts import FleetLease, FleetReceipt
from fleetforge.contracts.envelope import AgentRunEnvelope
from fleetforge.errors import (
    ContractError,
    FleetForgeError,
    ForbiddenError,
    LeaseLostError,
    NotFoundError,
    StoreError,
    UsageError,
)
from fleetforge.fleet._state import RunHead, TaskState, task_from_row
from fleetforge.fleet.access import Caller, Refusal
from fleetforge.fleet.service.budgets import reports_usage
from fleetforge.fleet.service.core import Q, R, retrying, run_of, unit_cache
from fleetforge.fleet.service.receipts import Completion, Receipts, completion
from fleetforge.fleet.service.steps import RUN_ENDS
from fleetforge.fleet.store import EventRow, Unit
from fleetforge.operations.results import (
    CompletedTasks,
    HeartbeatResults,
    ItemFailure,
    PostedEvent,
    PostedEvents,
)
from fleetforge.validation import pydantic_details


class Batches(Receipts):
    """Batch operations: many receipts (with the next leases), heartbeats or envelopes in one"""

    @retrying
    def complete_tasks(
        self,
        items: Sequence[Any],
        *,
        worker_id: str | None = None,
        lease_next: int = 0,
        lease_seconds: float = 30.0,
        caller: Caller | None = None,
    ) -> CompletedTasks:
        """Post success receipts for several leased tasks, each with the envelopes that go
        before it, and lease up to ``lease_next`` more tasks for ``worker_id``: one write
        transaction. Each item is all or nothing (a savepoint): one that fails (a stale lease,
        a bad envelope) is in ``failures`` and changes nothing, the others are recorded.

        ``items``: objects with ``task_id``, ``fencing_token``, ``output`` and optionally
        ``usage``, ``artifacts``, ``receipt_id``, ``envelopes`` (a
        :class:`~fleetforge.operations.batches.TaskCompletion`, or anything shaped like one).
        """
        if not 0 <= lease_next <= 100:
            raise UsageError(f"lease_next must be between 0 and 100, got {lease_next}")
        worker = self._batch_worker(worker_id, caller, lease_next)
        items = _parsed(items, "TaskCompletion")
        failures: list[ItemFailure] = []
        prepared: dict[int, Completion] = {}
        for index, item in enumerate(items):
            checked = isinstance(item, DomainChecked)  # the in-process Worker checked them
            try:
                envelopes = [
                    e if checked and isinstance(e, AgentRunEnvelope) else self._envelope(e)
                    for e in getattr(item, "envelopes", None) or ()
                ]
                prepared[index] = completion(
                    item.task_id,
                    item.fencing_token,
                    item.output,
                    getattr(item, "usage", None),
                    getattr(item, "artifacts", None) or (),
                    getattr(item, "receipt_id", None),
                    envelopes,
                    getattr(item, "worker_signature", None),
                )
            except FleetForgeError as exc:
                failures.append(_failure(index, item.task_id, exc))
        receipts: list[FleetReceipt | None] = [None] * len(items)
        refused: list[Refusal] = []
        self.expire_leases()
        with self.store.transaction() as unit:
            self._prefetch_receipts(unit, [d.task_id for d in prepared.values()])
            unit.deferred[RUN_ENDS] = set()
            for index in sorted(prepared, key=lambda i: prepared[i].task_id):  # runs in order
                done = prepared[index]
                work = functools.partial(self._complete_in, unit, done, caller)
                receipts[index] = self._item(unit, index, done.task_id, failures, refused, work)
            self._finish_runs(unit, self.clock.now())
            leased = (
                self._lease_in(unit, worker, lease_seconds, lease_next, caller) if worker else []
            )
        self._record_refusals(refused)
        failures.sort(key=lambda f: f.index)
        return CompletedTasks(receipts=receipts, failures=failures, leased=leased)

    @retrying
    def heartbeat_many(
        self,
        items: Sequence[Any],
        *,
        lease_seconds: float = 30.0,
        caller: Caller | None = None,
    ) -> HeartbeatResults:
        """Keep several leases (items with ``task_id`` and ``fencing_token``): one read for
        all, and one write transaction for those that need extending (see :meth:`heartbeat`).
        A lease that is lost is in ``failures`` (stop working on that task)."""
        if lease_seconds <= 0:
            raise UsageError(f"lease_seconds must be positive, got {lease_seconds}")
        self.expire_leases()
        items = _parsed(items, "LeaseItem")
        now = self.clock.now()
        leases: list[FleetLease | None] = [None] * len(items)
        failures: list[ItemFailure] = []
        extend: list[int] = []
        with self.store.backend.read() as tx:
            params: dict[str, Any] = {}
            ids = sorted({item.task_id for item in items})
            sql = Q["tasks_and_runs"].format(
                tasks=self.store.backend.in_list("task_id", ids, params)
            )
            read = {
                task.task_id: task
                for task in (task_from_row(tx, r) for r in tx.fetchall(sql, params))
            }
            for index, item in enumerate(items):
                try:
                    kept = self._lease_as_it_stands(
                        tx, item.task_id, item.fencing_token, lease_seconds, caller, now, read=read
                    )
                except FleetForgeError as exc:
                    failures.append(_failure(index, item.task_id, exc))
                    continue
                if kept is None:
                    extend.append(index)
                leases[index] = kept
            revoked = self._revoked_among(tx, [items[i].task_id for i, k in enumerate(leases) if k])
            for index, kept in enumerate(leases):
                if kept is not None and items[index].task_id in revoked:
                    ids = [revoked[items[index].task_id]]
                    leases[index] = kept.model_copy(update={"revoked_capabilities": ids})
        refused: list[Refusal] = []
        if extend:
            with self.store.transaction() as unit:
                for index in sorted(extend, key=lambda i: items[i].task_id):
                    item = items[index]
                    task_id, token = item.task_id, item.fencing_token
                    work = functools.partial(
                        self._heartbeat_in, unit, task_id, token, lease_seconds, caller, now
                    )
                    extended = self._item(unit, index, item.task_id, failures, refused, work)
                    if isinstance(extended, LeaseLostError):  # its task failed (committed)
                        failures.append(_failure(index, item.task_id, extended))
                    else:
                        leases[index] = extended
        self._record_refusals(refused)
        failures.sort(key=lambda f: f.index)
        return HeartbeatResults(leases=leases, failures=failures)

    @retrying
    def post_events(self, items: Sequence[Any], *, caller: Caller | None = None) -> PostedEvents:
        """Record several envelopes (items with ``task_id``, ``fencing_token``, ``envelope``)
        of leased tasks in one write transaction, in order; one that is refused is in
        ``failures`` and the others are recorded."""
        items = _parsed(items, "TaskEnvelope")
        failures: list[ItemFailure] = []
        envelopes: dict[int, AgentRunEnvelope] = {}
        for index, item in enumerate(items):
            try:
                envelopes[index] = self._envelope(item.envelope)
            except FleetForgeError as exc:
                failures.append(_failure(index, item.task_id, exc))
        posted: list[PostedEvent | None] = [None] * len(items)
        refused: list[Refusal] = []
        rows: dict[int, EventRow] = {}
        self.expire_leases()
        now = self.clock.now()
        with self.store.transaction() as unit:
            held: dict[tuple[str, int], TaskState] = {}
            # usage is counted against the run, whose row is locked before any task's: the runs
            # of the envelopes reporting usage first, in order (as receipts do)
            counted = {items[i].task_id for i, e in envelopes.items() if reports_usage(e.usage)}
            for run_id in sorted({run_of(t) for t in counted}):
                with contextlib.suppress(NotFoundError):  # its items fail below, named
                    self._run(unit, run_id, lock=True)
            for index, envelope in envelopes.items():  # in order: a task's envelopes stay so
                item = items[index]

                def post(i: Any = item, e: AgentRunEnvelope = envelope) -> EventRow:
                    key = (i.task_id, i.fencing_token)
                    if key not in held:
                        held[key] = self._held(unit, i.task_id, i.fencing_token, caller=caller,
                                               what="post_event", lock_run=False)  # fmt: skip
                    return self._post_event_in(unit, held[key], e, now)

                row = self._item(unit, index, item.task_id, failures, refused, post)
                if row is not None:
                    rows[index] = row
        for index, row in rows.items():  # seqs are set once the unit has ended
            posted[index] = PostedEvent(seq=row.seq, event_id=row.event_id)
        self._record_refusals(refused)
        failures.sort(key=lambda f: f.index)
        return PostedEvents(events=posted, failures=failures)

    def _item(
        self,
        unit: Unit,
        index: int,
        task_id: str,
        failures: list[ItemFailure],
        refused: list[Refusal],
        work: Callable[[], R],
    ) -> R | None:
        """Run one item of a batch in a savepoint of ``unit``; a FleetForgeError (or a refusal)
        undoes what the item wrote and becomes its failure. Store errors end the batch."""
        try:
            with unit.savepoint():
                return work()
        except Refusal as denied:
            refused.append(denied)
            forbidden = ForbiddenError(f"forbidden: {denied.reason}", task_id=denied.task_id)
            failures.append(_failure(index, task_id, forbidden))
        except StoreError:
            raise
        except FleetForgeError as exc:
            failures.append(_failure(index, task_id, exc))
        return None

    def _prefetch_receipts(self, unit: Unit, task_ids: Sequence[str]) -> None:
        """Read (and lock) what a batch of receipts needs in four statements, not five per
        receipt: on PostgreSQL each read is a round trip. The runs are locked first, in one
        order, then the tasks; :meth:`_receipt_target` takes each task's entry once (a second
        receipt for one task reads it afresh), and a savepoint rollback drops them all."""
        if len(task_ids) < 2:
            return
        backend, tx, seen = self.store.backend, unit.tx, unit_cache(unit)
        run_ids = sorted({run_of(t) for t in task_ids})
        params: dict[str, Any] = {}
        runs = backend.in_list("run_id", run_ids, params)
        for row in tx.fetchall(tx.for_update(Q["runs_locked"].format(runs=runs)), params):
            seen.runs[row[0]] = RunHead(row[0], row[1], int(row[2]))
            seen.locked.add(row[0])
        params = {}
        tasks = backend.in_list("task_id", sorted(set(task_ids)), params)
        known: dict[str, set[str]] = {}
        runs = backend.in_list("run_id", run_ids, params)
        sql = Q["receipts_of_tasks"].format(runs=runs, tasks=tasks)
        for task_id, receipt_id in tx.fetchall(sql, params):
            known.setdefault(task_id, set()).add(receipt_id)
        sql = tx.for_update(Q["tasks_for_receipts"].format(tasks=tasks))
        for row in tx.fetchall(sql, params):
            task = task_from_row(tx, row[:18])
            seen.receipt_targets[task.task_id] = (task, known.get(task.task_id, set()))
            seen.capability_ids[task.task_id] = row[18]
        params = {}
        runs = backend.in_list("run_id", run_ids, params)
        heads = dict(tx.fetchall(Q["chain_heads"].format(runs=runs), params))
        for run_id in run_ids:
            seen.chain_heads[run_id] = heads.get(run_id)


def _parsed(items: Sequence[Any], name: str) -> Sequence[Any]:
    """The items, mappings among them parsed as the operation's item model ``name`` (of
    :mod:`fleetforge.operations.batches`, which imports this module's operations); a bad one is a
    ContractError naming its field (``/items/N/...``)."""
    if not any(isinstance(item, Mapping) for item in items):
        return items
    # imported by name: a static import would close a cycle mypy cannot type through the
    # operations' references to these methods
    model: type[BaseModel] = getattr(import_module("fleetforge.operations.batches"), name)
    parsed: list[Any] = []
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            try:
                item = model.model_validate(item)
            except ValidationError as exc:
                raise ContractError(
                    f"invalid item {index}", details=pydantic_details(exc, prefix=f"/items/{index}")
                ) from None
        parsed.append(item)
    return parsed


def _failure(index: int, task_id: str, error: FleetForgeError) -> ItemFailure:
    return ItemFailure(index=index, task_id=task_id, error=error.to_dict()["error"])
