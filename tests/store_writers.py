"""Writer processes for the concurrency and crash tests: `python -m tests.store_writers ...`."""

from __future__ import annotations

import sys

from fleetforge.fleet.store import open_store
from fleetforge.ids import new_id
from tests.factories import DIGEST, SPEC, event


def appends(url: str, writer: int, count: int) -> None:
    """`count` single-event transactions, numbered, for run `w<writer>`."""
    with open_store(url) as store:
        for i in range(count):
            store.append(event("worker_offline", None, worker_id=f"w{writer}", reason=str(i)))


def forever(url: str) -> None:
    """Multi-event transactions (5 events of one new run each) until killed."""
    with open_store(url) as store:
        while True:
            run_id = new_id("run")
            store.append(
                [
                    event("run_submitted", run_id, spec=SPEC, spec_digest=DIGEST),
                    event("run_started", run_id),
                    event("step_ready", run_id, step_id="a"),
                    event("step_started", run_id, step_id="a", task_id=f"{run_id}_a", attempt=1),
                    event("step_completed", run_id, step_id="a", output=list(range(50))),
                ]
            )
            print("tx", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "appends":
        appends(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        forever(sys.argv[2])
