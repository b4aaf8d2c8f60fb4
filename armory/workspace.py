"""The built-in ``workspace`` pack's MCP server: list, read and write files in one directory.

``python -m fleetforge.armory.workspace --root DIR`` serves over stdio. Every path is relative to
the root; absolute paths, ``..`` and symlinks that lead out of the root are refused.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError

__all__ = ["build_workspace_server", "confine"]

MAX_READ = 1024 * 1024


def confine(root: Path, relative: str) -> Path:
    """``relative`` inside ``root``, resolved; ToolError when it would leave the root."""
    if not relative or Path(relative).is_absolute() or relative.startswith(("/", "\\")):
        raise ToolError(f"path {relative!r} must be relative to the workspace")
    if ".." in Path(relative).parts:
        raise ToolError(f"path {relative!r} must not contain '..'")
    base = root.resolve()
    target = (base / relative).resolve()  # follows symlinks
    if target != base and base not in target.parents:
        raise ToolError(f"path {relative!r} leads out of the workspace")
    return target


def build_workspace_server(root: Path) -> FastMCP:
    server = FastMCP("workspace", log_level="WARNING")

    @server.tool()
    def list_files(directory: str = ".") -> list[str]:
        """List the files under a directory of the workspace (relative paths, sorted)."""
        start = root.resolve() if directory in ("", ".") else confine(root, directory)
        if not start.is_dir():
            raise ToolError(f"{directory!r} is not a directory of the workspace")
        base = root.resolve()
        found = []
        for dirpath, _, files in os.walk(start, followlinks=False):
            for name in files:
                path = Path(dirpath) / name
                if path.resolve() == path or base in path.resolve().parents:
                    found.append(str(path.relative_to(base)))
        return sorted(found)

    @server.tool()
    def read(path: str) -> str:
        """Read a text file of the workspace (at most 1 MiB)."""
        target = confine(root, path)
        if not target.is_file():
            raise ToolError(f"no file {path!r} in the workspace")
        if target.stat().st_size > MAX_READ:
            raise ToolError(f"{path!r} is larger than {MAX_READ} bytes")
        return target.read_text(encoding="utf-8")

    @server.tool()
    def write(path: str, content: str) -> str:
        """Write a text file in the workspace (parents are created); returns its path."""
        target = confine(root, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        return str(target.relative_to(root.resolve()))

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default=".", help="The workspace directory.")
    args = parser.parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    build_workspace_server(root).run()


if __name__ == "__main__":
    main()
