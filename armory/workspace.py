"""The built-in ``workspace`` pack's MCP server: list, read and write files in one directory.

``python -m fleetforge.armory.workspace --root DIR`` serves over stdio. Every path is relative to
the root; absolute paths, ``..`` and symlinks are refused. Given a fleet and an agent identity
(``FLEETFORGE_AGENT``, see :mod:`._reservations`), a write to a path another agent holds
exclusively is refused, naming the holder (docs/coordination.md).

Checking a path and then using it is a race another process in the workspace can win (swap a
directory for a symlink in between). So nothing here resolves a path first: each operation
walks it one component at a time, opening every directory relative to its parent's file
descriptor with ``O_NOFOLLOW``, and opens or replaces the file relative to the last one. A symlink
met anywhere on the way fails the call, whenever it appeared.
"""

from __future__ import annotations

import argparse
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError

from fleetforge.armory._reservations import ReservationGuard

__all__ = ["MAX_READ", "Workspace", "build_workspace_server"]

MAX_READ = 1024 * 1024
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC


class Workspace:
    """File operations confined to ``root``; each raises ``ToolError`` with a clear message."""

    def __init__(self, root: Path | str, *, guard: ReservationGuard | None = None) -> None:
        self.root = Path(root).resolve()  # the operator's choice; may itself be a symlink
        self.guard = guard

    def list_files(self, directory: str = ".") -> list[str]:
        """The regular files under ``directory`` (relative to the root, sorted); symlinks and
        other special files are left out and never followed."""
        parts = [] if directory in ("", ".") else _parts(directory)
        found: list[str] = []
        missing = f"{directory!r} is not a directory of the workspace"
        with self._walk(parts, path=directory, missing=missing) as fd:
            _collect(fd, "/".join(parts), found)
        return sorted(found)

    def read(self, path: str) -> str:
        """A UTF-8 text file of at most :data:`MAX_READ` bytes."""
        *parents, name = _file_parts(path)
        missing = f"no file {path!r} in the workspace"
        with self._walk(parents, path=path, missing=missing) as dir_fd:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC  # a FIFO must not block
            try:
                fd = os.open(name, flags, dir_fd=dir_fd)
            except FileNotFoundError:
                raise ToolError(missing) from None
            except OSError as exc:
                raise _refusal(exc, path, name, dir_fd) from None
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise ToolError(f"{path!r} is not a regular file")
                if info.st_size > MAX_READ:
                    raise ToolError(f"{path!r} is larger than {MAX_READ} bytes")
                data = _read_at_most(fd, MAX_READ + 1)
            finally:
                os.close(fd)
        if len(data) > MAX_READ:  # it grew after the check
            raise ToolError(f"{path!r} is larger than {MAX_READ} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{path!r} is not UTF-8 text") from None

    def write(self, path: str, content: str) -> str:
        """Write ``content`` to ``path`` (missing parent directories are created) atomically:
        a temporary file in the same directory renamed over the name, so a reader never sees
        half a file and a hard link there is replaced, not written through. Returns the path."""
        parts = _file_parts(path)
        *parents, name = parts
        if self.guard is not None:
            self.guard.check("/".join(parts))
        data = content.encode("utf-8")
        with self._walk(parents, path=path) as dir_fd:
            try:
                old = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                old = None
            if old is not None and stat.S_ISDIR(old.st_mode):
                raise ToolError(f"{path!r} is a directory")
            if old is not None and stat.S_ISLNK(old.st_mode):
                raise ToolError(f"path {path!r}: {name!r} is a symlink; the workspace follows none")
            # a symlink that appears at the name from now on is replaced by the rename, never
            # written through
            temp = f".fleetforge-{secrets.token_hex(8)}.tmp"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
            fd = os.open(temp, flags, 0o666, dir_fd=dir_fd)
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                    if old is not None and stat.S_ISREG(old.st_mode):
                        os.fchmod(file.fileno(), stat.S_IMODE(old.st_mode))  # keep its mode
                os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException as exc:
                with suppress(FileNotFoundError):
                    os.unlink(temp, dir_fd=dir_fd)
                if isinstance(exc, IsADirectoryError):
                    raise ToolError(f"{path!r} is a directory") from None
                raise
        return "/".join(parts)

    @contextmanager
    def _walk(self, parts: list[str], *, path: str, missing: str | None = None) -> Iterator[int]:
        """A descriptor of the directory ``root/parts...``, each component opened relative to
        the one before without following symlinks. A missing one is made, or, when ``missing``
        is given, refused with that message."""
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        except OSError as exc:
            raise ToolError(f"the workspace {str(self.root)!r} cannot be opened: {exc}") from None
        try:
            for name in parts:
                try:
                    child = os.open(name, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    if missing is not None:
                        raise ToolError(missing) from None
                    with suppress(FileExistsError):  # made meanwhile: the open below checks it
                        os.mkdir(name, 0o777, dir_fd=fd)
                    try:
                        child = os.open(name, _DIR, dir_fd=fd)
                    except OSError as exc:
                        raise _refusal(exc, path, name, fd) from None
                except OSError as exc:
                    raise _refusal(exc, path, name, fd) from None
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)


def _parts(relative: str) -> list[str]:
    if not relative or PurePosixPath(relative).is_absolute() or relative.startswith("\\"):
        raise ToolError(f"path {relative!r} must be relative to the workspace")
    if "\0" in relative:
        raise ToolError(f"path {relative!r} must not contain a NUL character")
    parts = PurePosixPath(relative).parts
    if ".." in parts:
        raise ToolError(f"path {relative!r} must not contain '..'")
    return [part for part in parts if part != "."]


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit and (chunk := os.read(fd, min(limit - size, 1 << 16))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _file_parts(relative: str) -> list[str]:
    parts = _parts(relative)
    if not parts:
        raise ToolError(f"path {relative!r} must name a file")
    return parts


def _refusal(exc: OSError, path: str, name: str, dir_fd: int) -> ToolError:
    """Why opening ``name`` (one component of ``path``) without following symlinks failed."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        info = None
    if exc.errno == errno.ELOOP or (info is not None and stat.S_ISLNK(info.st_mode)):
        return ToolError(f"path {path!r}: {name!r} is a symlink; the workspace follows none")
    if exc.errno == errno.ENOTDIR:
        return ToolError(f"path {path!r}: {name!r} is not a directory")
    return ToolError(f"path {path!r}: {exc.strerror or exc}")


def _collect(dir_fd: int, prefix: str, found: list[str]) -> None:
    with os.scandir(dir_fd) as entries:
        listed = list(entries)
    for entry in listed:
        relative = f"{prefix}/{entry.name}" if prefix else entry.name
        if entry.is_file(follow_symlinks=False):
            found.append(relative)
        elif entry.is_dir(follow_symlinks=False):
            try:
                child = os.open(entry.name, _DIR, dir_fd=dir_fd)
            except OSError:
                continue  # gone or swapped for a symlink since it was listed
            try:
                _collect(child, relative, found)
            finally:
                os.close(child)


def build_workspace_server(root: Path, *, guard: ReservationGuard | None = None) -> FastMCP:
    workspace = Workspace(root, guard=guard)
    server = FastMCP("workspace", log_level="WARNING")

    @server.tool()
    def list_files(directory: str = ".") -> list[str]:
        """List the files under a directory of the workspace (relative paths, sorted)."""
        return workspace.list_files(directory)

    @server.tool()
    def read(path: str) -> str:
        """Read a text file of the workspace (at most 1 MiB)."""
        return workspace.read(path)

    @server.tool()
    def write(path: str, content: str) -> str:
        """Write a text file in the workspace (parents are created); returns its path."""
        return workspace.write(path, content)

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default=".", help="The workspace directory.")
    args = parser.parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    guard = ReservationGuard.from_env(os.environ, root)
    try:
        build_workspace_server(root, guard=guard).run()
    finally:
        if guard is not None:
            guard.close()


if __name__ == "__main__":
    main()
