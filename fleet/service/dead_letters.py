"""Dead letters: the steps that failed for good, across every run, what they were given, and
retrying a list of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from fleetforge.errors import ContractError, ErrorDetail, FleetForgeError, UsageError
from fleetforge.fleet._state import to_dt
from fleetforge.fleet.service.core import Q
from fleetforge.fleet.service.runs import Runs
from fleetforge.operations.results import (
    DeadLetter,
    DeadLetterList,
    RetriedStep,
    RetriedSteps,
    StepFailure,
    StepRef,
)
from fleetforge.validation import pydantic_details

__all__ = ["RETRY_LIMIT", "DeadLetters"]

#: Most steps one retry_steps call takes.
RETRY_LIMIT = 1000


class DeadLetters(Runs):
    """Steps failed for good (retries spent, or a failure no retry policy covers)."""

    def dead_letters(
        self, *, run_id: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> DeadLetterList:
        """Failed steps, newest run first, with their last error, attempts and the inputs of
        their last attempt; ``run_id`` keeps one run's. Retry them with :meth:`retry_steps`."""
        if not 1 <= limit <= 1000:
            raise UsageError(f"limit must be between 1 and 1000, got {limit}")
        after_run, after_step = _cursor(cursor)
        params = {"run_id": run_id, "after_run": after_run, "after_step": after_step,
                  "limit": limit + 1}  # fmt: skip
        found: list[DeadLetter] = []
        with self.store.backend.read() as tx:
            rows = tx.fetchall(Q["dead_letters"], params)
            for r in rows[:limit]:
                task_ids = tx.load_json(r[9]) or []
                inputs: dict[str, Any] | None = None
                if task_ids:
                    spec = tx.fetchone(Q["task_spec"], {"run_id": r[0], "task_id": task_ids[-1]})
                    inputs = tx.load_json(spec[0]).get("inputs") if spec else None
                found.append(
                    DeadLetter(
                        run_id=r[0],
                        run_name=r[1],
                        run_status=r[2],
                        step_id=r[3],
                        type=r[4],
                        attempts=r[5],
                        failure_kind=r[6],
                        error=r[7],
                        failed_at=to_dt(r[8]) if r[8] else None,
                        inputs=inputs,
                    )
                )
        more = len(rows) > limit
        return DeadLetterList(
            dead_letters=found,
            next_cursor=f"{found[-1].run_id}/{found[-1].step_id}" if more and found else None,
        )

    def retry_steps(
        self, items: Sequence[StepRef | Mapping[str, Any]], *, by: str | None = None
    ) -> RetriedSteps:
        """Retry a list of failed steps, across runs (e.g. the dead letters): each item is
        :meth:`retry_step` in its own transaction; one that cannot be retried is reported in
        ``failures`` and the others go on."""
        if not items:
            raise UsageError("name at least one step to retry")
        if len(items) > RETRY_LIMIT:
            raise UsageError(f"retry at most {RETRY_LIMIT} steps at once, got {len(items)}")
        refs = []
        for index, item in enumerate(items):
            try:
                refs.append(StepRef.model_validate(item))
            except ValidationError as exc:
                raise ContractError(
                    f"step {index} to retry is not a {{run_id, step_id}} object",
                    details=pydantic_details(exc, prefix=f"/steps/{index}"),
                ) from None
        retried: list[RetriedStep] = []
        failures: list[StepFailure] = []
        for index, ref in enumerate(refs):
            try:
                run = self.retry_step(ref.run_id, ref.step_id, by=by)
            except FleetForgeError as exc:
                error = exc.to_dict()["error"]
                failures.append(StepFailure(index=index, error=error, **ref.model_dump()))
            else:
                retried.append(RetriedStep(run_status=run.status, **ref.model_dump()))
        return RetriedSteps(retried=retried, failures=failures)


def _cursor(cursor: str | None) -> tuple[str | None, str | None]:
    if not cursor:
        return None, None
    run_id, sep, step_id = cursor.partition("/")
    if not sep or not run_id or not step_id:
        raise ContractError(
            f"cursor {cursor!r} is not one this listing handed out",
            details=[ErrorDetail("/cursor", "pass next_cursor back unchanged")],
        )
    return run_id, step_id
