"""The built-in workspace pack's server: confined to its root, also while the tree is raced."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.server.fastmcp.exceptions import ToolError
from mcp.shared.memory import create_connected_server_and_client_session

from fleetforge.armory.workspace import MAX_READ, Workspace, build_workspace_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace and, beside it, a directory it must never reach."""
    root, outside = tmp_path / "ws", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("OUTSIDE")
    return root, outside


def test_write_read_list(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    ws = Workspace(root)
    assert ws.write("notes/./deep/a.md", "hello ✓") == "notes/deep/a.md"
    assert ws.read("notes/deep/a.md") == "hello ✓"
    assert ws.write("b.md", "b") == "b.md"
    assert ws.list_files() == ["b.md", "notes/deep/a.md"]
    assert ws.list_files("notes") == ["notes/deep/a.md"]
    (root / "b.md").chmod(0o640)
    ws.write("b.md", "again")  # replaced by a rename, its mode kept, no temporary file left
    assert stat.S_IMODE((root / "b.md").stat().st_mode) == 0o640
    assert sorted(p.name for p in root.iterdir()) == ["b.md", "notes"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (("read", "/etc/passwd"), "must be relative to the workspace"),
        (("write", "../x", "x"), "must not contain '..'"),
        (("read", "a/../../secret.txt"), "must not contain '..'"),
        (("read", "link/secret.txt"), "'link' is a symlink"),
        (("write", "link/new.txt", "x"), "'link' is a symlink"),
        (("list_files", "link"), "'link' is a symlink"),
        (("read", "file-link"), "'file-link' is a symlink"),
        (("write", "file-link", "x"), "'file-link' is a symlink"),
        (("read", "missing.md"), "no file 'missing.md' in the workspace"),
        (("read", "nowhere/missing.md"), "no file 'nowhere/missing.md' in the workspace"),
        (("list_files", "nowhere"), "'nowhere' is not a directory of the workspace"),
        (("read", "dir"), "'dir' is not a regular file"),
        (("write", "dir", "x"), "'dir' is a directory"),
        (("write", "plain.txt/x", "x"), "'plain.txt' is not a directory"),
        (("read", "fifo"), "'fifo' is not a regular file"),
        (("read", "big"), f"larger than {MAX_READ} bytes"),
        (("read", "latin1"), "is not UTF-8 text"),
        (("write", ".", "x"), "must name a file"),
    ],
)
def test_refusals_name_the_problem(tree: tuple[Path, Path], call: Any, message: str) -> None:
    root, outside = tree
    (root / "link").symlink_to(outside)
    (root / "file-link").symlink_to(outside / "secret.txt")
    (root / "dir").mkdir()
    (root / "plain.txt").write_text("p")
    os.mkfifo(root / "fifo")
    (root / "big").write_bytes(b"x" * (MAX_READ + 1))
    (root / "latin1").write_bytes("é".encode("latin-1"))
    name, *args = call
    with pytest.raises(ToolError, match=message):
        getattr(Workspace(root), name)(*args)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "OUTSIDE"


def test_listing_leaves_out_symlinks(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "link").symlink_to(outside)
    (root / "file-link").symlink_to(outside / "secret.txt")
    (root / "real.txt").write_text("r")
    assert Workspace(root).list_files() == ["real.txt"]


async def test_tools_over_an_mcp_session(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    async with create_connected_server_and_client_session(build_workspace_server(root)) as s:
        wrote = await s.call_tool("write", {"path": "a/b.txt", "content": "hi"})
        assert wrote.structuredContent == {"result": "a/b.txt"}
        read = await s.call_tool("read", {"path": "a/b.txt"})
        assert read.structuredContent == {"result": "hi"}
        listed = await s.call_tool("list_files", {})
        assert listed.structuredContent == {"result": ["a/b.txt"]}
        refused = await s.call_tool("read", {"path": "../secret.txt"})
        assert refused.isError
        assert "must not contain '..'" in str(refused.content)


SWAPPER = """
import os, random, select, sys, time
root, outside = sys.argv[1:3]
sub = os.path.join(root, "sub")
swaps = 0


def hold():  # keep the current state a little while (0-200 us), so each state gets its turn
    until = time.perf_counter() + random.random() * 2e-4
    while time.perf_counter() < until:
        pass


print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:  # until the test closes our stdin
    swaps += 1
    hold()
    parked = os.path.join(root, f"parked{swaps}")
    try:
        os.rename(sub, parked)
    except FileNotFoundError:
        pass
    try:
        os.symlink(outside, sub)
    except FileExistsError:  # the server made the directory again meanwhile
        pass
    hold()
    try:
        os.unlink(sub)
    except (FileNotFoundError, IsADirectoryError):
        pass
    try:
        os.rename(parked, sub)
    except OSError:
        pass
print(swaps, flush=True)
"""


@pytest.fixture
def swapping(tree: tuple[Path, Path]) -> Iterator[tuple[Path, Path, Callable[[], int]]]:
    """Another process that keeps swapping the workspace's ``sub`` directory for a symlink to
    the outside directory and back, as a hostile process sharing the workspace would."""
    root, outside = tree
    sub = root / "sub"
    sub.mkdir()
    (sub / "secret.txt").write_text("inside")
    (sub / "inside-only.txt").write_text("")
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(root), str(outside)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def stopped() -> int:
        """Stop swapping; how many swaps were done."""
        out, _ = swapper.communicate(timeout=30)
        return int(out.split()[-1])

    try:
        assert swapper.stdout is not None
        assert swapper.stdout.readline() == "ready\n"
        yield root, outside, stopped
    finally:
        if swapper.returncode is None:
            swapper.kill()
            swapper.communicate()


async def test_racing_symlink_swaps_never_let_a_write_out(
    swapping: tuple[Path, Path, Callable[[], int]],
) -> None:
    root, outside, stopped = swapping
    server = build_workspace_server(root)
    written = refused = 0
    # 1,000 writes, and on until the race really ran: some writes landed in the directory,
    # some met the symlink (on a busy machine the swapper may sit still for a while)
    while written + refused < 1000 or not (written and refused):
        n = written + refused
        assert n < 20_000, (written, refused, stopped())
        try:
            await server.call_tool("write", {"path": f"sub/f{n}.txt", "content": "x"})
            written += 1
        except ToolError:
            refused += 1
        assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"], f"write {n} escaped"
    stopped()
    landed = [p for p in root.rglob("f*.txt") if not p.is_symlink()]
    assert len(landed) == written


async def test_racing_symlink_swaps_never_let_a_read_or_listing_out(
    swapping: tuple[Path, Path, Callable[[], int]],
) -> None:
    root, _, stopped = swapping
    server = build_workspace_server(root)
    seen = {"read": 0, "list_files": 0, "refused": 0}
    calls = (("read", {"path": "sub/secret.txt"}), ("list_files", {"directory": "sub"}))
    while sum(seen.values()) < 1000 or not all(seen.values()):
        assert sum(seen.values()) < 100_000, (seen, stopped())
        for tool, args in calls:
            try:
                result = await server.call_tool(tool, args)
            except ToolError:
                seen["refused"] += 1
                continue
            if tool == "read":
                assert "OUTSIDE" not in str(result), "a read reached outside the workspace"
            else:  # only the real directory has this file; outside there is just secret.txt
                assert "sub/inside-only.txt" in str(result), "a listing reached outside"
            seen[tool] += 1
    stopped()
