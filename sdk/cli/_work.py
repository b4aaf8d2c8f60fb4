"""``fleetforge worker MODULE:HANDLER`` and ``fleetforge work --exec CMD``: SDK Workers.

``worker`` imports a handler (``package.module:function``, a sync or async callable taking a
:class:`~fleetforge.worker.TaskRun`) and runs it on a :class:`~fleetforge.worker.Worker`, in
process over ``--store`` or remotely with ``--url`` and ``--token``.

``work --exec`` is a Worker whose handler runs a shell command per task: the task's inputs as
JSON on stdin and ``FLEETFORGE_RUN_ID``, ``FLEETFORGE_STEP_ID``, ``FLEETFORGE_TASK_ID``,
``FLEETFORGE_ATTEMPT``, ``FLEETFORGE_SEED`` in its environment, which is the worker's without
``FLEETFORGE_TOKEN`` and ``FLEETFORGE_TOKENS`` (``--pass-env NAME`` passes one). Its stdout is
the result (parsed as JSON when it is JSON, else the text). A non-zero exit fails the attempt
(``tool_error``, with the end of stderr as the message). Each command runs in its own session
under a small supervisor (:mod:`fleetforge.cli._supervisor`) that ends its whole process group
when the task ends: the command exits, the lease is lost, the run is cancelled, the worker stops
or dies (even ``kill -9``).

Both stop gracefully on SIGINT/SIGTERM: no new leases; running tasks get ``--shutdown-grace``
seconds, then are released back to the inbox. A handler that does not stop when cancelled
cannot hold the process: it exits ``--shutdown-grace`` + 4.5 seconds after the signal at the
latest (status 5 when a handler was still running).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import anyio
import typer
from anyio.abc import TaskStatus

from fleetforge.cli._console import err, out, print_json, text
from fleetforge.cli._context import Scorers, globals_of, load_scorers
from fleetforge.cli._errors import reporting
from fleetforge.contracts.enums import FleetTrustLevel
from fleetforge.errors import UsageError

__all__ = ["work", "worker"]

_TRUST_HELP = (
    "Its trust level: untrusted, sandboxed, internal or privileged (with --url, its token's "
    "level applies instead)."
)


def worker(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="The handler, as package.module:function.")],
    worker_id: Annotated[
        str | None,
        typer.Option(
            help="Worker id (default: with --url, the worker a bound --token names; "
            "else worker-HOST-PID)."
        ),
    ] = None,
    role: Annotated[str | None, typer.Option(help="Role this worker serves.")] = None,
    tools: Annotated[
        list[str] | None, typer.Option("--tool", help="A tool it offers (repeatable).")
    ] = None,
    trust: Annotated[FleetTrustLevel, typer.Option(metavar="<level>", help=_TRUST_HELP)] = (
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
    scorers: Scorers = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="At the end, print what it did as JSON.")
    ] = False,
) -> None:
    """Run a Python handler (module:function) for every task this worker can lease.

    In process (--store) this worker judges its own receipts: --scorers loads the custom
    scorers they need. With --url the server judges them (fleetforge serve --scorers)."""
    with reporting(out, err, as_json=as_json):
        _scorers(scorers, globals_of(ctx).url)
        handler = _import(target)
        _serve(ctx, handler, worker_id=worker_id, role=role,
               tools=tools, trust=trust, concurrency=concurrency, lease_seconds=lease_seconds,
               shutdown_grace=shutdown_grace, exit_when_idle=exit_when_idle,
               adapter=target.partition(":")[0], frameworks=["python"],
               as_json=as_json)  # fmt: skip


def work(
    ctx: typer.Context,
    command: Annotated[str, typer.Option("--exec", help="Shell command run once per task.")],
    worker_id: Annotated[
        str | None,
        typer.Option(
            help="Worker id (default: with --url, the worker a bound --token names; "
            "else exec-HOST-PID)."
        ),
    ] = None,
    role: Annotated[str | None, typer.Option(help="Role this worker serves.")] = None,
    tools: Annotated[
        list[str] | None, typer.Option("--tool", help="A tool it offers (repeatable).")
    ] = None,
    trust: Annotated[FleetTrustLevel, typer.Option(metavar="<level>", help=_TRUST_HELP)] = (
        FleetTrustLevel.INTERNAL
    ),
    concurrency: Annotated[int, typer.Option(help="Commands run at once.")] = 1,
    lease_seconds: Annotated[float, typer.Option(help="Lease length; heartbeats renew it.")] = 30.0,
    exit_when_idle: Annotated[
        bool, typer.Option("--exit-when-idle", help="Stop when no task is waiting.")
    ] = False,
    poll_seconds: Annotated[float, typer.Option(help="Longest wait of one lease call.")] = 1.0,
    shutdown_grace: Annotated[
        float, typer.Option(help="Seconds running commands get to finish on SIGINT/SIGTERM.")
    ] = 30.0,
    pass_env: Annotated[
        list[str] | None,
        typer.Option(
            "--pass-env",
            metavar="NAME",
            help="Pass this variable to the command although it is withheld by default "
            "(FLEETFORGE_TOKEN, FLEETFORGE_TOKENS). Repeatable.",
        ),
    ] = None,
    scorers: Scorers = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="At the end, print what it did as JSON.")
    ] = False,
) -> None:
    """Lease tasks and run a shell command for each (inputs on stdin, result on stdout).

    In process (--store) this worker judges its own receipts: --scorers loads the custom
    scorers they need. With --url the server judges them (fleetforge serve --scorers)."""
    default = f"exec-{socket.gethostname()}-{os.getpid()}"
    handler = _exec_handler(command, pass_env or [])
    with reporting(out, err, as_json=as_json):
        _scorers(scorers, globals_of(ctx).url)
        _serve(ctx, handler, worker_id=worker_id, default_id=default,
               role=role, tools=tools, trust=trust, concurrency=concurrency,
               lease_seconds=lease_seconds, shutdown_grace=shutdown_grace,
               exit_when_idle=exit_when_idle, adapter="exec",
               frameworks=["exec"], poll_seconds=poll_seconds, as_json=as_json)  # fmt: skip


def _scorers(modules: list[str] | None, url: str | None) -> None:
    load_scorers(modules)
    if modules and url:
        err.print(text(f"note: {url} judges the receipts; --scorers matters there, not here"))


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
    default_id: str | None = None,
    as_json: bool = False,
) -> None:
    from fleetforge.client import FleetClient
    from fleetforge.telemetry import configure
    from fleetforge.worker import Worker

    g = globals_of(ctx)
    configure(f"fleetforge-{adapter}")

    async def main() -> None:
        client = (
            FleetClient.connect(g.url, token=g.token)
            if g.url
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
                default_id=default_id,
            )
            await runner.register()  # a bound token names the worker: print the real id
            where = g.where
            async with anyio.create_task_group() as tg:

                async def on_signal(*, task_status: TaskStatus[None]) -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        task_status.started()
                        async for _ in signals:
                            err.print(
                                f"stopping: no new tasks; running ones get {shutdown_grace:g}s"
                            )
                            runner.stop()
                            _exit_after(shutdown_grace + 4.5, finished)
                            return

                finished: list[bool] = []
                await tg.start(on_signal)
                local = getattr(client.transport, "fleet", None)
                if local is not None:  # a local store: deliver its alert outbox meanwhile
                    from fleetforge.fleet.alerts.dispatcher import AlertDispatcher

                    tg.start_soon(AlertDispatcher(local.sync.store, clock=local.sync.clock).run)
                # the line scripts wait for: from here on SIGINT/SIGTERM stop gracefully
                err.print(text(f"worker {runner.worker_id} waiting for tasks on {where}"))
                stats = await runner.run(stop_when_idle=exit_when_idle)
                finished.append(True)
                tg.cancel_scope.cancel()
            err.print(
                text(
                    f"worker {runner.worker_id}: {stats.completed} completed, {stats.rejected} "
                    f"rejected, {stats.failed} failed, {stats.lost} lost, {stats.released} "
                    f"released, {stats.paused} paused, {stats.errors} errors"
                )
            )
            if as_json:
                print_json({"worker_id": runner.worker_id, **dataclasses.asdict(stats)})

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


WITHHELD_ENV = ("FLEETFORGE_TOKEN", "FLEETFORGE_TOKENS")


def command_env(environ: Mapping[str, str], pass_env: Sequence[str] = ()) -> dict[str, str]:
    """The worker's environment minus the fleet's credentials (``WITHHELD_ENV``), unless
    ``pass_env`` names them."""
    withheld = set(WITHHELD_ENV) - set(pass_env)
    return {name: value for name, value in environ.items() if name not in withheld}


def _exec_handler(command: str, pass_env: Sequence[str] = ()) -> Callable[..., Any]:
    from fleetforge.cli import _supervisor
    from fleetforge.worker import TaskError, TaskRun

    supervisor = [sys.executable, "-I", "-S", _supervisor.__file__]

    def run_command(task: TaskRun) -> Any:
        spec = task.task
        env = command_env(os.environ, pass_env) | {
            "FLEETFORGE_RUN_ID": spec.run_id,
            "FLEETFORGE_STEP_ID": spec.step_id,
            "FLEETFORGE_TASK_ID": spec.task_id,
            "FLEETFORGE_ATTEMPT": str(task.entry.attempt),
            "FLEETFORGE_SEED": str(spec.seed),
        }
        started = time.monotonic()
        # the supervisor ends the command's process group when this pipe closes: when we
        # close it (task over) or when this process dies, however it dies
        control, stop = os.pipe()
        try:
            proc = subprocess.Popen(
                [*supervisor, "--control", str(control), "--", command],
                env=env,
                text=True,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(control,),
            )
        except BaseException:
            os.close(stop)
            raise
        finally:
            os.close(control)
        with proc, _closing(stop) as close:
            stdin: str | None = json.dumps(spec.inputs)
            while True:
                try:
                    stdout, stderr = proc.communicate(stdin, timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    stdin = None
                    if task.cancelled.is_set():  # lease lost, run cancelled or shutting down
                        close()
                        _wait_for(proc, _supervisor.GRACE_SECONDS + 5)
                        err.print(text(f"{spec.task_id}: stopped"))
                        return None
        if proc.returncode != 0:
            tail = stderr.strip().splitlines()[-5:]
            message = f"command exited {proc.returncode}" + (
                ": " + " | ".join(tail) if tail else ""
            )
            err.print(text(f"{spec.task_id}: failed ({message})"))
            raise TaskError(message, kind="tool_error")
        from fleetforge.contracts import FleetUsage

        task.usage = FleetUsage(wall_s=round(time.monotonic() - started, 6))
        err.print(text(f"{spec.task_id}: done"))
        return _parse(stdout)

    return run_command


@contextmanager
def _closing(fd: int) -> Iterator[Callable[[], None]]:
    """``fd``, closed once: by the callable yielded, else on leaving the block."""
    open_ = [True]

    def close() -> None:
        if open_[0]:
            open_[0] = False
            os.close(fd)

    try:
        yield close
    finally:
        close()


def _wait_for(proc: subprocess.Popen[str], seconds: float) -> None:
    """The supervisor's exit after it ended the command; killed if it takes longer."""
    try:
        proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def _parse(stdout: str) -> Any:
    text = stdout.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return stdout.rstrip("\n")
