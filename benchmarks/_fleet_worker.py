"""A benchmark worker: lease -> heartbeat -> envelopes -> receipt until the inbox stays empty.

Run as a process by bench_fleet.py (``URL WORKER_ID MAX_TASKS [ENVELOPES [batched]]``): it
registers, prints "ready", waits for a line on stdin, then works and prints "<tasks done>
<monotonic time of the last receipt>".

A task's envelopes (start, ``n - 2`` message emits, complete, as the SDK's adapter writes them)
are all posted, in order, before its receipt (issue 17's delivery rule). Unbatched, each is one
``post_event`` (one ``post_events`` call per task where the service has it). Batched, only when
the service has ``complete_tasks``: the leased tasks' heartbeats go in one ``heartbeat_many`` (when
present) and their receipts, each with its envelopes, in one ``complete_tasks`` call that also
leases the next tasks (``lease_next``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from fleetforge.adapter import AgentRunAdapter, AgentRunContext, MemorySink
from fleetforge.contracts import FleetInboxEntry, FleetReceipt
from fleetforge.contracts.envelope import AgentRunEnvelope
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store

# The batch API of issue 20 (names fixed in its plan); figures say "batched" only when it is used.
BATCH_API = callable(getattr(SyncFleetService, "complete_tasks", None))
HEARTBEAT_MANY = callable(getattr(SyncFleetService, "heartbeat_many", None))
POST_EVENTS = callable(getattr(SyncFleetService, "post_events", None))
LEASE_SECONDS = 60.0


# Items of the batch calls. The service reads them by attribute ("anything shaped like" the
# operation table's TaskCompletion / LeaseItem / TaskEnvelope); these carry the adapter's
# AgentRunEnvelope objects as they are, as the unbatched post_event is given them.
@dataclass(frozen=True)
class Held:
    task_id: str
    fencing_token: int


@dataclass(frozen=True)
class Completion(Held):
    output: None = None
    envelopes: list[AgentRunEnvelope] = field(default_factory=list)


@dataclass(frozen=True)
class Envelope(Held):
    envelope: AgentRunEnvelope


def envelopes_for(entry: FleetInboxEntry, count: int) -> list[AgentRunEnvelope]:
    """``count`` envelopes of the task (0, or at least 2), built and validated by the adapter."""
    if count == 0:
        return []
    sink = MemorySink()
    adapter = AgentRunAdapter(AgentRunContext.from_entry(entry), sink, name="bench", version="1")
    adapter.start()
    for i in range(count - 2):
        adapter.emit("message", {"role": "assistant", "content": f"step {i}"})
    adapter.complete(None)  # the receipt reports the same null output
    return sink.envelopes


def _token(entry: FleetInboxEntry) -> int:
    assert entry.lease is not None
    return entry.lease.fencing_token


def cycle(fleet: SyncFleetService, entry: FleetInboxEntry, envelopes: int = 0) -> None:
    """Heartbeat, envelopes and receipt of one leased task, a call each (unbatched)."""
    task_id, token = entry.task.task_id, _token(entry)
    fleet.heartbeat(task_id, token, lease_seconds=LEASE_SECONDS)
    posts = envelopes_for(entry, envelopes)
    if posts and POST_EVENTS:  # the task's envelopes in one call
        done = fleet.post_events([Envelope(task_id, token, e) for e in posts])
        if done.failures:
            raise RuntimeError(f"post_events refused {len(done.failures)}: {done.failures[:3]}")
    else:
        for envelope in posts:
            fleet.post_event(task_id, token, envelope)
    fleet.post_receipt(FleetReceipt.success(entry, None))


def completion(entry: FleetInboxEntry, envelopes: int) -> Completion:
    """One item of ``complete_tasks``: the receipt's fields and the task's envelopes."""
    return Completion(entry.task.task_id, _token(entry), None, envelopes_for(entry, envelopes))


def batch_cycle(
    fleet: SyncFleetService,
    worker_id: str,
    leased: list[FleetInboxEntry],
    envelopes: int,
    lease_next: int,
) -> list[FleetInboxEntry]:
    """Heartbeats, then receipts (+ envelopes) of every leased task in one call that leases the
    next ones; returns those."""
    if HEARTBEAT_MANY:
        beats = [Held(e.task.task_id, _token(e)) for e in leased]
        kept = fleet.heartbeat_many(beats, lease_seconds=LEASE_SECONDS)
        if kept.failures:
            raise RuntimeError(f"heartbeat_many lost {len(kept.failures)}: {kept.failures[:3]}")
    else:
        for entry in leased:
            fleet.heartbeat(entry.task.task_id, _token(entry), lease_seconds=LEASE_SECONDS)
    done = fleet.complete_tasks(
        [completion(e, envelopes) for e in leased],
        worker_id=worker_id,
        lease_next=lease_next,
        lease_seconds=LEASE_SECONDS,
    )
    if done.failures:
        raise RuntimeError(f"complete_tasks refused {len(done.failures)}: {done.failures[:3]}")
    return list(done.leased)


def work(
    fleet: SyncFleetService,
    worker_id: str,
    max_tasks: int,
    envelopes: int = 0,
    batched: bool = False,
) -> tuple[int, float]:
    """Cycles until no task comes for 0.3 s; (count, time of the last receipt)."""
    if batched and not BATCH_API:
        raise RuntimeError("batched: this SyncFleetService has no complete_tasks")
    done, last = 0, time.monotonic()
    leased: list[FleetInboxEntry] = []
    while True:
        if not leased:
            leased = fleet.lease_task(worker_id, max_tasks=max_tasks, lease_seconds=LEASE_SECONDS)
        if not leased:
            if time.monotonic() - last > 0.3:
                return done, last
            time.sleep(0.002)
            continue
        if batched:
            count = len(leased)
            leased = batch_cycle(fleet, worker_id, leased, envelopes, max_tasks)
            done += count
        else:
            for entry in leased:
                cycle(fleet, entry, envelopes)
                done += 1
            leased = []
        last = time.monotonic()


if __name__ == "__main__":
    url, worker_id, max_tasks = sys.argv[1], sys.argv[2], int(sys.argv[3])
    envelopes = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    batched = len(sys.argv) > 5 and sys.argv[5] == "batched"
    with open_store(url) as store:
        fleet = SyncFleetService(store)
        fleet.register_worker({"worker_id": worker_id})
        print("ready", flush=True)
        sys.stdin.readline()
        count, last = work(fleet, worker_id, max_tasks, envelopes, batched)
        print(count, last, flush=True)
