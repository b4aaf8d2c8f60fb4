"""Group commit: concurrent write units of one store share one transaction and one COMMIT.

A unit that starts while another unit of the same store is running joins that unit's
transaction instead of opening its own; the first unit of a group (the *leader*) opens the
transaction and commits it for everyone::

    leader   BEGIN  body  ─────────────── wait ─────────────── COMMIT → return
    member 2            SAVEPOINT body RELEASE ── wait ─────────────── → return
    member 3                              SAVEPOINT body RELEASE ──── → return

- Bodies run one at a time on the group's connection (SQLite serializes writers anyway), in
  the order the units arrived; each member after the leader runs inside its own SAVEPOINT, so
  its events get their ``seq`` at its own flush and ``seq`` order is the order of the units.
- A body that raises is rolled back to its savepoint and only its caller gets the error; the
  others are not touched. (The leader needs no savepoint: when its body fails nothing else is
  in the transaction yet, so it rolls back the whole transaction, and the units queued behind
  it start over in a new group.)
- The group commits when the body that just finished has nobody queued behind it, or when
  ``max_units`` units have joined: an idle store commits at once, a busy one shares its
  COMMIT (and, at ``synchronous=FULL``, its fsync) between up to ``max_units`` units.
- No member returns before the COMMIT succeeded. A COMMIT that fails makes every member
  raise (a copy of the error, with its ``transient`` flag, so ``_retrying`` runs them again);
  a member whose rollback lost the whole transaction fails the others with a transient
  StoreError (their own work was fine).
"""

from __future__ import annotations

import threading
from collections import deque
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from fleetforge.errors import FleetForgeError, StoreError, UsageError
from fleetforge.fleet.store._base import Backend, Tx

__all__ = ["DEFAULT_GROUP_MAX", "GroupCommit"]

DEFAULT_GROUP_MAX = 16
_Kind = type[BaseException] | None


class _Member:
    """A unit queued behind a running one: told when its turn comes (or to start over)."""

    __slots__ = ("restart", "turn")

    def __init__(self) -> None:
        self.turn = threading.Event()
        self.restart = False


class _Group:
    """One shared transaction and the units in it."""

    __slots__ = ("broken", "done", "error", "queue", "ready", "size", "tx")

    def __init__(self) -> None:
        self.queue: deque[_Member] = deque()  # admitted, not yet run
        self.size = 1  # units admitted, the leader included
        self.tx: Any = None
        # made when a second unit joins (a unit alone, the common case, needs neither):
        self.ready: threading.Event | None = None  # the last body has finished: commit now
        self.done: threading.Event | None = None  # the leader committed (error: None) or not
        self.error: BaseException | None = None
        self.broken: BaseException | None = None  # a member's rollback lost the transaction

    def admit(self) -> _Member:
        """Queue one more unit (under the committer's lock)."""
        if self.ready is None:
            self.ready, self.done = threading.Event(), threading.Event()
        member = _Member()
        self.queue.append(member)
        self.size += 1
        return member


class GroupCommit:
    """Coalesces the concurrent write units of one store (see the module docstring)."""

    def __init__(self, backend: Backend, *, max_units: int = DEFAULT_GROUP_MAX) -> None:
        if max_units < 1:
            raise UsageError(f"group_max must be at least 1, got {max_units}")
        self.backend = backend
        self.max_units = max_units
        self._mu = threading.Lock()
        self._forming: _Group | None = None  # the group a new unit joins
        self._queued = 0
        self._running = threading.local()
        self.commits = 0  # groups committed (one COMMIT each)
        self.units = 0  # units committed in them

    @property
    def queued(self) -> int:
        """Units waiting for their turn in a group now (what tests wait for)."""
        return self._queued

    def unit(self) -> _Unit:
        """A write transaction for one unit: shared with the units running now, if any."""
        return _Unit(self)

    def _admit(self) -> tuple[_Group, _Member | None]:
        """The group to run in, and this unit's place in its queue (None: it leads)."""
        with self._mu:
            group = self._forming
            if group is None:
                group = _Group()
                self._forming = group if self.max_units > 1 else None
                return group, None
            member = group.admit()
            self._queued += 1
            if group.size >= self.max_units:
                self._forming = None
            return group, member

    # ── turns ────────────────────────────────────────────────────────────────────────────────

    def _hand_on(self, group: _Group) -> bool:
        """The running body has finished: start the next queued unit, or close the group and
        tell the leader to commit (with nobody queued, or the transaction lost). False when
        the group never had anyone but its leader (who then commits without waiting)."""
        with self._mu:
            if group.queue and group.broken is None:
                member = group.queue.popleft()
                self._queued -= 1
            else:
                member = None
                restart = self._close(group)
        if member is not None:
            member.turn.set()
            return True
        for waiting in restart:
            waiting.restart = True
            waiting.turn.set()
        if group.ready is None:
            return False
        group.ready.set()
        return True

    def _dissolve(self, group: _Group) -> None:
        """The group's transaction is gone before anyone queued ran: they start over."""
        with self._mu:
            restart = self._close(group)
        for waiting in restart:
            waiting.restart = True
            waiting.turn.set()

    def _close(self, group: _Group) -> list[_Member]:
        """No more members for ``group``; the queued ones it will not run (under ``_mu``)."""
        if self._forming is group:
            self._forming = None
        if not group.queue:
            return []
        restart = list(group.queue)
        group.queue.clear()
        self._queued -= len(restart)
        group.size -= len(restart)
        return restart

    def _abandon(self, group: _Group, member: _Member) -> None:
        """A queued unit was interrupted: leave the queue, or pass on a turn already given."""
        with self._mu:
            if member in group.queue:
                group.queue.remove(member)
                self._queued -= 1
                group.size -= 1
                return
        member.turn.wait()
        if not member.restart:
            with self._mu:
                group.size -= 1
            self._hand_on(group)


class _Unit:
    """One unit's turn in a group, as a context manager (a class: this is the hot path)."""

    __slots__ = ("_committer", "_group", "_member", "_open")

    def __init__(self, committer: GroupCommit) -> None:
        self._committer = committer

    def __enter__(self) -> Tx:
        committer = self._committer
        if getattr(committer._running, "active", False):
            raise UsageError(
                f"store {committer.backend.url}: a write unit was opened inside another unit's "
                "body on the same thread; do the work in the unit that is open"
            )
        while True:
            group, member = committer._admit()
            self._group, self._member = group, member
            if member is None:
                return self._lead(group)
            try:
                member.turn.wait()
            except BaseException:
                committer._abandon(group, member)
                raise
            if not member.restart:
                return self._follow(group)

    def __exit__(self, kind: _Kind, error: BaseException | None, tb: TracebackType | None) -> None:
        self._committer._running.active = False
        if self._member is None:
            self._commit(kind, error, tb)
        else:
            self._release(kind, error, tb)

    # ── the leader: opens the transaction, hands on, commits ─────────────────────────────────

    def _lead(self, group: _Group) -> Tx:
        committer = self._committer
        self._open = committer.backend.write()
        try:
            tx: Tx = self._open.__enter__()
        except BaseException:
            committer._dissolve(group)
            raise
        group.tx = tx
        committer._running.active = True
        return tx

    def _commit(self, kind: _Kind, error: BaseException | None, tb: TracebackType | None) -> None:
        committer, group, write = self._committer, self._group, self._open
        if error is not None:  # the leader's own body failed: nothing else ran in the group
            committer._dissolve(group)
            write.__exit__(kind, error, tb)  # rolls back (and re-raises a translated error)
            return
        failure: BaseException | None = None
        if committer._hand_on(group):  # others joined: commit when the last is done
            assert group.ready is not None
            failure = _wait(group.ready)
        if failure is None and group.broken is not None:
            failure = StoreError(
                f"store {committer.backend.url}: the group transaction was lost when another "
                f"unit in it failed: {group.broken}",
                transient=True,
            )
            failure.__cause__ = group.broken
        try:
            if failure is not None:
                write.__exit__(type(failure), failure, failure.__traceback__)
                raise failure
            write.__exit__(None, None, None)  # COMMIT
        except BaseException as exc:
            group.error = exc
            if group.done is not None:
                group.done.set()
            raise
        committer.commits += 1
        committer.units += group.size
        if group.done is not None:
            group.done.set()

    # ── a member after the leader ────────────────────────────────────────────────────────────

    def _follow(self, group: _Group) -> Tx:
        committer = self._committer
        self._open = _savepoint(group.tx, committer.backend)
        try:
            self._open.__enter__()
        except BaseException as exc:
            self._failed(group, exc)
            raise
        committer._running.active = True
        tx: Tx = group.tx
        return tx

    def _release(self, kind: _Kind, error: BaseException | None, tb: TracebackType | None) -> None:
        group = self._group
        try:
            self._open.__exit__(kind, error, tb)  # RELEASE, or ROLLBACK TO when it raised
        except BaseException as exc:
            self._failed(group, exc)
            raise
        if error is not None:
            self._failed(group, error)
            return  # the body's own error goes on
        if not _alive(group.tx) and group.broken is None:
            group.broken = StoreError(f"store {self._committer.backend.url}: transaction lost")
        self._committer._hand_on(group)
        assert group.done is not None
        _wait(group.done)
        if group.error is not None:
            raise _copy(group.error) from group.error

    def _failed(self, group: _Group, error: BaseException) -> None:
        """This member's body (or its savepoint) failed: it is out; the group goes on unless
        its transaction went with it."""
        if not _alive(group.tx) and group.broken is None:
            group.broken = error
        self._committer._hand_on(group)


def _wait(event: threading.Event) -> BaseException | None:
    """Wait for ``event`` even through an interrupt (the group's connection may be in use by
    another thread until then); return the interrupt, if one came, to raise afterwards."""
    interrupted: BaseException | None = None
    while True:
        try:
            event.wait()
            return interrupted
        except BaseException as exc:  # KeyboardInterrupt in the main thread
            interrupted = exc


def _copy(error: BaseException) -> BaseException:
    """The group's COMMIT error for one more member (each thread raises its own object)."""
    if isinstance(error, FleetForgeError):
        try:
            return type(error)(error.message, details=error.details, **error.context)
        except TypeError:
            pass
    transient = isinstance(error, FleetForgeError) and bool(error.context.get("transient"))
    return StoreError(f"the group commit failed: {error}", transient=transient)


def _savepoint(tx: Any, backend: Backend) -> AbstractContextManager[Any]:
    """A savepoint around one member's body, its driver errors translated (the backend's
    transaction provides it: each backend knows when its statements' errors arrive)."""
    savepoint = getattr(tx, "savepoint", None)
    if savepoint is None:
        raise UsageError(
            f"store {backend.url}: no savepoints for group commit; use ?group_commit=off"
        )
    result: AbstractContextManager[Any] = savepoint()
    return result


def _alive(tx: Any) -> bool:
    """Whether the group's transaction is still open and usable."""
    alive = getattr(tx, "alive", None)
    return True if alive is None else bool(alive())
