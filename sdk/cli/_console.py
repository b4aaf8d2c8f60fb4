"""The consoles every command prints to: results to stdout, diagnostics to stderr.

Soft wrapping: a line is never broken to fit the terminal, so piped output stays one record a
line (tables still fit their columns to the width).
"""

from __future__ import annotations

from rich.console import Console

__all__ = ["err", "out"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
