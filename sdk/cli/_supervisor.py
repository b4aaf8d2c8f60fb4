"""The supervisor between ``fleetforge work --exec`` and one task's shell command.

``python -I -S _supervisor.py --control FD -- COMMAND`` runs ``/bin/sh -c COMMAND`` in a new
session (its own process group) with the supervisor's stdin, stdout and stderr, and ends the
whole group (SIGTERM, then SIGKILL after a short grace):

- when the shell exits (a pipeline's or a background job's processes left behind are ended);
- when the control pipe ``FD`` becomes readable: the worker closed it (the task ended: lease
  lost, run cancelled, worker stopping) or died (even ``kill -9``: the kernel closes it);
- on SIGTERM or SIGHUP.

SIGINT is ignored: a Ctrl-C at the worker's terminal reaches the worker, which gives running
commands its shutdown grace and then closes the pipe. On Linux the supervisor is a child
subreaper, so the group's orphans become its children and are reaped, not left as zombies.
The exit status is the shell's; a shell killed by a signal is reported by dying of the same
signal. A process that starts its own session (a daemon) leaves the group and is not ended.

Only the standard library, so it starts in a few milliseconds without the package
(``-I -S``: no site-packages, no environment variables read by Python, no script directory on
``sys.path``).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

__all__ = ["GRACE_SECONDS", "SHELL", "main"]

SHELL = "/bin/sh"
GRACE_SECONDS = 1.0  # between SIGTERM and SIGKILL
_KILL_WAIT = 1.0  # for SIGKILL to take effect before giving up
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGHUP}
_USAGE = "usage: _supervisor.py --control FD [--grace SECONDS] -- COMMAND"


def main(argv: list[str] | None = None) -> int:
    try:
        control, grace, command = _parse(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:  # argparse would cost a third of the start-up time
        print(f"{_USAGE}\nerror: {exc}", file=sys.stderr)
        return 2
    os.set_inheritable(control, False)
    wake_r, wake_w = os.pipe()  # signals arrive here, so one select() waits for everything
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for sig in (signal.SIGCHLD, signal.SIGINT, *_STOP_SIGNALS):
        signal.signal(sig, _note)
    _become_subreaper()
    try:
        leader = os.posix_spawn(
            SHELL,
            [SHELL, "-c", command],
            os.environ,
            setsid=True,
            # Python ignores SIGPIPE and SIGXFSZ; a shell pipeline needs the defaults
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, *_STOP_SIGNALS),
        )
    except OSError as exc:
        print(f"fleetforge: cannot start {SHELL}: {exc}", file=sys.stderr)
        return 127
    _let_go_of_stdio()
    status = _supervise(leader, control, wake_r)
    status = _end_group(leader, status, wake_r, grace)
    return _exit(status)


def _parse(argv: list[str]) -> tuple[int, float, str]:
    options: dict[str, str] = {}
    while argv and argv[0] != "--":
        if argv[0] not in ("--control", "--grace") or len(argv) < 2:
            raise ValueError(f"unexpected {argv[0]!r}")
        options[argv[0]] = argv[1]
        argv = argv[2:]
    if len(argv) != 2:
        raise ValueError("one COMMAND after --")
    if "--control" not in options:
        raise ValueError("--control FD is required")
    return int(options["--control"]), float(options.get("--grace", GRACE_SECONDS)), argv[1]


def _note(signum: int, frame: object) -> None:
    """A handler that does nothing: the wakeup fd carries the signal number to the loop."""


def _become_subreaper() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass  # orphans then go to init; ending the group still works


def _let_go_of_stdio() -> None:
    """Only the command holds the worker's stdin and stdout pipes from now on, so the worker
    sees EOF (and a command that stops reading sees EPIPE) exactly as without a supervisor."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)


def _supervise(leader: int, control: int, wake_r: int) -> int | None:
    """Wait until the shell exits (its wait status) or the worker says stop (``None``)."""
    poller = select.poll()
    poller.register(control, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    while True:
        status = _reap(leader, None)
        if status is not None:
            return status
        for fd, _ in poller.poll():
            if fd == control:  # closed (EOF, POLLHUP) or written to: either way, stop
                return None
            if _drain(wake_r) & _STOP_SIGNALS:
                return None


def _reap(leader: int, status: int | None) -> int | None:
    """Reap every child that exited (the shell, and orphans handed to a subreaper)."""
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == leader:
            status = wait_status


def _drain(wake_r: int) -> set[int]:
    signals: set[int] = set()
    while True:
        try:
            data = os.read(wake_r, 512)
        except BlockingIOError:
            return signals
        if not data:
            return signals
        signals.update(data)


def _end_group(leader: int, status: int | None, wake_r: int, grace: float) -> int | None:
    """SIGTERM the shell's process group, SIGKILL what is left after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, _KILL_WAIT)):
        try:
            os.killpg(leader, sig)  # the group's id is the shell's pid (setsid)
        except ProcessLookupError:
            return _reap(leader, status)
        except PermissionError:  # a member changed user; nothing more we can do
            return _reap(leader, status)
        deadline = time.monotonic() + wait
        while True:
            status = _reap(leader, status)
            if not _group_alive(leader):
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # SIGCHLD wakes this early; orphans adopted by init do not signal us, so poll too
            select.select([wake_r], [], [], min(left, 0.02))
            _drain(wake_r)
    return _reap(leader, status)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exit(status: int | None) -> int:
    if status is None:  # the shell was never reaped (stuck); report it killed
        return 128 + signal.SIGKILL
    if os.WIFSIGNALED(status):  # die of the same signal, so the worker sees what the shell saw
        sig = os.WTERMSIG(status)
        try:  # no core file of the supervisor for a shell that dumped core
            import resource

            _, hard = resource.getrlimit(resource.RLIMIT_CORE)
            resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
        except (ImportError, OSError, ValueError):
            pass
        signal.set_wakeup_fd(-1)
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        return 128 + sig
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
