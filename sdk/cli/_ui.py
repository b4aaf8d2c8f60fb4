"""``fleetforge ui``: the web dashboard on a local store, on loopback, with a one-time login
link printed (as Jupyter does) and opened in a browser."""

from __future__ import annotations

from typing import Annotated

import anyio
import typer

from fleetforge.cli._console import err, out, text
from fleetforge.cli._context import globals_of
from fleetforge.cli._errors import reporting

__all__ = ["ui"]


def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = 8766,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the link in a browser.")
    ] = True,
) -> None:
    """Open the web dashboard on the local store (loopback only; a one-time login link)."""
    from fleetforge.fleet.artifacts import ArtifactStore
    from fleetforge.fleet.service import FleetService
    from fleetforge.fleet.store import open_store
    from fleetforge.mcp_server.http import serve_http
    from fleetforge.mcp_server.server import ServerOptions
    from fleetforge.mcp_server.ui import UiOptions, dashboard_url, new_login

    g = globals_of(ctx)
    with reporting(out, err):
        if g.url is not None:
            raise typer.BadParameter(
                "fleetforge ui serves a local store; for a remote fleet open its /ui page"
            )
        options = ServerOptions(host="127.0.0.1", port=port, auth=False)
        ui_options = UiOptions(auth=False, launch_token=new_login())
        with open_store(g.store_url) as store:
            fleet = FleetService(store, artifacts=ArtifactStore(g.artifacts_root))

            def ready(url: str) -> None:
                link = dashboard_url(url, ui_options.launch_token)
                err.print(text(f"fleetforge dashboard on {store.url}; open (works once):"))
                out.print(link, highlight=False, markup=False, soft_wrap=True)
                if open_browser:
                    import webbrowser

                    webbrowser.open(link)

            anyio.run(lambda: serve_http(fleet, options, on_ready=ready, ui=ui_options))
