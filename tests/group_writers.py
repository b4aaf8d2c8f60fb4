"""A writer process for the group commit crash test: `python -m tests.group_writers URL`.

Four threads write 5-event units (one new run each) into one store until killed, so units
share transactions; after each unit a line ``tx <units> <commits>`` (the store's group
counters) tells the test how far it got and that groups formed.
"""

from __future__ import annotations

import sys
import threading

from fleetforge.fleet.store import open_store
from fleetforge.ids import new_id
from tests.factories import DIGEST, SPEC, event


def main(url: str) -> None:
    store = open_store(url)
    assert store.group is not None, "this test needs group commit on"
    printing = threading.Lock()

    def write() -> None:
        while True:
            run_id = new_id("run")
            with store.transaction() as unit:
                unit.append(
                    [
                        event("run_submitted", run_id, spec=SPEC, spec_digest=DIGEST),
                        event("run_started", run_id),
                        event("step_ready", run_id, step_id="a"),
                        event("step_started", run_id, step_id="a", task_id=run_id, attempt=1),
                        event("step_completed", run_id, step_id="a", output=list(range(50))),
                    ]
                )
            with printing:
                print("tx", store.group.units, store.group.commits, flush=True)

    threads = [threading.Thread(target=write, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main(sys.argv[1])
