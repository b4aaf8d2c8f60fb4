"""Why a ready task waits: the run's steps no live worker may take (``Run.blocked``).

Read with the run (``get_run``), from the queued tasks and the workers not offline; the codes
are stable (:class:`~fleetforge.contracts.run.BlockedStep`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from fleetforge.contracts import FleetTaskSpec, FleetTrustLevel, FleetWorkerSpec
from fleetforge.contracts.protocol import Ed25519Auth
from fleetforge.contracts.run import BlockedStep
from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.requirements import meets, unmet_message
from fleetforge.fleet.store import Tx
from fleetforge.fleet.store._base import iso
from fleetforge.fleet.trust.policy import PolicySet

__all__ = ["blocked_steps", "why_blocked"]

Q = named_queries("service.sql")


def _offers(worker: FleetWorkerSpec, profile: dict[str, Any]) -> bool:
    role = profile.get("role")
    if role is not None and worker.role != role:
        return False
    for need in profile.get("tools") or []:
        if not any(fnmatchcase(need, have) or fnmatchcase(have, need) for have in worker.tools):
            return False
    labels = profile.get("labels") or {}
    return all(worker.labels.get(k) == v for k, v in labels.items())


def why_blocked(
    spec: dict[str, Any],
    min_rank: int,
    needs_key: bool,
    workers: Iterable[FleetWorkerSpec],
    policy: PolicySet | None = None,
) -> tuple[str, str] | None:
    """(code, message) when no worker of ``workers`` may take the task; None when one may.
    With a Cedar ``policy``, a task it denies to every worker that may otherwise take it is
    ``policy_denied`` (the message names the policy set's digest)."""
    profile = spec.get("worker") or {}
    security = spec.get("security") or {}
    denied = security.get("denied_tools") or []
    for need in profile.get("tools") or []:
        hit = next((p for p in denied if fnmatchcase(need, p)), None)
        if hit is not None:
            return "tool_denied", f"the step needs {need!r}, which the run's policy denies ({hit})"
    able = [w for w in workers if _offers(w, profile)]
    if not able:
        return "no_worker", "no live worker offers the step's role, tools and labels"
    trusted = [w for w in able if w.trust_level.rank >= min_rank]
    if not trusted:
        level = list(FleetTrustLevel)[min_rank].value
        best = max(w.trust_level.rank for w in able)
        return (
            "trust_too_low",
            f"the step needs a worker trusted '{level}' or more; the best live one is "
            f"'{list(FleetTrustLevel)[best].value}'",
        )
    fits = [w for w in trusted if meets(spec.get("workspace"), w.environment)]
    if not fits:
        return unmet_message(spec.get("workspace"), trusted)
    trusted = fits
    if needs_key:
        trusted = [w for w in trusted if isinstance(w.auth, Ed25519Auth)]
        if not trusted:
            return (
                "no_signing_worker",
                "the run requires signed receipts and no live worker that may take the step "
                "registered an ed25519 key",
            )
    if policy is not None:
        task = FleetTaskSpec.model_validate(spec)
        if not any(policy.decide_lease(w, task).allowed for w in trusted):
            return (
                "policy_denied",
                f"the Cedar policy set {policy.digest} denies the step to every live worker "
                f"that may otherwise take it ({', '.join(w.worker_id for w in trusted)})",
            )
    return None


def blocked_steps(
    tx: Tx, run_id: str, now: datetime, policy: PolicySet | None = None
) -> list[BlockedStep]:
    """The run's ready steps no live worker may take, one entry per step (``policy``: the
    fleet's Cedar policy set, when one is configured)."""
    rows = tx.fetchall(Q["queued_tasks_of_run"], {"run_id": run_id, "now": iso(now)})
    if not rows:
        return []
    workers = [
        FleetWorkerSpec.model_validate(tx.load_json(r[1]))
        for r in tx.fetchall(Q["workers"])
        if r[2] != "offline"
    ]
    out: dict[str, BlockedStep] = {}
    for step_id, spec, min_rank, needs_key, _role in rows:
        if step_id in out:
            continue
        why = why_blocked(tx.load_json(spec), int(min_rank), bool(needs_key), workers, policy)
        if why is not None:
            out[step_id] = BlockedStep(step_id=step_id, code=why[0], message=why[1])
    return list(out.values())
