"""The service's shared state and helpers: caches of specs and workers, the unit's typed
read cache, appending events, and who may act on a task.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from pydantic import BaseModel

from fleetforge._jsondomain import check_document
from fleetforge.contracts import (
    FleetRunStatus,
    FleetTaskSpec,
    FleetUsage,
    FleetWorkerSpec,
    InputRequest,
    Run,
    RunSpec,
    StepRecord,
    TraceContext,
)
from fleetforge.contracts.envelope import AgentRunEnvelope, parse_envelope
from fleetforge.errors import FleetForgeError, ForbiddenError, NotFoundError, StoreError
from fleetforge.fleet._events import engine_row
from fleetforge.fleet._sql import named_queries
from fleetforge.fleet._state import RunHead, TaskState, load_run, load_run_head, load_steps
from fleetforge.fleet.access import Caller, DenialLimiter, Refusal, refusal
from fleetforge.fleet.alerts.config import AlertSettings, load_alert_settings
from fleetforge.fleet.alerts.firing import AlertRouter
from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.clock import Clock, clock_for
from fleetforge.fleet.scheduling import PlanCache
from fleetforge.fleet.store import EventRow, EventStore, Unit
from fleetforge.fleet.store._base import hashed_json, iso
from fleetforge.fleet.trust.capabilities import CapabilityMint
from fleetforge.fleet.trust.denials import LeaseDenials
from fleetforge.fleet.trust.policy import PolicySet, load_policy
from fleetforge.operations._base import Args
from fleetforge.redaction import get_logger

if TYPE_CHECKING:
    from fleetforge.fleet.trust.attest import Attestor
    from fleetforge.fleet.trust.keys import SigningKey

log = get_logger("fleetforge.fleet")
TRUST_ENV = "FLEETFORGE_TRUST"
Q = named_queries("service.sql")
_TRANSIENT_ATTEMPTS = 5
P = ParamSpec("P")
R = TypeVar("R")
A = TypeVar("A", bound=Args)
M = TypeVar("M", bound=BaseModel)


@dataclass
class UnitCache:
    """What a unit has read, for its later steps: run heads (and which runs it locked), the
    tasks a batch of receipts prefetched with the receipt ids they know (and their capability
    token ids), and each run's receipt chain head. It lives in the unit's ``memo``, which a
    savepoint rollback clears (what was read there may be of undone writes)."""

    runs: dict[str, RunHead] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)
    receipt_targets: dict[str, tuple[TaskState, set[str]]] = field(default_factory=dict)
    chain_heads: dict[str, str | None] = field(default_factory=dict)
    capability_ids: dict[str, str | None] = field(default_factory=dict)  # with receipt_targets


def unit_cache(unit: Unit) -> UnitCache:
    """The unit's :class:`UnitCache` (made on first use)."""
    cache = unit.memo.get(UnitCache)
    if not isinstance(cache, UnitCache):
        cache = unit.memo[UnitCache] = UnitCache()
    return cache


def retrying(method: Callable[P, R]) -> Callable[P, R]:
    """Run a write again when the store rolled it back for a transient reason (PostgreSQL
    breaking a deadlock between two writers); each run is one whole transaction.

    A caller refused inside the transaction (:class:`~fleetforge.fleet.access.Refusal`) gets
    ForbiddenError once the transaction is rolled back, and the refusal is recorded."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, _TRANSIENT_ATTEMPTS + 1):
            try:
                return method(*args, **kwargs)
            except Refusal as refused:
                service = args[0]
                assert isinstance(service, ServiceCore)
                service._record_refusal(refused)
                raise ForbiddenError(
                    f"forbidden: {refused.reason}",
                    task_id=refused.task_id,
                    operation=refused.what,
                ) from None
            except StoreError as exc:
                if not exc.context.get("transient") or attempt == _TRANSIENT_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")

    return wrapper


def digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(hashed_json(value).encode()).hexdigest()


class ServiceCore:
    """The service's shared state and helpers: caches of specs and workers, the unit's typed"""

    def __init__(
        self,
        store: EventStore,
        *,
        artifacts: ArtifactStore | None = None,
        clock: Clock | None = None,
        max_lease_expiries: int = 3,
        alerts: AlertSettings | None = None,
        policy: PolicySet | None = None,
        signing: SigningKey | bool | None = None,
    ) -> None:
        self.store = store
        self.alerts = AlertRouter(load_alert_settings() if alerts is None else alerts)
        # Cedar policies evaluated at lease: given, else FLEETFORGE_POLICY (none: no policy)
        self.policy = policy if policy is not None else load_policy()
        self.artifacts = artifacts
        self.clock = clock or clock_for(store)
        self.max_lease_expiries = max_lease_expiries
        self._specs: dict[str, RunSpec] = {}
        self._traces: dict[str, TraceContext | None] = {}
        self._parsed_tasks: dict[str, FleetTaskSpec] = {}
        self._plans = PlanCache()  # what scheduling needs of each run's spec (.scheduling)
        self._expiry_checked: datetime | None = None
        self._denials = DenialLimiter()
        self._lease_denials = LeaseDenials()  # Cedar lease denials recorded
        self._workers: dict[str, tuple[float, FleetWorkerSpec]] = {}
        self._capability_mint = CapabilityMint()
        # trust: None = the default (on, unless FLEETFORGE_TRUST=off, which only the
        # benchmarks use); a SigningKey signs with that key; False signs nothing
        if signing is None:
            signing = os.environ.get(TRUST_ENV, "on").lower() not in {"off", "0", "false"}
        self._signing: SigningKey | bool = signing
        self._attestor: Attestor | None = None

    def attestor(self) -> Attestor | None:
        """What signs this service's receipts and chain heads (None when trust is off); the
        fleet key is loaded, or created on first use, from FLEETFORGE_HOME (see
        :mod:`fleetforge.fleet.trust.keys`)."""
        if self._attestor is None and self._signing is not False:
            from fleetforge.fleet.settings import fleet_home
            from fleetforge.fleet.trust.attest import Attestor
            from fleetforge.fleet.trust.keys import SigningKey, load_signing_key

            key = self._signing
            if not isinstance(key, SigningKey):
                key = load_signing_key(fleet_home())
            self._attestor = Attestor(key)
        return self._attestor

    def _event(self, type_: str, run_id: str | None, at: datetime, **data: Any) -> EventRow:
        """An event of the engine, in its stored form (see :mod:`fleetforge.fleet._events`)."""
        return engine_row(type_, run_id, at, data)

    def _spec(self, unit: Unit, run_id: str) -> RunSpec:
        """The run's spec (immutable once submitted, so parsed once per service)."""
        spec = self._specs.get(run_id)
        if spec is None:
            row = unit.tx.fetchone(Q["run_spec"], {"run_id": run_id})
            if row is None:
                raise NotFoundError(f"no run '{run_id}'", run_id=run_id)
            spec = self._specs[run_id] = RunSpec.model_validate(unit.tx.load_json(row[0]))
            trace = unit.tx.load_json(row[1]) if row[1] is not None else None
            self._traces[run_id] = TraceContext.model_validate(trace) if trace else None
        return spec

    def _trace(self, unit: Unit, run_id: str) -> TraceContext | None:
        """The submitter's trace context, which the run's tasks carry."""
        if run_id not in self._traces:
            self._specs.pop(run_id, None)
            self._spec(unit, run_id)
        return self._traces[run_id]

    def _task_spec(self, task: TaskState) -> FleetTaskSpec:
        """The task's spec as a model; an inbox entry's spec never changes, so it is parsed
        once per entry (a bounded cache)."""
        spec = self._parsed_tasks.get(task.entry_id)
        if spec is None:
            if len(self._parsed_tasks) >= 4096:
                self._parsed_tasks.clear()
            spec = self._parsed_tasks[task.entry_id] = FleetTaskSpec.model_validate(task.spec)
        return spec

    def _run(self, unit: Unit, run_id: str, *, lock: bool = False) -> RunHead:
        """The run's status, read once per unit until a run_* event changes it.

        ``lock`` holds the run's row to the end of the unit: what changes a run's steps, its
        receipt chain or its status takes it first (then task rows), so such writers of one
        run take turns (on PostgreSQL; SQLite's writers always do).
        """
        seen = unit_cache(unit)
        run = seen.runs.get(run_id)
        if lock and run_id not in seen.locked:
            run = load_run_head(unit.tx, run_id, lock=True)
            seen.locked.add(run_id)
        elif run is None:
            run = load_run_head(unit.tx, run_id)
        if run is None:
            raise NotFoundError(f"no run '{run_id}'", run_id=run_id)
        seen.runs[run_id] = run
        return run

    def _chain_head(self, unit: Unit, run_id: str, final: str, at: datetime) -> Any:
        """The signed head of the run's receipt chain for its final event ``final`` (None when
        trust is off): the last receipt's hash and how many receipts the chain holds."""
        attestor = self.attestor()
        if attestor is None:
            return None
        row = unit.tx.fetchone(Q["receipt_chain_head"], {"run_id": run_id})
        head, count = (None, 0) if row is None else (str(row[1]), int(row[0]))
        return {
            "receipts": count,
            "head": head,
            "key_id": attestor.key_id,
            "attestation": attestor.chain_head(run_id, head, count, final, iso(at)),
        }

    def _append(self, unit: Unit, events: Sequence[EventRow]) -> None:
        """Append engine events, and the alerts they raise (:mod:`fleetforge.fleet.alerts`), in
        the unit's transaction."""
        seen = unit_cache(unit)
        for event in events:
            if event.type.startswith("run_") and event.run_id is not None:
                seen.runs.pop(event.run_id, None)
        fired = self.alerts.fire(unit, events, lambda run_id: self._spec(unit, run_id),
                                 self.clock.now)  # fmt: skip
        unit.append_rows([*events, *fired] if fired else events)

    def _get_run(self, unit: Unit, run_id: str) -> Run:
        run = load_run(unit.tx, run_id)
        if run is None:
            raise NotFoundError(f"no run '{run_id}'", run_id=run_id)
        steps = load_steps(unit.tx, run_id)
        return Run(
            run_id=run.run_id,
            name=run.name,
            status=FleetRunStatus(run.status),
            seed=run.seed,
            labels=run.labels,
            created_at=run.created_at,
            updated_at=run.updated_at,
            spec=self._spec(unit, run_id),
            steps=[StepRecord.model_validate(vars(s)) for s in steps.values()],
            outputs={sid: s.output for sid, s in steps.items() if s.status == "completed"},
            error=run.error,
            usage=FleetUsage.model_validate(run.usage),
            idempotency_key=run.idempotency_key,
            started_at=run.started_at,
            finished_at=run.finished_at,
            waiting_for_input=self._waiting(unit, run_id) if run.status == "paused" else [],
        )

    @staticmethod
    def _waiting(unit: Unit, run_id: str) -> list[InputRequest]:
        rows = unit.tx.fetchall(Q["tasks_waiting"], {"run_id": run_id})
        return [
            InputRequest(task_id=r[0], step_id=r[1], **unit.tx.load_json(r[2]))
            for r in rows
            if r[2] is not None
        ]

    @staticmethod
    def _authorize(task: TaskState, caller: Caller | None, what: str) -> None:
        """Refuse ``caller`` unless it holds ``task``'s lease (see :mod:`.access`)."""
        if caller is None:
            return
        reason = refusal(caller, task)
        if reason is not None:
            raise Refusal(caller, what, reason, task_id=task.task_id, run_id=task.run_id)

    def _record_refusal(self, refused: Refusal) -> None:
        """An ``access_denied`` event and a log line, at most once a minute per (caller,
        operation, task); never raises (the caller gets its ForbiddenError regardless)."""
        who = refused.caller.label
        repeats = self._denials.admit((who, refused.what, refused.task_id))
        if repeats is None:
            return
        log.warning(
            "access denied: %s %s %s: %s%s",
            who,
            refused.what,
            refused.task_id or "-",
            refused.reason,
            f" ({repeats} more since the last report)" if repeats else "",
        )
        event = self._event(
            "access_denied",
            refused.run_id,
            self.clock.now(),
            who=who,
            what=refused.what,
            task_id=refused.task_id,
            reason=refused.reason,
            repeats=repeats,
        )
        try:
            with self.store.transaction() as unit:
                self._append(unit, [event])
        except FleetForgeError as exc:
            log.error("access denied by %s not recorded: %s", who, exc)

    def _record_refusals(self, refused: Sequence[Refusal]) -> None:
        for denied in refused:
            self._record_refusal(denied)

    def _envelope(self, envelope: AgentRunEnvelope | Mapping[str, Any]) -> AgentRunEnvelope:
        """An envelope from outside, checked (JSON value domain, then its schema)."""
        envelope = check_document(envelope, what="envelope")
        if isinstance(envelope, AgentRunEnvelope):
            return envelope
        from fleetforge import schemas

        schemas.validate("agent_run", dict(envelope))
        return parse_envelope(dict(envelope))


def ts(value: datetime) -> str:
    return iso(value)


def run_of(task_id: str) -> str:
    """The run a task id belongs to (``<run>.<step>[.<index>]``, see ``task_id_for``)."""
    return task_id.split(".", 1)[0]
