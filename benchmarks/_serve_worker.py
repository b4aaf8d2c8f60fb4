"""An SDK ``Worker`` over HTTP, as a process: ``URL TOKEN WORKER_ID CONCURRENCY``.

Run by bench_fleet.py against ``fleetforge serve``: it connects with the token, registers, prints
"ready", waits for a line on stdin, works with a no-op handler until the fleet has nothing left,
then prints "<tasks completed> <monotonic time when it stopped>".
"""

from __future__ import annotations

import sys
import time

import anyio
import anyio.to_thread

from fleetforge.client import FleetClient
from fleetforge.worker import TaskRun, Worker


async def _noop(task: TaskRun) -> None:
    return None


async def main(url: str, token: str, worker_id: str, concurrency: int) -> None:
    async with FleetClient.connect(url, token=token) as client:
        worker = Worker(client, _noop, worker_id=worker_id, concurrency=concurrency)
        await worker.register()
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        stats = await worker.run(stop_when_idle=True)
        stopped = time.monotonic()
        if stats.errors or stats.failed or stats.lost:
            print(f"worker {worker_id}: {stats}", file=sys.stderr, flush=True)
        print(stats.completed, stopped, flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
