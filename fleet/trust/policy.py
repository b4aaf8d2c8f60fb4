"""Policy as code: Cedar policy files (``cedarpy``, the ``policy`` extra), evaluated at lease
and at tool call when configured (``FLEETFORGE_POLICY``: a ``.cedar`` file, or a folder of them).

Every decision names the policy set's digest (``sha256:`` of its text), so a recorded decision
says which policies made it: a lease's is in ``task_leased.policy``; a tool call's in its
``tool_refused`` / ``tool_called`` report (``policy_digest``).

The request each decision is made on:

- lease: principal ``Worker::"<worker_id>"`` (attributes ``trust_level``, ``trust_rank`` 0-3,
  ``role``, ``has_key``), action ``Action::"lease"``, resource ``Task::"<task_id>"``
  (``run_id``, ``step_id``, ``type``, ``min_rank``, ``tools``), context ``{}``;
- tool call: principal ``Worker::"<worker_id>"`` (``trust_rank`` when known), action
  ``Action::"call_tool"``, resource ``Tool::"<tool>"`` (``name``), context ``{run_id,
  task_id}``.

Cedar denies what no ``permit`` allows: a policy set that means to restrict only some leases
starts with ``permit(principal, action, resource);`` and adds ``forbid`` rules.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetforge.contracts import FleetTaskSpec, FleetWorkerSpec
from fleetforge.contracts.protocol import Ed25519Auth
from fleetforge.errors import ContractError, UsageError

__all__ = ["PolicyDecision", "PolicySet", "load_policy", "policy_path"]

ENV = "FLEETFORGE_POLICY"


def policy_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``FLEETFORGE_POLICY`` (a .cedar file or a folder of them), or None."""
    env = os.environ if environ is None else environ
    value = env.get(ENV)
    return Path(value) if value else None


def _cedar() -> Any:
    try:
        import cedarpy
    except ImportError:
        raise UsageError(
            f"{ENV} names Cedar policies, but cedarpy is not installed: "
            'pip install "fleetforge[policy]"'
        ) from None
    return cedarpy


@dataclass(frozen=True)
class PolicyDecision:
    """One decision: allowed or not, by which policy set, and the policies that decided."""

    allowed: bool
    digest: str
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": "allow" if self.allowed else "deny",
            "policy_digest": self.digest,
            "reasons": list(self.reasons),
        }


class PolicySet:
    """A parsed Cedar policy set and its digest."""

    def __init__(self, text: str, *, source: str = "<policies>") -> None:
        cedar = _cedar()
        try:
            self._policies = cedar.PolicySet.from_str(text)
        except ValueError as exc:
            raise ContractError(f"{source}: not a Cedar policy set: {exc}") from None
        self.digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        self.source = source

    @classmethod
    def from_path(cls, path: Path) -> PolicySet:
        """A .cedar file, or every .cedar file of a folder (in name order)."""
        files = sorted(path.glob("*.cedar")) if path.is_dir() else [path]
        if not files or not all(f.is_file() for f in files):
            raise UsageError(f"{ENV}={path}: no Cedar policy file there")
        text = "\n".join(f.read_text(encoding="utf-8") for f in files)
        return cls(text, source=str(path))

    def _decide(self, request: dict[str, Any], entities: list[dict[str, Any]]) -> PolicyDecision:
        result = _cedar().is_authorized(request, self._policies, entities)
        errors = list(result.diagnostics.errors)
        reasons = tuple(str(r) for r in result.diagnostics.reasons) + tuple(
            f"error: {e}" for e in errors
        )
        return PolicyDecision(bool(result.allowed), self.digest, reasons)

    def decide_lease(self, worker: FleetWorkerSpec, task: FleetTaskSpec) -> PolicyDecision:
        """May ``worker`` lease ``task``?"""
        principal = {"type": "Worker", "id": worker.worker_id}
        resource = {"type": "Task", "id": task.task_id}
        min_rank = max(
            task.worker.min_trust.rank, task.security.min_trust.rank if task.security else 0
        )
        entities = [
            {
                "uid": principal,
                "attrs": {
                    "trust_level": worker.trust_level.value,
                    "trust_rank": worker.trust_level.rank,
                    "role": worker.role or "",
                    "has_key": isinstance(worker.auth, Ed25519Auth),
                },
                "parents": [],
            },
            {
                "uid": resource,
                "attrs": {
                    "run_id": task.run_id,
                    "step_id": task.step_id,
                    "type": task.type,
                    "min_rank": min_rank,
                    "tools": list(task.worker.tools),
                },
                "parents": [],
            },
        ]
        request = {
            "principal": principal,
            "action": {"type": "Action", "id": "lease"},
            "resource": resource,
            "context": {},
        }
        return self._decide(request, entities)

    def decide_tool(
        self,
        tool: str,
        *,
        worker_id: str,
        run_id: str,
        task_id: str,
        trust_rank: int | None = None,
    ) -> PolicyDecision:
        """May ``worker_id`` call ``tool`` for ``task_id``?"""
        principal = {"type": "Worker", "id": worker_id}
        resource = {"type": "Tool", "id": tool}
        attrs: dict[str, Any] = {} if trust_rank is None else {"trust_rank": trust_rank}
        entities = [
            {"uid": principal, "attrs": attrs, "parents": []},
            {"uid": resource, "attrs": {"name": tool}, "parents": []},
        ]
        request = {
            "principal": principal,
            "action": {"type": "Action", "id": "call_tool"},
            "resource": resource,
            "context": {"run_id": run_id, "task_id": task_id},
        }
        return self._decide(request, entities)


def load_policy(environ: Mapping[str, str] | None = None) -> PolicySet | None:
    """The configured policy set (``FLEETFORGE_POLICY``), or None when none is."""
    path = policy_path(environ)
    return None if path is None else PolicySet.from_path(path)
