"""A benchmark worker: lease -> heartbeat -> receipt until the inbox stays empty.

Run as a process by bench_fleet.py: it registers, prints "ready", waits for a line on stdin,
then works and prints "<tasks done> <monotonic time of the last receipt>".
"""

from __future__ import annotations

import sys
import time

from fleetforge.contracts import FleetReceipt
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store


def work(fleet: SyncFleetService, worker_id: str, max_tasks: int) -> tuple[int, float]:
    """Cycles until no task comes for 0.3 s; (count, time of the last receipt)."""
    done, last = 0, time.monotonic()
    while True:
        leased = fleet.lease_task(worker_id, max_tasks=max_tasks, lease_seconds=60)
        if not leased:
            if time.monotonic() - last > 0.3:
                return done, last
            time.sleep(0.002)
            continue
        for entry in leased:
            assert entry.lease is not None
            task = entry.task
            fleet.heartbeat(task.task_id, entry.lease.fencing_token, lease_seconds=60)
            fleet.post_receipt(FleetReceipt.success(entry, None))
            done += 1
        last = time.monotonic()


if __name__ == "__main__":
    url, worker_id, max_tasks = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open_store(url) as store:
        fleet = SyncFleetService(store)
        fleet.register_worker({"worker_id": worker_id})
        print("ready", flush=True)
        sys.stdin.readline()
        count, last = work(fleet, worker_id, max_tasks)
        print(count, last, flush=True)
