"""The consoles every command prints to: results to stdout, diagnostics to stderr.

Soft wrapping: a line is never broken to fit the terminal, so piped output stays one record a
line (tables still fit their columns to the width).
"""

from __future__ import annotations

import sys

from rich.console import Console

__all__ = ["err", "out"]

# Piped output gets room for wide tables (a terminal's own width is used when there is one).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)
