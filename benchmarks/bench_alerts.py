"""What alerts cost (issue 23): the task cycle with an alert policy on the run, and delivery.

1. ``*_cycle_with_alerts_ratio``: the lease -> receipt cycle (``lease_task`` + ``complete_task``
   of a no-op task, the whole transactions) of a run with one alert policy (``run_failed``,
   ``task_failed``, ``receipt_rejected`` to a webhook: what a user sets), over the same cycle of
   a run without one; goal <= 1.05. The two runs live in two stores of the same shape, worked
   in alternating blocks of 50 tasks, so both see the same load (this machine's fsync latency
   moves 2-5x within minutes) and the same inbox (in one store, the run submitted second leases
   past the first one's queued tasks). Each store is checked with ``replay --verify``.
2. ``*_cycle_firing_ratio``: the same when every task raises an alert (``task_failed`` on a
   step that fails once, then succeeds): the price of one more event per firing cycle.
3. ``dispatcher_deliveries_per_s``: the dispatcher delivering 2,000 alerts to a loopback
   webhook receiver (a threaded HTTP server that verifies nothing), signed; goal >= 200/s.

``python benchmarks/run.py alerts``. FLEETFORGE_BENCH_QUICK=1 uses 1,000 tasks.
"""

from __future__ import annotations

import base64
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio

from fleetforge.contracts import FleetReceipt
from fleetforge.fleet.alerts.admin import list_alerts
from fleetforge.fleet.alerts.config import AlertSettings
from fleetforge.fleet.alerts.dispatcher import AlertDispatcher
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import open_store

sys.path.insert(0, str(Path(__file__).parent))
from _stores import fresh_stores

QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
TASKS = 1_000 if QUICK else 4_000
BLOCK = 50
DELIVERIES = 2_000
SECRET = "whsec_" + base64.b64encode(b"bench-alert-secret-0123456").decode()

GOALS: dict[str, tuple[str, float]] = {
    "sqlite_cycle_with_alerts_ratio": ("<=", 1.05),
    "postgres_cycle_with_alerts_ratio": ("<=", 1.05),
    "dispatcher_deliveries_per_s": (">=", 200.0),
}
NOTES: list[str] = []


def _spec(
    name: str, role: str, alerts: dict[str, Any] | None, *, flaky: bool = False
) -> dict[str, Any]:
    retry = {"max_attempts": 2, "backoff_s": 0, "jitter": 0} if flaky else None
    steps = [
        {"id": f"s{i}", "type": "tool", "tool": "noop", **({"retry": retry} if retry else {})}
        for i in range(TASKS)
    ]
    spec: dict[str, Any] = {"name": name, "seed": 1, "steps": steps,
                            "defaults": {"worker": {"role": role}}}  # fmt: skip
    if alerts:
        spec["alerts"] = alerts
    return spec


def _cycles(
    fleet: SyncFleetService, role: str, count: int, *, fail_first: bool, failed: list[int]
) -> list[float]:
    worker = f"w-{role}"
    times = []
    for _ in range(count):
        started = time.perf_counter()
        [entry] = fleet.lease_task(worker)
        assert entry.lease is not None
        if fail_first and entry.attempt == 1:
            fleet.fail_task(entry.task.task_id, entry.lease.fencing_token, "transient", "flaky")
            failed.append(1)
            [entry] = fleet.lease_task(worker)
            assert entry.lease is not None
        fleet.post_receipt(FleetReceipt.success(entry, None))
        times.append(time.perf_counter() - started)
    return times


def _compare(fresh: Callable[[], str], hook: str, *, firing: bool) -> float:
    """Median cycle with the policy over without: two stores of the same shape (one run each),
    worked in alternating blocks, so both see the same load and the same inbox."""
    policy = {
        "events": ["task_failed"] if firing else ["run_failed", "task_failed", "receipt_rejected"],
        "endpoints": [{"channel": "webhook", "url": hook, "secret_ref": {"ref": "env://B_SECRET"}}],
    }
    with open_store(fresh()) as plain_store, open_store(fresh()) as alerted_store:
        fleets = {}
        for name, store, alerts in (("plain", plain_store, None),
                                    ("alerted", alerted_store, policy)):  # fmt: skip
            fleet = fleets[name] = SyncFleetService(store, alerts=AlertSettings())
            fleet.register_worker({"worker_id": "w-run", "role": "run", "tools": ["*"]})
            fleet.submit_run(_spec(name, "run", alerts, flaky=firing))
        times: dict[str, list[float]] = {"plain": [], "alerted": []}
        failed: dict[str, list[int]] = {"plain": [], "alerted": []}
        for block in range(TASKS // BLOCK):
            for name in ("plain", "alerted") if block % 2 else ("alerted", "plain"):
                times[name] += _cycles(fleets[name], "run", BLOCK, fail_first=firing,
                                       failed=failed[name])  # fmt: skip
        fired = len(list_alerts(alerted_store, limit=100_000))
        if fired != len(failed["alerted"]) or list_alerts(plain_store):
            raise AssertionError(f"expected {len(failed['alerted'])} alerts, got {fired}")
        for store in (plain_store, alerted_store):
            if verify(store):
                raise AssertionError(f"replay differs from the projections of {store.url}")
    return statistics.median(times["alerted"]) / statistics.median(times["plain"])


class _Sink(BaseHTTPRequestHandler):
    count = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with _Sink.lock:
            _Sink.count += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # the dispatcher opens up to `concurrency` connections at once


@contextmanager
def _receiver() -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def _dispatch(url: str, hook: str) -> float:
    with open_store(url) as store:
        fleet = SyncFleetService(store, alerts=AlertSettings())
        fleet.register_worker({"worker_id": "w", "tools": ["*"]})
        endpoint = {"channel": "webhook", "url": hook, "secret_ref": {"ref": "env://B_SECRET"}}
        policy = {"events": ["run_completed"], "endpoints": [endpoint]}
        for i in range(DELIVERIES):
            fleet.submit_run({"name": f"r{i}", "seed": 1, "alerts": policy,
                              "steps": [{"id": "a", "type": "tool", "tool": "noop"}]})  # fmt: skip
        for entry in iter(lambda: fleet.lease_task("w", max_tasks=100), []):
            for one in entry:
                fleet.post_receipt(FleetReceipt.success(one, None))
        dispatcher = AlertDispatcher(store, settings=AlertSettings(), batch=500, concurrency=64)
        _Sink.count = 0
        started = time.perf_counter()

        async def drain() -> None:
            while await dispatcher.run_once():
                pass

        anyio.run(drain)
        elapsed = time.perf_counter() - started
        if _Sink.count != DELIVERIES or dispatcher.delivered != DELIVERIES:
            raise AssertionError(f"delivered {dispatcher.delivered}, received {_Sink.count}")
    return DELIVERIES / elapsed


def run() -> dict[str, float]:
    os.environ["B_SECRET"] = SECRET
    figures: dict[str, float] = {}
    with _receiver() as hook, fresh_stores("alerts", NOTES) as stores:
        for name, fresh in stores.items():
            figures[f"{name}_cycle_with_alerts_ratio"] = _compare(fresh, hook, firing=False)
            figures[f"{name}_cycle_firing_ratio"] = _compare(fresh, hook, firing=True)
        figures["dispatcher_deliveries_per_s"] = _dispatch(stores["sqlite"](), hook)
    NOTES.append(
        f"{TASKS} tasks per run, alternating blocks of {BLOCK}; SQLite at its default "
        "synchronous, PostgreSQL with fsync on; deliveries signed (Standard Webhooks)"
    )
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
