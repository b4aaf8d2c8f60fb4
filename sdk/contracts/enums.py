"""The fleet protocol's enumerations (seed 001): plain string enums, importable without the
contract models (the CLI's options use them)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "FleetAlertChannel",
    "FleetAlertEventClass",
    "FleetArtifactKind",
    "FleetInboxStatus",
    "FleetReceiptStatus",
    "FleetRunStatus",
    "FleetTaskFailureKind",
    "FleetTrustLevel",
    "FleetWorkerStatus",
]


class FleetTrustLevel(StrEnum):
    """Trust classification of a worker host, lowest first: a task's ``min_trust`` admits
    workers at that level or above."""

    UNTRUSTED = "untrusted"
    SANDBOXED = "sandboxed"
    INTERNAL = "internal"
    PRIVILEGED = "privileged"

    @property
    def rank(self) -> int:
        """Position in the order untrusted < sandboxed < internal < privileged."""
        return _TRUST_RANKS[self]

    def admits(self, other: FleetTrustLevel) -> bool:
        """True when a worker at level ``other`` satisfies this minimum."""
        return other.rank >= self.rank


_TRUST_RANKS = {level: rank for rank, level in enumerate(FleetTrustLevel)}


class FleetRunStatus(StrEnum):
    """Lifecycle status of a whole run."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True for completed, failed and cancelled."""
        return self in {FleetRunStatus.COMPLETED, FleetRunStatus.FAILED, FleetRunStatus.CANCELLED}


class FleetTaskFailureKind(StrEnum):
    """Why a task attempt failed; retry policies name the kinds they retry."""

    TRANSIENT = "transient"
    TIMEOUT = "timeout"
    INVALID_OUTPUT = "invalid_output"
    BUDGET_EXCEEDED = "budget_exceeded"
    TOOL_ERROR = "tool_error"
    AGENT_ERROR = "agent_error"
    POLICY_DENIED = "policy_denied"
    LEASE_LOST = "lease_lost"
    CANCELLED = "cancelled"
    INTERNAL = "internal"


class FleetWorkerStatus(StrEnum):
    """Runtime status of a worker as the fleet last saw it."""

    IDLE = "idle"
    BUSY = "busy"
    DRAINING = "draining"
    OFFLINE = "offline"


class FleetArtifactKind(StrEnum):
    """What an artifact holds."""

    TEXT = "text"
    JSON = "json"
    FILE = "file"
    IMAGE = "image"
    LOG = "log"
    CHECKPOINT = "checkpoint"
    REPORT = "report"
    DATASET = "dataset"
    OTHER = "other"


class FleetAlertChannel(StrEnum):
    """Transport an alert is delivered over."""

    WEBHOOK = "webhook"
    EMAIL = "email"
    SLACK = "slack"
    PAGERDUTY = "pagerduty"
    LOG = "log"


class FleetAlertEventClass(StrEnum):
    """Classes of fleet events an alert policy can subscribe to."""

    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    TASK_FAILED = "task_failed"
    RECEIPT_REJECTED = "receipt_rejected"
    BUDGET_EXCEEDED = "budget_exceeded"
    LEASE_EXPIRED = "lease_expired"
    WORKER_OFFLINE = "worker_offline"
    APPROVAL_REQUIRED = "approval_required"
    BREAKPOINT_HIT = "breakpoint_hit"
    TOOL_REFUSED = "tool_refused"


class FleetInboxStatus(StrEnum):
    """State of one inbox entry (one attempt of a task)."""

    QUEUED = "queued"
    LEASED = "leased"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FleetReceiptStatus(StrEnum):
    """Verification state of a receipt."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


# ── secrets ──────────────────────────────────────────────────────────────────────────────────
