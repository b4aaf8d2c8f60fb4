"""The dashboard and ``fleetforge top`` (issue 24): server time of the pages, live latency, and
the cost of one ``top`` refresh.

- ``run_page_200_p50_ms``: GET /ui/runs/<id> of a finished 200-step run (20 levels of 10 steps,
  each depending on one step of the level before; 200 attempts, 200 receipts), in-process
  through the ASGI app (Starlette's test client), so the figure is the server's time plus an
  in-memory round trip; p50 of 40 requests after 3 warm-ups.
- ``runs_list_10k_p50_ms``: GET /ui/ (the first page of 50) with 10,000 runs in the store; also
  filtered by name (``runs_list_10k_name_p50_ms``) and by label (``..._label_p50_ms``, a label
  one run in 100 carries, so a page reads ~5,000 rows).
- ``live_latency_p50_ms`` / ``_max_ms``: from just before a worker's call that commits an event
  (``post_event`` of an envelope, which appends ``task_event``) to that event's arrival on the
  run's server-sent-events stream of a real server (uvicorn on loopback, read with httpx); 30
  events, one at a time.
- ``top_refresh_1k_p50_ms``: one refresh of ``fleetforge top`` with 1,000 active tasks (leased):
  folding a page of 200 new events into its model (p50) plus redrawing every panel of the
  Textual app, headless, every row of the runs table rebuilt (p50; a redraw where only some
  runs moved updates just their cells).

SQLite (a WAL file) always; PostgreSQL too when its server programs are found.
FLEETFORGE_BENCH_QUICK=1 uses 2,000 runs instead of 10,000.
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import uvicorn
from starlette.testclient import TestClient

from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.service import FleetService, SyncFleetService
from fleetforge.fleet.store import open_store
from fleetforge.fleet.tokens import TokenStore
from fleetforge.mcp_server.http import http_app
from fleetforge.mcp_server.server import ServerOptions
from fleetforge.mcp_server.ui import UiOptions
from fleetforge.testing.postgres import find_postgres_bin, postgres_server

QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
RUNS = 2_000 if QUICK else 10_000
NOTES: list[str] = []
GOALS: dict[str, tuple[str, float]] = {}
for _store in ("sqlite", "postgres"):
    GOALS |= {
        f"{_store}_run_page_200_p50_ms": ("<=", 50.0),
        f"{_store}_runs_list_10k_p50_ms": ("<=", 100.0),
        f"{_store}_live_latency_p50_ms": ("<=", 500.0),
        f"{_store}_live_latency_max_ms": ("<=", 500.0),
        f"{_store}_top_refresh_1k_p50_ms": ("<", 100.0),
    }


def _p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _timed(call: Callable[[], Any], n: int, warm: int = 3) -> list[float]:
    for _ in range(warm):
        call()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def _worker(service: SyncFleetService, worker_id: str, role: str | None = None) -> str:
    spec: dict[str, Any] = {"worker_id": worker_id, "trust_level": "privileged", "tools": ["*"]}
    if role:
        spec["role"] = role
    service.register_worker(spec)
    return worker_id


def _finish(service: SyncFleetService, worker_id: str) -> None:
    while leased := service.lease_task(worker_id, max_tasks=50, lease_seconds=300):
        for entry in leased:
            assert entry.lease is not None
            service.complete_task(entry.task.task_id, entry.lease.fencing_token, {"ok": True})


def _run_page(service: SyncFleetService, client: TestClient) -> float:
    steps = []
    for level in range(20):
        for i in range(10):
            step: dict[str, Any] = {"id": f"s{level}_{i}", "type": "tool", "tool": "noop"}
            if level:
                step["depends_on"] = [f"s{level - 1}_{(i * 3) % 10}"]
            steps.append(step)
    run = service.submit_run(
        {"name": "wide", "seed": 1, "steps": steps, "defaults": {"worker": {"role": "page"}}}
    )
    _finish(service, _worker(service, "bench-page", "page"))
    assert service.get_run(run.run_id).status == "completed"

    def get() -> None:
        reply = client.get(f"/ui/runs/{run.run_id}")
        assert reply.status_code == 200, reply.status_code
        assert reply.text.count('data-status="completed"') == 200

    return _p50(_timed(get, 40))


def _runs_list(service: SyncFleetService, client: TestClient) -> dict[str, float]:
    t0 = time.perf_counter()
    for i in range(RUNS):  # a role no bench worker has: nobody leases these
        service.submit_run(
            {
                "name": f"run-{i}",
                "seed": 1,
                "labels": {"shard": str(i % 100)},
                "steps": [{"id": "s", "type": "tool", "tool": "noop"}],
                "defaults": {"worker": {"role": "nobody"}},
            }
        )
    NOTES.append(f"{RUNS} runs submitted in {time.perf_counter() - t0:.1f}s")
    figures = {}
    for key, query in (("", ""), ("_name", "?name=run-77"), ("_label", "?label=shard%3D7")):

        def get(query: str = query) -> None:
            reply = client.get(f"/ui/{query}")
            assert reply.status_code == 200, reply.status_code
            assert "<tr data-run=" in reply.text

        figures[f"runs_list_10k{key}_p50_ms"] = _p50(_timed(get, 30))
    return figures


@contextmanager
def _serving(fleet: FleetService, token: str) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    ui = UiOptions(auth=True)
    server = uvicorn.Server(
        uvicorn.Config(http_app(fleet, ServerOptions(auth=True), ui), log_level="warning")
    )
    ui.stopping = lambda: server.should_exit
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _live(fleet: FleetService, token: str) -> dict[str, float]:
    service = fleet.sync
    run = service.submit_run(
        {
            "name": "live",
            "seed": 1,
            "steps": [{"id": "s", "type": "tool", "tool": "noop"}],
            "defaults": {"worker": {"role": "live"}},
        }
    )
    [entry] = service.lease_task(_worker(service, "bench-live", "live"), lease_seconds=600)
    assert entry.lease is not None
    assert entry.task.run_id == run.run_id
    samples: list[float] = []
    with _serving(fleet, token) as base, httpx.Client(base_url=base, timeout=30) as http:
        http.post("/ui/login", data={"token": token})
        after = service.store.query_rows(run_id=run.run_id, limit=10_000)[-1].seq
        with http.stream("GET", f"/ui/runs/{run.run_id}/stream?after={after}") as stream:
            lines = stream.iter_lines()
            next(lines)  # "retry: ..." : the stream is open
            for seq in range(30):
                envelope = {
                    "kind": "start" if seq == 0 else "emit",
                    "seq": seq,
                    "at": "2026-12-01T00:00:00Z",
                    "run_id": entry.task.run_id,
                    "step_id": entry.task.step_id,
                    "task_id": entry.task.task_id,
                    "seed": 1,
                    "adapter": {"name": "bench", "version": "1"},
                } | ({} if seq == 0 else {"event": "message", "payload": {"n": seq}})
                t0 = time.perf_counter()
                service.post_event(entry.task.task_id, entry.lease.fencing_token, envelope)
                for line in lines:
                    if line.startswith("data: ") and "task_event" in line:
                        samples.append(time.perf_counter() - t0)
                        break
    return {"live_latency_p50_ms": _p50(samples), "live_latency_max_ms": max(samples) * 1000}


def _top(service: SyncFleetService) -> float:
    from fleetforge.top import FleetModel

    service.submit_run(
        {
            "name": "busy",
            "seed": 1,
            "steps": [{"id": f"s{i}", "type": "tool", "tool": "noop"} for i in range(1000)],
            "defaults": {"worker": {"role": "busy"}},
        }
    )
    worker = _worker(service, "bench-top", "busy")
    while service.lease_task(worker, max_tasks=100, lease_seconds=600):
        pass
    rows = service.store.query_rows(limit=100_000)
    applies = []
    for _ in range(20):
        model = FleetModel()
        model.apply(rows[:-200])
        t0 = time.perf_counter()
        model.apply(rows[-200:])
        applies.append(time.perf_counter() - t0)
    assert model.active_tasks() >= 1000, model.active_tasks()
    redraw = anyio.run(_top_redraw, service.store)
    NOTES.append(
        f"top: applying 200 new events p50 {_p50(applies):.2f} ms, redrawing p50 {redraw:.2f} ms"
    )
    return _p50(applies) + redraw


async def _top_redraw(store: Any) -> float:
    """p50 of the Textual app's redraw (runs, workers, queues, sparkline, alerts), headless."""
    from fleetforge.client import FleetClient
    from fleetforge.top import load_app

    async with FleetClient.local(store) as client:
        app = load_app()(client, wait_seconds=0.2)
        async with app.run_test(size=(200, 60)) as pilot:
            deadline = time.monotonic() + 120
            while app.model.active_tasks() < 1000 or app.refreshes == 0:
                assert time.monotonic() < deadline, "top did not load the fleet"
                await pilot.pause(0.05)
            samples = []
            for _ in range(20):
                app._runs_shown = {}  # the worst case: every row of the runs table rebuilt
                t0 = time.perf_counter()
                app.redraw()
                samples.append(time.perf_counter() - t0)
                await pilot.pause()
            return _p50(samples)


def _measure(url: str, prefix: str, tmp: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    with open_store(url) as store:
        fleet = FleetService(store, artifacts=ArtifactStore(tmp / f"{prefix}-artifacts"))
        token = TokenStore(store).create("bench", ["read"])[0]
        with TestClient(
            http_app(fleet, ServerOptions(auth=True)), base_url="http://127.0.0.1"
        ) as client:
            client.post("/ui/login", data={"token": token})
            figures["run_page_200_p50_ms"] = _run_page(fleet.sync, client)
            figures |= _live(fleet, token)
            figures |= _runs_list(fleet.sync, client)
        try:
            figures["top_refresh_1k_p50_ms"] = _top(fleet.sync)
        except ImportError as exc:
            NOTES.append(f"top not measured: {exc}")
    return {f"{prefix}_{k}": v for k, v in figures.items()}


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fleetforge-bench-") as tmp:
        figures |= _measure(f"sqlite:///{tmp}/ui.db", "sqlite", Path(tmp))
        bindir = find_postgres_bin()
        if bindir is None:
            NOTES.append("PostgreSQL server programs not found: no PostgreSQL figures")
            return figures
        with postgres_server(bindir, durable=True) as admin:
            figures |= _measure(admin, "postgres", Path(tmp))
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
    for note in NOTES:
        print(note)
