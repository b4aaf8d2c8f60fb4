"""Options every command shares: ``--store`` and ``--artifacts`` (flag > environment > default)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from fleetforge.fleet.settings import artifacts_root, store_url

__all__ = ["Globals", "globals_of"]


@dataclass
class Globals:
    store: str | None = None
    artifacts: str | None = None

    @property
    def store_url(self) -> str:
        return store_url(self.store)

    @property
    def artifacts_root(self) -> Path:
        return artifacts_root(self.artifacts)


def globals_of(ctx: typer.Context) -> Globals:
    """The shared options of this invocation."""
    found = ctx.find_root().obj
    return found if isinstance(found, Globals) else Globals()
