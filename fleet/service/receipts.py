"""What a task reports: its envelopes, and its receipt, judged, chained and recorded."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from fleetforge._jsondomain import check_document, check_json_value, check_model
from fleetforge.contracts import (
    FleetArtifactRef,
    FleetReceipt,
    FleetReceiptSignature,
    FleetReceiptStatus,
    FleetScore,
    FleetTaskFailureKind,
    FleetTaskSpec,
    FleetUsage,
)
from fleetforge.contracts.envelope import AgentRunEnvelope, CheckpointEnvelope, EmitEnvelope
from fleetforge.contracts.protocol import Ed25519Auth, TaskFailure, TaskSuccess
from fleetforge.errors import (
    ConflictError,
    ContractError,
    ErrorDetail,
    ForbiddenError,
    NotFoundError,
)
from fleetforge.fleet._events import Raw, data_model, timestamp
from fleetforge.fleet._state import TaskState, load_task, load_task_for_receipt
from fleetforge.fleet.access import Caller, Refusal, refusal
from fleetforge.fleet.scoring import ScorerError, score
from fleetforge.fleet.service.artifacts import Artifacts
from fleetforge.fleet.service.budgets import reports_usage
from fleetforge.fleet.service.core import Q, digest, retrying, run_of, unit_cache
from fleetforge.fleet.store import EventRow, Unit
from fleetforge.signing import signature_problem
from fleetforge.validation import pydantic_details

_TOOL_EVENTS = {"tool_called", "tool_refused"}
# not in the receipt's chain hash (attestation_id is no part of the receipt at all: only the
# fleet's answer names it, and one a client sends is dropped)
_SET_BY_FLEET = {"status", "score", "hash", "posted_at", "attestation_id"}
_RECEIPT_FIELDS = tuple(n for n in FleetReceipt.model_fields if n != "attestation_id")


class Receipts(Artifacts):
    """What a task reports: its envelopes, and its receipt, judged, chained and recorded."""

    @retrying
    def post_event(
        self,
        task_id: str,
        fencing_token: int,
        envelope: AgentRunEnvelope | Mapping[str, Any],
        *,
        caller: Caller | None = None,
    ) -> EventRow:
        """Record an adapter envelope for a leased task (checkpoints also as checkpoint_saved)."""
        envelope = self._envelope(envelope)
        self.expire_leases()
        with self.store.transaction() as unit:
            # usage is counted against the run (its row locked): the run before the task
            task = self._held(unit, task_id, fencing_token, caller=caller, what="post_event",
                              lock_run=reports_usage(envelope.usage))  # fmt: skip
            return self._post_event_in(unit, task, envelope, self.clock.now())

    def _post_event_in(
        self, unit: Unit, task: TaskState, envelope: AgentRunEnvelope, now: datetime
    ) -> EventRow:
        """Record ``envelope`` for ``task`` (held) inside ``unit``; return its task_event."""
        self._refuse_if_over(unit, task)  # the run went over budget earlier in this unit
        mismatched = [
            ErrorDetail(f"/{field}", f"is {getattr(envelope, field)!r}, the task's is {want!r}")
            for field, want in (
                ("run_id", task.run_id),
                ("step_id", task.step_id),
                ("task_id", task.task_id),
            )
            if getattr(envelope, field) != want
        ]
        if mismatched:
            raise ContractError("the envelope is for another task", details=mismatched)
        task_id = task.task_id
        events = [self._event("task_event", task.run_id, now, task_id=task_id, envelope=envelope)]
        if isinstance(envelope, EmitEnvelope) and envelope.payload.get("type") in _TOOL_EVENTS:
            # the armory reports tool calls as custom emits; they are fleet facts too, and
            # worker-made: validated here (engine events are not, see fleet._events)
            kind = envelope.payload["type"]
            fields = {k: v for k, v in envelope.payload.items() if k != "type"}
            fields |= {"task_id": task_id, "worker_id": task.worker_id}
            try:
                report = data_model(kind).model_validate(fields)
            except ValidationError as exc:
                raise ContractError(
                    f"invalid {kind} report", details=pydantic_details(exc, prefix="/payload")
                ) from None
            values = {name: getattr(report, name) for name in type(report).model_fields}
            events.append(self._event(kind, task.run_id, now, **values))
        if isinstance(envelope, CheckpointEnvelope):
            events.append(
                self._event(
                    "checkpoint_saved",
                    task.run_id,
                    now,
                    task_id=task_id,
                    checkpoint_id=envelope.checkpoint_id,
                    state_digest=envelope.state_digest,
                    artifact=envelope.artifact,
                )
            )
        self._append(unit, events)
        self._budget_usage(unit, task, envelope.usage, now)  # run-level budgets (issue 23)
        return events[0]  # its seq is set when the unit commits

    @retrying
    def fail_task(
        self,
        task_id: str,
        fencing_token: int,
        kind: FleetTaskFailureKind | str,
        message: str,
        *,
        caller: Caller | None = None,
    ) -> bool:
        """Report that an attempt failed. Returns True when another attempt will follow."""
        check_json_value({"message": message}, what="arguments")
        failure = FleetTaskFailureKind(kind)
        self.expire_leases()
        now = self.clock.now()
        with self.store.transaction() as unit:
            task = self._held(unit, task_id, fencing_token, caller=caller, what="fail")
            return self._task_failed(unit, task, failure, message, now)

    @retrying
    def post_receipt(
        self, receipt: FleetReceipt | Mapping[str, Any], *, caller: Caller | None = None
    ) -> FleetReceipt:
        """Post a worker's receipt; the fleet scores it, chains it and schedules what follows.

        Posting the same receipt again returns the first verdict and changes nothing. Receipt
        ids are unique within their task: another task's receipts never collide with them.
        """
        receipt = check_document(receipt, what="receipt")
        if not isinstance(receipt, FleetReceipt):
            from fleetforge import schemas

            schemas.validate("fleet_receipt", dict(receipt))
            receipt = FleetReceipt.model_validate(dict(receipt))
        self.expire_leases()
        with self.store.transaction() as unit:
            target = self._receipt_target(
                unit, receipt.task_id, receipt.receipt_id, receipt.fencing_token, caller
            )
            if not isinstance(target, TaskState):
                return _same_receipt(unit, target, receipt)
            return self._post_receipt(unit, receipt, target)

    def _receipt_target(
        self, unit: Unit, task_id: str, receipt_id: str, fencing_token: int, caller: Caller | None
    ) -> TaskState | tuple[Any, ...]:
        """The task a receipt is for, held by ``fencing_token`` and ``caller`` — or, when
        ``receipt_id`` was posted already, that stored receipt (a repeat has one effect). The
        run's row is locked first, so a repeat waits for the first verdict; the task is read
        (and locked) with whether the receipt is known, in one statement."""
        self._lock_run_of(unit, task_id)
        prefetched = unit_cache(unit).receipt_targets.pop(task_id, None)
        task: TaskState | None
        if prefetched is not None:  # read for the whole batch (see _prefetch_receipts)
            task, receipts = prefetched
            known = receipt_id in receipts
        else:
            task, known = load_task_for_receipt(unit.tx, task_id, receipt_id)
        if task is None:
            raise NotFoundError(f"no task '{task_id}'", task_id=task_id)
        if known:
            stored = self._known_receipt(unit, task_id, receipt_id, caller)
            assert stored is not None
            return stored
        self._checked_lease(unit.tx, task, self._run(unit, task.run_id).status, fencing_token,
                            caller, "post_receipt")  # fmt: skip
        return task

    def _known_receipt(
        self, unit: Unit, task_id: str, receipt_id: str, caller: Caller | None
    ) -> tuple[Any, ...] | None:
        """The stored receipt ``receipt_id`` of ``task_id``, if posted; a caller that is not
        the worker which posted it (or holds the task's lease) is refused."""
        key = {"run_id": run_of(task_id), "task_id": task_id, "receipt_id": receipt_id}
        known = unit.tx.fetchone(Q["receipt"], key)
        if known is None or caller is None:
            return known
        task = load_task(unit.tx, task_id)
        posted_by = unit.tx.load_json(known[1]).get("worker_id")
        if task is not None and (
            caller.worker_id not in (None, posted_by) or refusal(caller, task) is not None
        ):
            reason = f"{caller.label} did not post receipt '{receipt_id}' of '{task_id}'"
            raise Refusal(caller, "post_receipt", reason, task_id=task_id, run_id=task.run_id)
        return known

    def _post_receipt(self, unit: Unit, receipt: FleetReceipt, task: TaskState) -> FleetReceipt:
        """Score, chain and record a receipt for ``task`` (held by it), inside ``unit``."""
        now = self.clock.now()
        _check_receipt(receipt, task)
        self._check_signature(unit, receipt, task)
        heads = unit_cache(unit).chain_heads
        if task.run_id in heads:  # the run is locked: its chain's head stays ours to the end
            prev = heads[task.run_id]
        else:
            row = unit.tx.fetchone(Q["last_receipt_hash"], {"run_id": task.run_id})
            prev = row[0] if row else None
        body = receipt.model_dump(mode="json", exclude=_SET_BY_FLEET)
        body["prev_hash"] = prev
        chained = digest(body)
        verdict, failure, extra = self._judge(receipt, task, now)
        accepted = verdict.passed and failure is None
        status = FleetReceiptStatus.ACCEPTED if accepted else FleetReceiptStatus.REJECTED
        judged = receipt.model_copy(
            update={"prev_hash": prev, "hash": chained, "posted_at": now, "status": status,
                    "score": verdict, "attestation_id": None}
        )  # fmt: skip
        heads[task.run_id] = chained
        attestor = self.attestor()
        if attestor is None:
            recorded = self._event("receipt_recorded", task.run_id, now, receipt=judged)
        else:  # dumped once: the same JSON is signed and stored
            # judged.model_dump(mode="json"), from the dump above plus what the fleet set
            fleet_set: dict[str, Any] = {"status": status.value, "hash": chained,
                                         "score": verdict.model_dump(mode="json"),
                                         "posted_at": timestamp(now)}  # fmt: skip
            full: dict[str, Any] = {name: fleet_set[name] if name in fleet_set else body[name]
                                    for name in _RECEIPT_FIELDS}  # fmt: skip
            attestation = attestor.receipt(
                full,
                capability_token_id=self._capability_id(unit, task),
                policy_decisions=self._receipt_decisions(task),
                worker_signature=full.get("worker_signature"),
            )
            recorded = self._event(
                "receipt_recorded",
                task.run_id,
                now,
                receipt=Raw(full),
                attestation=Raw(attestation),
            )
        self._append(unit, [*extra, recorded])
        if accepted:
            self._task_succeeded(unit, task, getattr(receipt.result, "output", None), now)
        else:
            kind, message = failure or (FleetTaskFailureKind.INVALID_OUTPUT, verdict.reason)
            self._task_failed(unit, task, kind, message, now)
        self._budget_usage(unit, task, receipt.usage, now, receipt=True)  # run budgets (issue 23)
        if attestor is not None:  # the answer names the attestation (trust.attestation_id)
            return judged.model_copy(update={"attestation_id": _attestation_id(attestation)})
        return judged

    def _capability_id(self, unit: Unit, task: TaskState) -> str | None:
        """The id of the capability token of the attempt the receipt ends (for its statement);
        a batch of receipts read it with the task (see ``_prefetch_receipts``)."""
        prefetched = unit_cache(unit).capability_ids
        if task.task_id in prefetched:
            return prefetched.pop(task.task_id)
        row = unit.tx.fetchone(Q["capability_of_task"], {"task_id": task.task_id})
        return str(row[0]) if row and int(row[2]) == task.fencing_token else None

    def _receipt_decisions(self, task: TaskState) -> list[dict[str, Any]]:
        """The security-policy decisions taken on this receipt, for its statement (the lease's
        Cedar decision is in ``task_leased.policy``)."""
        security = self._task_spec(task).security
        if security is None or not security.require_signed_receipts:
            return []
        return [{"policy": "require_signed_receipts", "decision": "allow",
                 "reason": "signed by the worker's registered key"}]  # fmt: skip

    def _check_signature(self, unit: Unit, receipt: FleetReceipt, task: TaskState) -> None:
        """Under ``require_signed_receipts``, a receipt without a good signature by the
        worker's registered key is refused (a Refusal: nothing else is written, the refusal is
        recorded)."""
        security = self._task_spec(task).security
        if security is None or not security.require_signed_receipts:
            return
        worker = self._worker(unit, receipt.worker_id)
        key = worker.auth.public_key if isinstance(worker.auth, Ed25519Auth) else None
        problem = signature_problem(receipt, key)
        if problem is not None:
            who = Caller.as_worker(receipt.worker_id)
            raise Refusal(who, "post_receipt", problem, task_id=task.task_id, run_id=task.run_id)

    @retrying
    def complete_task(
        self,
        task_id: str,
        fencing_token: int,
        output: Any,
        *,
        usage: FleetUsage | Mapping[str, Any] | None = None,
        artifacts: Sequence[FleetArtifactRef | Mapping[str, Any]] = (),
        receipt_id: str | None = None,
        caller: Caller | None = None,
    ) -> FleetReceipt:
        """Post a success receipt for a leased task, built from the task itself.

        The receipt id defaults to one derived from the task and its fencing token, so
        repeating the call (a client retrying after a lost reply) returns the first verdict.
        A caller-chosen id is unique within the task only.
        """
        done = completion(task_id, fencing_token, output, usage, artifacts, receipt_id)
        self.expire_leases()
        with self.store.transaction() as unit:
            return self._complete_in(unit, done, caller)

    def _complete_in(self, unit: Unit, done: Completion, caller: Caller | None) -> FleetReceipt:
        """Post ``done``'s success receipt (after its envelopes) inside ``unit``."""
        task_id, fencing_token = done.task_id, done.fencing_token
        target = self._receipt_target(unit, task_id, done.receipt_id, fencing_token, caller)
        if not isinstance(target, TaskState):
            known = target
            stored = FleetReceipt.model_validate(unit.tx.load_json(known[1]))
            update = {"fencing_token": fencing_token, "result": done.result,
                      "usage": done.usage, "artifacts": done.artifacts}  # fmt: skip
            again = stored.model_copy(update=update)
            return _same_receipt(unit, known, again)
        task = target
        if done.envelopes:
            now = self.clock.now()
            for envelope in done.envelopes:
                self._post_event_in(unit, task, envelope, now)
        receipt = FleetReceipt(
            receipt_id=done.receipt_id,
            run_id=task.run_id,
            step_id=task.step_id,
            task_id=task_id,
            attempt=task.attempt,
            worker_id=task.worker_id or "",
            fencing_token=fencing_token,
            result=done.result,
            usage=done.usage,
            artifacts=done.artifacts,
            worker_signature=done.worker_signature,
        )
        return self._post_receipt(unit, receipt, task)

    def _judge(
        self, receipt: FleetReceipt, task: TaskState, now: datetime
    ) -> tuple[FleetScore, tuple[FleetTaskFailureKind, str] | None, list[EventRow]]:
        """(score, failure if the attempt failed, extra events such as budget_exceeded)."""
        if isinstance(receipt.result, TaskFailure):
            reason = f"{receipt.result.kind}: {receipt.result.message}"
            verdict = FleetScore(passed=False, score=0, scorer="worker", reason=reason)
            return verdict, (receipt.result.kind, receipt.result.message), []
        spec = self._task_spec(task)
        over = _over_budget(spec, receipt.usage, task, now)
        if over is not None:
            budget, limit, used = over
            reason = f"{budget} budget exceeded: used {used:g}, limit {limit:g}"
            verdict = FleetScore(passed=False, score=0, scorer="budget", reason=reason)
            event = self._event(
                "budget_exceeded",
                task.run_id,
                now,
                budget=budget,
                limit=limit,
                used=used,
                step_id=task.step_id,
                task_id=task.task_id,
            )
            return verdict, (FleetTaskFailureKind.BUDGET_EXCEEDED, reason), [event]
        try:
            return score(spec.scorer, receipt.result.output), None, []
        except ScorerError as exc:  # unknown or failing custom scorer: fail, do not hang
            verdict = FleetScore(passed=False, score=0, scorer=exc.context["scorer"],
                                 reason=exc.message)  # fmt: skip
            return verdict, (FleetTaskFailureKind.INTERNAL, exc.message), []


def _check_receipt(receipt: FleetReceipt, task: TaskState) -> None:
    wrong = [
        ErrorDetail(f"/{field}", f"is {have!r}, the leased task's is {want!r}")
        for field, have, want in (
            ("run_id", receipt.run_id, task.run_id),
            ("step_id", receipt.step_id, task.step_id),
            ("attempt", receipt.attempt, task.attempt),
        )
        if have != want
    ]
    if wrong:
        raise ContractError(f"the receipt does not match task '{task.task_id}'", details=wrong)
    if receipt.worker_id != task.worker_id:
        raise ForbiddenError(
            f"worker '{receipt.worker_id}' does not hold the lease on '{task.task_id}'"
        )


def _same_receipt(unit: Unit, known: tuple[Any, ...], receipt: FleetReceipt) -> FleetReceipt:
    stored = FleetReceipt.model_validate(unit.tx.load_json(known[1]))
    keys = ("task_id", "attempt", "worker_id", "fencing_token", "result", "usage", "artifacts")
    if any(getattr(stored, k) != getattr(receipt, k) for k in keys):
        raise ConflictError(
            f"receipt '{receipt.receipt_id}' was already posted with different content",
            receipt_id=receipt.receipt_id,
        )
    score_value = unit.tx.load_json(known[3]) if known[3] is not None else None
    signed = unit.tx.fetchone(Q["receipt_attestation"], _receipt_key(stored))
    envelope = unit.tx.load_json(signed[0]) if signed and signed[0] is not None else None
    return stored.model_copy(
        update={
            "status": FleetReceiptStatus(known[2]),
            "score": FleetScore.model_validate(score_value) if score_value else None,
            "attestation_id": None if envelope is None else _attestation_id(envelope),
        }
    )


def _attestation_id(envelope: Mapping[str, Any]) -> str:
    from fleetforge.fleet.trust.attest import attestation_id  # with the signing machinery

    return attestation_id(envelope)


def _receipt_key(receipt: FleetReceipt) -> dict[str, str]:
    return {"run_id": receipt.run_id, "task_id": receipt.task_id, "receipt_id": receipt.receipt_id}


def checked_result(
    output: Any, usage: FleetUsage, refs: list[FleetArtifactRef]
) -> tuple[Any, FleetUsage, list[FleetArtifactRef]]:
    """A receipt's output, usage and artifacts, checked against the JSON value domain
    (pointers as the arguments of ``fleet_post_receipt`` name them)."""
    checked = [check_model(r, pointer=f"/artifacts/{i}") for i, r in enumerate(refs)]
    used = check_model(usage, pointer="/usage")
    return check_json_value(output, pointer="/output", what="receipt"), used, checked


def _over_budget(
    spec: FleetTaskSpec, usage: FleetUsage, task: TaskState, now: datetime
) -> tuple[str, float, float] | None:
    budget = spec.budget
    if budget is None:
        return None
    tokens = usage.total_tokens or usage.input_tokens + usage.output_tokens
    if budget.max_tokens is not None and tokens > budget.max_tokens:
        return "tokens", float(budget.max_tokens), float(tokens)
    if budget.max_cost_usd is not None and (usage.cost_usd or 0.0) > budget.max_cost_usd:
        return "cost", budget.max_cost_usd, float(usage.cost_usd or 0.0)
    if budget.max_wall_s is not None and task.leased_at is not None:
        elapsed = (now - task.leased_at).total_seconds()
        if elapsed > budget.max_wall_s:
            return "wall_time", budget.max_wall_s, elapsed
    return None


@dataclass(frozen=True)
class Completion:
    """A success receipt to post, checked and with its id (see ``complete_task``)."""

    task_id: str
    fencing_token: int
    receipt_id: str
    result: TaskSuccess
    usage: FleetUsage
    artifacts: list[FleetArtifactRef]
    envelopes: tuple[AgentRunEnvelope, ...] = ()
    worker_signature: FleetReceiptSignature | None = None


def completion(
    task_id: str,
    fencing_token: int,
    output: Any,
    usage: FleetUsage | Mapping[str, Any] | None,
    artifacts: Sequence[FleetArtifactRef | Mapping[str, Any]],
    receipt_id: str | None,
    envelopes: Sequence[AgentRunEnvelope] = (),
    worker_signature: FleetReceiptSignature | Mapping[str, Any] | None = None,
) -> Completion:
    """Check a completion's content (ContractError) and give it its receipt id: by default
    one derived from the task and fencing token, so a repeated call has one effect."""
    rid = (
        receipt_id
        or "rcp_" + hashlib.sha256(f"{task_id}:{fencing_token}".encode()).hexdigest()[:26]
    )
    used = usage if isinstance(usage, FleetUsage) else FleetUsage.model_validate(usage or {})
    refs = [a if isinstance(a, FleetArtifactRef) else FleetArtifactRef.model_validate(a)
            for a in artifacts]  # fmt: skip
    output, used, refs = checked_result(output, used, refs)
    result = TaskSuccess(output=output)
    signed = (
        FleetReceiptSignature.model_validate(worker_signature)
        if worker_signature is not None and not isinstance(worker_signature, FleetReceiptSignature)
        else worker_signature
    )
    return Completion(task_id, fencing_token, rid, result, used, refs, tuple(envelopes), signed)
