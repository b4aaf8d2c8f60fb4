"""Options every command shares: ``--store`` and ``--artifacts`` (flag > environment > default)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from fleetforge.errors import NotFoundError
from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.settings import artifacts_root, store_url
from fleetforge.fleet.store import EventStore, open_store

__all__ = ["Globals", "Scorers", "globals_of", "load_scorers", "open_service", "opened_store"]

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
def open_service(ctx: typer.Context, *, existing: bool = False) -> Iterator[SyncFleetService]:
    """The FleetService over this invocation's store and artifact root.

    ``existing``: the command reads, or acts on a run that must exist, so a store that does
    not exist yet is not created (NotFoundError naming it). A run, step or artifact that is
    not found is reported with the store it was looked for in."""
    with opened_store(ctx, existing=existing) as store:
        yield SyncFleetService(store, artifacts=ArtifactStore(globals_of(ctx).artifacts_root))


@contextmanager
def opened_store(ctx: typer.Context, *, existing: bool = False) -> Iterator[EventStore]:
    """This invocation's store (``existing``: see :func:`open_service`)."""
    with open_store(globals_of(ctx).store_url, create=not existing) as store:
        try:
            yield store
        except NotFoundError as exc:
            if "store" in exc.context:
                raise
            raise NotFoundError(
                f"{exc.message} in the store {store.url}", details=exc.details,
                store=store.url, **exc.context,
            ) from exc  # fmt: skip
