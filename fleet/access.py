"""Who may act on a lease: the caller a surface established, and the one rule for task calls.

A lease belongs to the credential that took it. Every call on a task (heartbeat, event, receipt,
fail, release, pause, task-scoped artifacts) must come from the same worker identity:

- a token bound to a worker acts as that worker (``Caller.token(..., worker_id=...)``);
- a token that names no worker holds the leases it took itself, whatever worker id it gave;
- over stdio (and in process) the caller names its worker (``Caller.as_worker``), and that must
  be the worker holding the lease.

A call that breaks the rule is refused with :class:`~fleetforge.errors.ForbiddenError`, writes
nothing but an ``access_denied`` event (rate-limited by :class:`DenialLimiter`) and a log line.
An ``admin`` token may release any lease; the release records who did it. In-process callers
that pass no caller (the engine's own tests and tools) are trusted.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a light module: surfaces import it to describe their callers
    from fleetforge.fleet._state import TaskState

__all__ = ["Caller", "DenialLimiter", "Refusal", "hash_token", "refusal"]


def hash_token(token: str) -> str:
    """The stored form of a bearer token: ``sha256:`` and the hex digest."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who makes a call, as established where it entered (the token, or the stdio argument)."""

    worker_id: str | None = None
    token_id: str | None = None
    token_name: str | None = None
    bound: bool = False  # the token names ``worker_id``
    scopes: frozenset[str] = field(default_factory=frozenset)
    trust_level: str | None = None  # a token's: what its worker is trusted with (admin-set)
    public_key: str | None = None  # a token's worker key (base64 Ed25519), admin-registered
    projects: frozenset[str] | None = None
    """The coordination projects a token is limited to (None: every project)."""

    @classmethod
    def as_worker(cls, worker_id: str) -> Caller:
        """A trusted transport's caller acting as ``worker_id`` (stdio, in process)."""
        return cls(worker_id=worker_id)

    @classmethod
    def token(
        cls,
        token_id: str,
        name: str,
        scopes: frozenset[str] | set[str] | list[str] | tuple[str, ...],
        *,
        worker_id: str | None = None,
        acting_as: str | None = None,
        trust_level: str | None = "sandboxed",
        public_key: str | None = None,
        projects: frozenset[str] | set[str] | list[str] | tuple[str, ...] | None = None,
    ) -> Caller:
        """A bearer token's caller; a token bound to a worker acts as it, an unbound one as
        ``acting_as`` (the worker id it passed), holding only the leases it took itself."""
        return cls(
            worker_id=worker_id or acting_as,
            token_id=token_id,
            token_name=name,
            bound=worker_id is not None,
            scopes=frozenset(scopes),
            trust_level=trust_level,
            public_key=public_key,
            projects=None if projects is None else frozenset(projects),
        )

    @property
    def label(self) -> str:
        """``token:NAME``, ``worker:ID`` or ``local`` (for events and logs)."""
        if self.token_name is not None:
            return f"token:{self.token_name}"
        return f"worker:{self.worker_id}" if self.worker_id else "local"

    @property
    def credential(self) -> str | None:
        """What a lease taken by this caller is bound to beyond the worker id: the token, when
        the token names no worker."""
        return self.token_id if self.token_id is not None and not self.bound else None

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    def in_project(self, project: str) -> bool:
        """May this caller see and act in a coordination project?"""
        return self.projects is None or project in self.projects

    def allows(self, scope: str) -> bool:
        """Does this caller hold ``scope``? (Callers without a token are trusted.)"""
        return self.token_id is None or scope in self.scopes or self.admin


def refusal(caller: Caller, task: TaskState) -> str | None:
    """Why ``caller`` may not act on ``task``'s lease, or None when it holds it."""
    if caller.worker_id is None and caller.credential is None:
        return "the call names no worker"
    if caller.worker_id is not None and caller.worker_id != task.worker_id:
        return f"worker '{caller.worker_id}' does not hold the lease on '{task.task_id}'"
    if task.lease_credential != caller.credential:
        return f"the lease on '{task.task_id}' was taken with another credential"
    return None


class Refusal(Exception):
    """Raised inside a transaction when a caller acts outside its grant; the service rolls the
    transaction back, records the refusal and raises ForbiddenError."""

    def __init__(
        self, caller: Caller, what: str, reason: str, *, task_id: str | None, run_id: str | None
    ) -> None:
        super().__init__(reason)
        self.caller = caller
        self.what = what
        self.reason = reason
        self.task_id = task_id
        self.run_id = run_id


class DenialLimiter:
    """At most one recorded refusal per (caller, operation, task) per ``window`` seconds; the
    ones in between are counted and reported with the next."""

    def __init__(self, window: float = 60.0, max_keys: int = 10_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self._last: dict[tuple[str, str, str | None], tuple[float, int]] = {}

    def admit(self, key: tuple[str, str, str | None]) -> int | None:
        """The number of refusals suppressed since the last one recorded, or None when this
        one is to be suppressed too."""
        now = time.monotonic()
        seen = self._last.get(key)
        if seen is not None and now - seen[0] < self.window:
            self._last[key] = (seen[0], seen[1] + 1)
            return None
        if len(self._last) >= self.max_keys:
            self._last.clear()
        self._last[key] = (now, 0)
        return 0 if seen is None else seen[1]
