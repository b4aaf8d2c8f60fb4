"""Worker processes for the fleet concurrency and crash tests: `python -m tests.fleet_workers`."""

from __future__ import annotations

import sys
import time

from fleetforge.contracts import FleetReceipt
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store


def complete(service: SyncFleetService, worker_id: str, max_tasks: int = 1) -> int:
    """Lease → heartbeat → receipt until the inbox stays empty; return tasks completed."""
    done = 0
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 1.5:
        leased = service.lease_task(worker_id, max_tasks=max_tasks, lease_seconds=60)
        if not leased:
            time.sleep(0.01)
            continue
        idle_since = time.monotonic()
        for entry in leased:
            assert entry.lease is not None
            task = entry.task
            service.heartbeat(task.task_id, entry.lease.fencing_token, lease_seconds=60)
            service.post_receipt(FleetReceipt.success(entry, task.inputs.get("item")))
            done += 1
    return done


def main() -> None:
    mode, url, worker_id = sys.argv[1:4]
    with open_store(url) as store:
        service = SyncFleetService(store)
        service.register_worker({"worker_id": worker_id, "trust_level": "privileged"})
        if mode == "work":
            print(complete(service, worker_id), flush=True)
        else:  # "hold": lease one task, report it, then hang until killed
            [entry] = service.lease_task(worker_id, lease_seconds=float(sys.argv[4]))
            print(entry.model_dump_json(), flush=True)
            time.sleep(3600)


if __name__ == "__main__":
    main()
