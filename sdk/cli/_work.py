"""``fleetforge work --exec CMD``: a generic worker that runs a shell command per task.

The command gets the task's inputs as JSON on stdin and ``FLEETFORGE_RUN_ID``,
``FLEETFORGE_STEP_ID``, ``FLEETFORGE_TASK_ID``, ``FLEETFORGE_ATTEMPT``, ``FLEETFORGE_SEED`` in its
environment. Its stdout is the result (parsed as JSON when it is JSON, else the text). A non-zero
exit fails the attempt (``tool_error``, with the end of stderr as the message). The lease is
kept alive by heartbeats while the command runs; if it is lost, or the run is cancelled, the
command is killed. (The SDK's ``Worker`` will later run this loop.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from typing import Annotated, Any

import typer

from fleetforge.cli._console import err, out
from fleetforge.cli._context import open_service
from fleetforge.cli._errors import reporting
from fleetforge.contracts import FleetInboxEntry, FleetReceipt, FleetTrustLevel, FleetUsage
from fleetforge.errors import ConflictError
from fleetforge.fleet.service import SyncFleetService

__all__ = ["work"]


def work(
    ctx: typer.Context,
    command: Annotated[str, typer.Option("--exec", help="Shell command run once per task.")],
    worker_id: Annotated[
        str | None, typer.Option(help="Worker id (default: exec-HOST-PID).")
    ] = None,
    role: Annotated[str | None, typer.Option(help="Role this worker serves.")] = None,
    tools: Annotated[
        list[str] | None, typer.Option("--tool", help="A tool it offers (repeatable).")
    ] = None,
    trust: Annotated[FleetTrustLevel, typer.Option(help="Its trust level.")] = (
        FleetTrustLevel.INTERNAL
    ),
    lease_seconds: Annotated[float, typer.Option(help="Lease length; heartbeats renew it.")] = 30.0,
    exit_when_idle: Annotated[
        bool, typer.Option("--exit-when-idle", help="Stop when no task is waiting.")
    ] = False,
    poll_seconds: Annotated[float, typer.Option(help="How long each lease call waits.")] = 1.0,
) -> None:
    """Lease tasks and run a shell command for each (inputs on stdin, result on stdout)."""
    name = worker_id or f"exec-{socket.gethostname()}-{os.getpid()}"
    done = failed = 0
    with reporting(out, err), open_service(ctx) as fleet:
        fleet.register_worker(
            {
                "worker_id": name,
                "role": role,
                "tools": tools or [],
                "trust_level": trust,
                "frameworks": ["exec"],
            }
        )
        err.print(f"worker {name} waiting for tasks on {fleet.store.url}")
        try:
            while True:
                leased = fleet.lease_task(
                    name, lease_seconds=lease_seconds, wait_seconds=poll_seconds
                )
                if not leased:
                    if exit_when_idle:
                        break
                    continue
                for entry in leased:
                    if _run_one(fleet, entry, command, lease_seconds):
                        done += 1
                    else:
                        failed += 1
        except KeyboardInterrupt:
            err.print("interrupted")
    err.print(f"worker {name}: {done} completed, {failed} failed")


def _run_one(fleet: SyncFleetService, entry: FleetInboxEntry, command: str, lease: float) -> bool:
    assert entry.lease is not None
    task, token = entry.task, entry.lease.fencing_token
    env = os.environ | {
        "FLEETFORGE_RUN_ID": task.run_id,
        "FLEETFORGE_STEP_ID": task.step_id,
        "FLEETFORGE_TASK_ID": task.task_id,
        "FLEETFORGE_ATTEMPT": str(entry.attempt),
        "FLEETFORGE_SEED": str(task.seed),
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        shell=True,
        env=env,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lost: list[str] = []
    stop = threading.Event()

    def keep_alive() -> None:
        while not stop.wait(max(lease / 3, 0.05)):
            try:
                fleet.heartbeat(task.task_id, token, lease_seconds=lease)
            except ConflictError as exc:  # lease lost, run cancelled or finished
                lost.append(exc.message)
                proc.kill()
                return

    beater = threading.Thread(target=keep_alive, daemon=True)
    beater.start()
    try:
        stdout, stderr = proc.communicate(json.dumps(task.inputs))
    finally:
        stop.set()
        beater.join()
    if lost:
        err.print(f"{task.task_id}: stopped ({lost[0]})")
        return False
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()[-5:]
        message = f"command exited {proc.returncode}" + (": " + " | ".join(tail) if tail else "")
        fleet.fail_task(task.task_id, token, "tool_error", message)
        err.print(f"{task.task_id}: failed ({message})")
        return False
    usage = FleetUsage(wall_s=round(time.monotonic() - started, 6))
    receipt = FleetReceipt.success(entry, _parse(stdout), usage=usage)
    verdict = fleet.post_receipt(receipt)
    err.print(f"{task.task_id}: {verdict.status}")
    return verdict.status == "accepted"


def _parse(stdout: str) -> Any:
    text = stdout.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return stdout.rstrip("\n")
