"""``fleetforge top``: the fleet live in the terminal, on a local store or a remote fleet."""

from __future__ import annotations

from typing import Annotated

import anyio
import typer

from fleetforge.cli._console import err, out
from fleetforge.cli._context import globals_of
from fleetforge.cli._errors import reporting

__all__ = ["top"]


def top(
    ctx: typer.Context,
    wait: Annotated[
        float, typer.Option(help="Seconds each read of the event stream waits for news.")
    ] = 1.0,
) -> None:
    """Watch the fleet live: runs, workers, queues, throughput, alerts; open a run with Enter,
    approve / resume / cancel with a, r, c (each asks first)."""
    from fleetforge.top import load_app

    g = globals_of(ctx)
    with reporting(out, err):
        app_class = load_app()  # a clear error before anything opens, when Textual is missing
        from fleetforge.client import FleetClient

        if g.url is not None:
            client = FleetClient.connect(g.url, token=g.token)
        else:
            from fleetforge.fleet.store import open_store

            client = None
        where = g.where

        async def main() -> None:
            if client is not None:
                async with client:
                    await app_class(client, where=where, wait_seconds=wait).run_async()
                return
            with open_store(g.store_url, create=False) as store:
                async with FleetClient.local(
                    store, artifacts=g.artifacts_root, by="cli:top"
                ) as local:
                    await app_class(local, where=where, wait_seconds=wait).run_async()

        anyio.run(main)
