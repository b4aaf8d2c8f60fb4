"""The consoles every command prints to: results to stdout, diagnostics to stderr."""

from __future__ import annotations

from rich.console import Console

__all__ = ["err", "out"]

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)
