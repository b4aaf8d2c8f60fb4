"""Options every command shares: ``--store`` and ``--artifacts`` (flag > environment > default)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.settings import artifacts_root, store_url
from fleetforge.fleet.store import open_store

__all__ = ["Globals", "Scorers", "globals_of", "load_scorers", "open_service"]

Scorers = Annotated[
    list[str] | None,
    typer.Option(
        "--scorers",
        metavar="MODULE",
        help="Import MODULE, which registers custom scorers (repeatable). Scorers of the "
        "'fleetforge.scorers' entry-point group are always loaded.",
    ),
]


def load_scorers(modules: list[str] | None) -> None:
    """Load the custom scorers this process judges receipts with (UsageError if one cannot be
    loaded: better not to start than to reject every receipt of a step)."""
    from fleetforge.fleet.scoring import load_scorers as load

    load(modules or [])


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


@contextmanager
def open_service(ctx: typer.Context) -> Iterator[SyncFleetService]:
    """The FleetService over this invocation's store and artifact root."""
    g = globals_of(ctx)
    with open_store(g.store_url) as store:
        yield SyncFleetService(store, artifacts=ArtifactStore(g.artifacts_root))
