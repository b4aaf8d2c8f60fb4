"""The commands of README.md and docs/quickstart.md, run as written.

Each ```console block is a shell session: a ``$ `` line is a command (a trailing ``\\`` continues
it), the lines under it are what it prints. Blocks run in order, each in a fresh folder holding
the files the page introduces (``shout.json``, ``my_agents.py``, ``notes.md``, ``examples/``,
``.venv``), unless the block is preceded by ``<!-- same folder -->``: then it continues the
previous block's folder, and the servers it left running. Commands run through bash with
.venv/bin first on PATH, as written but for what cannot be the same here:

- ``fleetforge serve`` listens on a free port (``--port``), and the page's ``127.0.0.1:8765``
  becomes that port; any other port on the page becomes one that nothing listens on;
- ``postgresql://fleet@db/fleet`` is the test suite's PostgreSQL server;
- ``make demo`` is what it runs once installed, ``.venv/bin/fleetforge demo``, from a shell whose
  PATH has no venv (so the commands it prints must work without one);
- ``RUN`` and a run id on the page are the run this session submitted last; a token the page
  shows as ``ffk_Xyz...`` is the one the command above it printed.

``serve`` and ``events --follow`` run in the background until their first line. Every line the
page shows under a command must be in what the command printed (run ids, tokens, digests,
durations, ports and host-pid worker ids masked; lines with ``…`` are elided); a command shown
printing ``error:`` must fail, anything else succeed, and no command prints a traceback.
Commands that cannot run here are in ``ELSEWHERE``, each with where it is tested or why not.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).parents[1]
VENV = Path(sys.executable).parent.parent
PAGES = ["README.md", "docs/quickstart.md"]
SAME_FOLDER = "<!-- same folder -->"

# a command (the start of it, or "page: start") → where it is tested instead, or why not here
ELSEWHERE = {
    "make test": "this is the test suite",
    "README.md: make demo": "docs/quickstart.md's first command, run here",
    "pip install -e": "would change the test environment; tests/test_packaging.py installs "
    "a wheel of the checkout into a clean venv",
    ".venv/bin/python examples/": "tests/test_adapters.py::test_examples_complete_a_task_offline",
    "claude mcp add": "needs Claude Code; tests/test_mcp_inspector.py drives the server with a "
    "real MCP client (make check-mcp)",
    "demo --model": "needs a model provider; tests/test_demo.py::"
    "test_hello_fleet_with_a_real_model_provider runs it against a scripted loopback server",
}

_MASKS = [
    (re.compile(r"run_[0-9A-Z]{26}"), "RUN_ID"),
    (re.compile(r"ffk_[A-Za-z0-9_-]+(\.\.\.)?"), "TOKEN"),
    (re.compile(r"sha256:[0-9a-f]{8,64}"), "DIGEST"),
    (re.compile(r"(sha256/[0-9a-f]{2}/[0-9a-f]{2}/)[0-9a-f]+"), r"\1DIGEST"),
    (re.compile(r"\b\d+(\.\d+)?s\b"), "Ns"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"worker-[\w.-]+?-\d+\b"), "worker-HOST-PID"),
]


@dataclass
class Command:
    text: str
    shown: list[str] = field(default_factory=list)


@dataclass
class Block:
    page: str
    index: int
    same_folder: bool
    commands: list[Command]

    @property
    def id(self) -> str:
        return f"{self.page}#{self.index}"


def blocks(page: str) -> list[Block]:
    text = (ROOT / page).read_text()
    found = []
    for index, match in enumerate(re.finditer(r"```console\n(.*?)```", text, flags=re.DOTALL)):
        before = text[: match.start()].rstrip()
        commands: list[Command] = []
        lines = iter(match.group(1).splitlines())
        for line in lines:
            if line.startswith("$ "):
                command = line[2:]
                while command.rstrip().endswith("\\"):
                    command = command.rstrip()[:-1] + " " + next(lines).strip()
                commands.append(Command(command))
            elif commands and line.strip():
                commands[-1].shown.append(line)
        found.append(Block(page, index, before.endswith(SAME_FOLDER), commands))
    return found


def _mask(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _files(folder: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    [shout] = [b for b in re.findall(r"```json\n(.*?)```", readme, re.S) if '"shout"' in b]
    [agents] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "def shout" in b]
    (folder / "shout.json").write_text(shout)
    (folder / "my_agents.py").write_text(agents)
    (folder / "notes.md").write_text("# Notes\n\nA fleet of agents, and what they did.\n")
    (folder / "examples").symlink_to(ROOT / "examples")
    (folder / ".venv").symlink_to(VENV)


class Session:
    """One folder, its environment, and what earlier commands printed."""

    def __init__(self, folder: Path, pg_url: str | None) -> None:
        self.folder = folder
        self.pg_url = pg_url
        self.port = _free_port()
        self.closed_port = _free_port()
        self.run_id: str | None = None
        self.tokens: dict[str, str] = {}
        self.background: list[subprocess.Popen[str]] = []
        home = folder / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("FLEETFORGE_", "OTEL_", "OPENAI_"))}  # fmt: skip
        env.update(PATH=f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin", HOME=str(home),
                   CREWAI_STORAGE_DIR=str(home / "crewai"), COLUMNS="200")  # fmt: skip
        env.pop("VIRTUAL_ENV", None)
        self.env = env

    def command(self, text: str) -> str:
        if text.startswith("make demo"):  # what it runs, from a shell without the venv
            text = "PATH=/usr/local/bin:/usr/bin:/bin .venv/bin/fleetforge demo"
        if re.match(r"fleetforge serve\b", text) and "--port" not in text:
            code, hash_, comment = text.partition("#")
            text = f"{code.rstrip()} --port {self.port}" + (f"  {hash_}{comment}" if hash_ else "")
        text = text.replace("127.0.0.1:8765", f"127.0.0.1:{self.port}")
        others = re.compile(rf"127\.0\.0\.1:(?!{self.port}\b)\d+")  # a port nothing is on
        text = others.sub(f"127.0.0.1:{self.closed_port}", text)
        if self.pg_url is not None:
            text = text.replace("postgresql://fleet@db/fleet", self.pg_url)
        for placeholder, token in self.tokens.items():
            text = text.replace(placeholder, token)
        if self.run_id is not None:
            text = re.sub(r"run_[0-9A-Z]{26}|\bRUN\b", self.run_id, text)
        return text

    def run(self, command: Command, *, as_printed: bool = False) -> None:
        text = command.text if as_printed else self.command(command.text)
        if re.match(r"fleetforge (serve|events .*--follow)", text):
            ready = "fleetforge MCP server at" if "serve" in text else "following"
            first = self._start(text, ready)
            self._check(command, first, f"$ {text}\n{first}")
            return
        done = subprocess.run(["bash", "-c", text], cwd=self.folder, env=self.env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        printed = done.stdout + done.stderr
        where = f"$ {text}\n{printed}"
        assert "Traceback" not in printed, where
        failing = any(line.startswith("error:") for line in command.shown)
        assert (done.returncode != 0) == failing, f"exit {done.returncode}: {where}"
        self._check(command, printed, where)
        for placeholder in (s for s in command.shown if re.fullmatch(r"ffk_\w+\.\.\.", s)):
            self.tokens[placeholder] = re.findall(r"ffk_[A-Za-z0-9_-]{20,}", done.stdout)[-1]
        ids = re.findall(r"run_[0-9A-Z]{26}", done.stdout + done.stderr)
        if ids and re.search(r"\b(submit|demo)\b", text):
            self.run_id = ids[0]
        if re.search(r"\bdemo\b", text):  # the demo's own "Look further" commands work too
            hints = done.stdout.split("Look further:", 1)[-1].splitlines()
            further = [line.strip() for line in hints if line.startswith("  ") and "(" not in line]
            assert len(further) == 5, where
            for line in further:
                self.run(Command(line), as_printed=True)

    def _check(self, command: Command, printed: str, where: str) -> None:
        actual = "\n".join(_mask(line) for line in printed.splitlines())
        for line in command.shown:
            if "…" in line or re.fullmatch(r"ffk_\w+\.\.\.", line):
                continue
            assert _mask(line) in actual, f"the page shows {line!r}; the command printed:\n{where}"

    def _start(self, text: str, ready: str) -> str:
        proc = subprocess.Popen(["bash", "-c", f"exec {text}"], cwd=self.folder, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)  # fmt: skip
        self.background.append(proc)
        assert proc.stderr is not None
        first = _readline(proc.stderr, 60)
        assert ready in first, f"$ {text}\nprinted {first!r}, exit {proc.poll()}"
        return first

    def close(self) -> None:
        for proc in self.background:
            proc.send_signal(signal.SIGTERM)
            try:
                _, rest = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, rest = proc.communicate()
            assert "Traceback" not in (rest or ""), rest
            assert "ClosedResourceError" not in (rest or ""), rest  # clients that left


def _readline(stream: IO[str], timeout: float) -> str:
    """The stream's next line, waiting at most ``timeout`` seconds for it."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                return stream.readline()
    return ""


def _elsewhere(page: str, command: Command) -> str | None:
    for key, why in ELSEWHERE.items():
        where, _, start = key.rpartition(": ")
        if (not where or where == page) and start in command.text:
            return why
    return None


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[list[Session]]:
    opened: list[Session] = []
    yield opened
    for session in opened:
        session.close()


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_the_commands_of_the_page_run_as_written(
    page: str, tmp_path: Path, request: pytest.FixtureRequest, sessions: list[Session]
) -> None:
    found = blocks(page)
    needs_pg = any("postgresql://fleet@db/fleet" in c.text for b in found for c in b.commands)
    pg_url = request.getfixturevalue("pg_url") if needs_pg else None
    ran = 0
    for block in found:
        if not block.same_folder or not sessions:
            if sessions:
                sessions[-1].close()
                sessions[-1].background.clear()
            folder = tmp_path / block.id.replace("/", "_").replace("#", "_")
            folder.mkdir()
            _files(folder)
            sessions.append(Session(folder, pg_url))
        for command in block.commands:
            if _elsewhere(page, command) is None:
                sessions[-1].run(command)
                ran += 1
    assert ran >= 5


def test_every_command_left_out_is_one_the_pages_have() -> None:
    left_out = {
        key
        for page in PAGES
        for block in blocks(page)
        for command in block.commands
        for key, why in ELSEWHERE.items()
        if _elsewhere(page, command) == why
    }
    assert left_out == set(ELSEWHERE)


def test_the_pages_say_how_to_install_and_run_the_cli() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install fleetforge" not in readme  # not published: install from a checkout
    assert 'pip install -e "/path/to/fleetforge[' in readme
    assert ".venv/bin/fleetforge" in readme
