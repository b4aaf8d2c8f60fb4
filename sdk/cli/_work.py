"""``fleetforge worker MODULE:HANDLER`` and ``fleetforge work --exec CMD``: SDK Workers.

``worker`` imports a handler (``package.module:function``, a sync or async callable taking a
:class:`~fleetforge.worker.TaskRun`) and runs it on a :class:`~fleetforge.worker.Worker`, in
process over ``--store`` or remotely with ``--url`` and ``--token``.

``work --exec`` is a Worker whose handler runs a shell command per task: the task's inputs as
JSON on stdin and ``FLEETFORGE_RUN_ID``, ``FLEETFORGE_STEP_ID``, ``FLEETFORGE_TASK_ID``,
``FLEETFORGE_ATTEMPT``, ``FLEETFORGE_SEED`` in its environment. Its stdout is the result
(parsed as JSON when it is JSON, else the text). A non-zero exit fails the attempt
(``tool_error``, with the end of stderr as the message). When the lease is lost, or the run is
cancelled, the command is killed.

Both stop gracefully on SIGINT/SIGTERM: no new leases; running tasks get ``--shutdown-grace``
seconds, then are released back to the inbox. A handler that does not stop when cancelled
cannot hold the process: it exits ``--shutdown-grace`` + 4.5 seconds after the signal at the
latest (status 5 when a handler was still running).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import anyio
import typer

from fleetforge.cli._console import err, out
from fleetforge.cli._context import globals_of
from fleetforge.cli._errors import reporting
from fleetforge.contracts import FleetTrustLevel, FleetUsage
from fleetforge.errors import UsageError

__all__ = ["work", "worker"]

Url = Annotated[
    str | None, typer.Option(help="A fleet server (fleetforge serve) instead of --store.")
]
Token = Annotated[
    str | None,
    typer.Option(
        help="Bearer token for --url (default: $FLEETFORGE_TOKEN).", envvar="FLEETFORGE_TOKEN"
    ),
]


def worker(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="The handler, as package.module:function.")],
    url: Url = None,
    token: Token = None,
    worker_id: Annotated[str | None, typer.Option(help="Worker id (default: HOST-PID).")] = None,
    role: Annotated[str | None, typer.Option(help="Role this worker serves.")] = None,
    tools: Annotated[
        list[str] | None, typer.Option("--tool", help="A tool it offers (repeatable).")
    ] = None,
    trust: Annotated[FleetTrustLevel, typer.Option(help="Its trust level.")] = (
        FleetTrustLevel.INTERNAL
    ),
    concurrency: Annotated[int, typer.Option(help="Tasks worked on at once.")] = 1,
    lease_seconds: Annotated[float, typer.Option(help="Lease length; heartbeats renew it.")] = 30.0,
    shutdown_grace: Annotated[
        float, typer.Option(help="Seconds running tasks get to finish on SIGINT/SIGTERM.")
    ] = 30.0,
    exit_when_idle: Annotated[
        bool, typer.Option("--exit-when-idle", help="Stop when no task is waiting.")
    ] = False,
) -> None:
    """Run a Python handler (module:function) for every task this worker can lease."""
    with reporting(out, err):
        handler = _import(target)
        _serve(ctx, handler, url=url, token=token, worker_id=worker_id, role=role,
               tools=tools, trust=trust, concurrency=concurrency, lease_seconds=lease_seconds,
               shutdown_grace=shutdown_grace, exit_when_idle=exit_when_idle,
               adapter=target.partition(":")[0], frameworks=["python"])  # fmt: skip


def work(
    ctx: typer.Context,
    command: Annotated[str, typer.Option("--exec", help="Shell command run once per task.")],
    url: Url = None,
    token: Token = None,
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
    concurrency: Annotated[int, typer.Option(help="Commands run at once.")] = 1,
    lease_seconds: Annotated[float, typer.Option(help="Lease length; heartbeats renew it.")] = 30.0,
    exit_when_idle: Annotated[
        bool, typer.Option("--exit-when-idle", help="Stop when no task is waiting.")
    ] = False,
    poll_seconds: Annotated[float, typer.Option(help="Longest wait of one lease call.")] = 1.0,
) -> None:
    """Lease tasks and run a shell command for each (inputs on stdin, result on stdout)."""
    name = worker_id or f"exec-{socket.gethostname()}-{os.getpid()}"
    with reporting(out, err):
        _serve(ctx, _exec_handler(command), url=url, token=token, worker_id=name, role=role,
               tools=tools, trust=trust, concurrency=concurrency, lease_seconds=lease_seconds,
               shutdown_grace=30.0, exit_when_idle=exit_when_idle, adapter="exec",
               frameworks=["exec"], poll_seconds=poll_seconds)  # fmt: skip


def _import(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UsageError(f"handler {target!r}: use package.module:function")
    if os.getcwd() not in sys.path:  # like `python -m`: modules in the current directory import
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from exc
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise UsageError(f"{module_name!r} has no callable {attr!r}")
    return handler  # type: ignore[no-any-return]


def _serve(
    ctx: typer.Context,
    handler: Callable[..., Any],
    *,
    url: str | None,
    token: str | None,
    worker_id: str | None,
    role: str | None,
    tools: list[str] | None,
    trust: FleetTrustLevel,
    concurrency: int,
    lease_seconds: float,
    shutdown_grace: float,
    exit_when_idle: bool,
    adapter: str,
    frameworks: list[str],
    poll_seconds: float = 1.0,
) -> None:
    from fleetforge.client import FleetClient
    from fleetforge.telemetry import configure
    from fleetforge.worker import Worker

    g = globals_of(ctx)
    configure(f"fleetforge-{adapter}")

    async def main() -> None:
        client = (
            FleetClient.connect(url, token=token)
            if url
            else FleetClient.local(g.store_url, artifacts=g.artifacts_root)
        )
        async with client:
            runner = Worker(
                client,
                handler,
                worker_id=worker_id,
                capabilities={
                    "role": role,
                    "tools": tools or [],
                    "trust_level": trust,
                    "frameworks": frameworks,
                },
                concurrency=concurrency,
                lease_seconds=lease_seconds,
                poll_seconds=poll_seconds,
                shutdown_grace=shutdown_grace,
                adapter_name=adapter,
            )
            where = url or g.store_url
            err.print(f"worker {runner.worker_id} waiting for tasks on {where}")
            async with anyio.create_task_group() as tg:

                async def on_signal() -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for _ in signals:
                            err.print(
                                f"stopping: no new tasks; running ones get {shutdown_grace:g}s"
                            )
                            runner.stop()
                            _exit_after(shutdown_grace + 4.5, finished)
                            return

                finished: list[bool] = []
                tg.start_soon(on_signal)
                stats = await runner.run(stop_when_idle=exit_when_idle)
                finished.append(True)
                tg.cancel_scope.cancel()
            err.print(
                f"worker {runner.worker_id}: {stats.completed} completed, {stats.rejected} "
                f"rejected, {stats.failed} failed, {stats.lost} lost, {stats.released} released, "
                f"{stats.paused} paused, {stats.errors} errors"
            )

    anyio.run(main)


def _exit_after(seconds: float, finished: list[bool]) -> None:
    """Defence in depth after a stop signal: the Worker releases the tasks of handlers that do
    not stop, but a handler that ignores cancellation (or a thread that never returns) would
    keep the process alive. Exit anyway once the grace period and 4.5 s more are over."""

    def force() -> None:
        still = "" if finished else " (a handler ignored cancellation; its task was released)"
        err.print(f"worker: not stopped {seconds:g}s after the signal{still}; exiting now")
        sys.stderr.flush()
        os._exit(0 if finished else 5)

    timer = threading.Timer(seconds, force)
    timer.daemon = True  # a thread of its own: it fires even while the event loop is blocked
    timer.start()


def _exec_handler(command: str) -> Callable[..., Any]:
    from fleetforge.worker import TaskError, TaskRun

    def run_command(task: TaskRun) -> Any:
        spec = task.task
        env = os.environ | {
            "FLEETFORGE_RUN_ID": spec.run_id,
            "FLEETFORGE_STEP_ID": spec.step_id,
            "FLEETFORGE_TASK_ID": spec.task_id,
            "FLEETFORGE_ATTEMPT": str(task.entry.attempt),
            "FLEETFORGE_SEED": str(spec.seed),
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
        stdin: str | None = json.dumps(spec.inputs)
        while True:
            try:
                stdout, stderr = proc.communicate(stdin, timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                stdin = None
                if task.cancelled.is_set():  # lease lost, run cancelled or shutting down
                    proc.kill()
                    proc.communicate()
                    err.print(f"{spec.task_id}: stopped")
                    return None
        if proc.returncode != 0:
            tail = stderr.strip().splitlines()[-5:]
            message = f"command exited {proc.returncode}" + (
                ": " + " | ".join(tail) if tail else ""
            )
            err.print(f"{spec.task_id}: failed ({message})")
            raise TaskError(message, kind="tool_error")
        task.usage = FleetUsage(wall_s=round(time.monotonic() - started, 6))
        err.print(f"{spec.task_id}: done")
        return _parse(stdout)

    return run_command


def _parse(stdout: str) -> Any:
    text = stdout.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return stdout.rstrip("\n")
