"""Options every command shares, and the one place a command gets its fleet.

``--store`` / ``--artifacts`` name a local fleet (flag > environment > default); ``--url`` /
``--token`` (or ``FLEETFORGE_URL`` / ``FLEETFORGE_TOKEN``) a remote one behind ``fleetforge
serve``. :func:`open_fleet` gives a command a :class:`~fleetforge.client.SyncFleetClient` on
either, so a command is written once for both. Nothing here imports the engine until a command
runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleetforge.errors import NotFoundError

if TYPE_CHECKING:
    from fleetforge.client import SyncFleetClient
    from fleetforge.fleet.store import EventStore

__all__ = [
    "Globals",
    "Scorers",
    "globals_of",
    "load_scorers",
    "open_fleet",
    "opened_store",
]

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
    url: str | None = None
    token: str | None = None

    @property
    def store_url(self) -> str:
        from fleetforge.fleet.settings import store_url

        return store_url(self.store)

    @property
    def artifacts_root(self) -> Path:
        from fleetforge.fleet.settings import artifacts_root

        return artifacts_root(self.artifacts)

    @property
    def where(self) -> str:
        """The fleet a command talks to, as it may be printed (no password)."""
        from fleetforge.redaction import mask_url

        return mask_url(self.url or self.store_url)


def globals_of(ctx: typer.Context) -> Globals:
    """The shared options of this invocation."""
    found = ctx.find_root().obj
    return found if isinstance(found, Globals) else Globals()


@contextmanager
def open_fleet(
    ctx: typer.Context, *, existing: bool = False, by: str | None = "cli"
) -> Iterator[SyncFleetClient]:
    """The fleet this invocation names: a remote one (``--url``) or the local store.

    ``existing``: the command reads, or acts on a run that must exist, so a local store that
    does not exist yet is not created (NotFoundError naming it). A run, step or artifact that
    is not found is reported with the fleet it was looked for in. ``by``: who a person's
    action is recorded as, locally (remotely the token says)."""
    from fleetforge.client import FleetClient, LocalTransport, SyncFleetClient

    g = globals_of(ctx)
    if g.url is not None:
        with SyncFleetClient.connect(g.url, token=g.token) as remote, _naming(g.where, remote=True):
            yield remote
        return
    with opened_store(ctx, existing=existing) as store:
        local = FleetClient(LocalTransport(store, artifacts=g.artifacts_root, by=by))
        with SyncFleetClient(local) as fleet, _naming(store.url):
            yield fleet


@contextmanager
def opened_store(ctx: typer.Context, *, existing: bool = False) -> Iterator[EventStore]:
    """This invocation's local store (``existing``: see :func:`open_fleet`); for the commands
    that work on a store itself (db, replay, token, serve, mcp, demo)."""
    from fleetforge.fleet.store import open_store

    with open_store(globals_of(ctx).store_url, create=not existing) as store, _naming(store.url):
        yield store


@contextmanager
def _naming(where: str, *, remote: bool = False) -> Iterator[None]:
    try:
        yield
    except NotFoundError as exc:
        if "store" in exc.context:
            raise
        place = f"the fleet at {where}" if remote else f"the store {where}"
        raise NotFoundError(
            f"{exc.message} in {place}", details=exc.details, store=where, **exc.context
        ) from exc
