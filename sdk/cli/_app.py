"""The ``fleetforge`` typer app: every command, its group options, its examples."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetforge import __version__
from fleetforge.cli import (
    _alerts,
    _armory,
    _artifacts,
    _claims,
    _coord,
    _db,
    _dead_letters,
    _demo,
    _events,
    _mcp,
    _missions,
    _runs,
    _schemas,
    _top,
    _trust,
    _ui,
    _validate,
    _work,
)
from fleetforge.cli._context import Globals
from fleetforge.cli._errors import set_debug
from fleetforge.cli._help import add_examples, flags_show_no_type

__all__ = ["app"]

app = typer.Typer(
    name="fleetforge",
    help="FleetForge: a control plane for fleets of AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fleetforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store URL (sqlite:///PATH, sqlite://, postgresql://...). "
            "Default: $FLEETFORGE_STORE, else $FLEETFORGE_HOME/fleet.db.",
        ),
    ] = None,
    artifacts: Annotated[
        str | None,
        typer.Option(
            "--artifacts",
            help="Artifact root directory. Default: $FLEETFORGE_ARTIFACTS, else "
            "$FLEETFORGE_HOME/artifacts.",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="FLEETFORGE_URL",
            help="A remote fleet (fleetforge serve, e.g. http://host:8765/mcp) instead of "
            "--store: submit, runs, show, output, events, cancel, resume, approve, retry, "
            "workers, artifacts, work and worker go there.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="FLEETFORGE_TOKEN",
            help="Bearer token for --url (default: $FLEETFORGE_TOKEN).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show tracebacks and the debug log when something fails "
            "(also: FLEETFORGE_DEBUG=1).",
        ),
    ] = False,
) -> None:
    """FleetForge: a control plane for fleets of AI agents."""
    set_debug(debug)
    if url is not None and store is not None:
        raise typer.BadParameter("give --url (a remote fleet) or --store (a local one), not both")
    ctx.obj = Globals(store=store, artifacts=artifacts, url=url, token=token)


app.command("validate")(_validate.validate)
app.add_typer(_schemas.app, name="schemas")
app.command("submit")(_runs.submit)
app.command("runs")(_runs.runs)
app.command("show")(_runs.show)
app.command("output")(_runs.output)
app.command("cancel")(_runs.cancel)
app.command("resume")(_runs.resume)
app.command("approve")(_runs.approve)
app.command("retry")(_runs.retry)
app.command("dead-letters")(_dead_letters.dead_letters)
app.add_typer(_alerts.app, name="alerts")
app.command("workers")(_runs.workers)
app.command("work")(_work.work)
app.command("worker")(_work.worker)
app.command("events")(_events.events)
app.command("replay")(_events.replay)
app.add_typer(_artifacts.app, name="artifacts")
app.add_typer(_db.app, name="db")
app.command("mcp")(_mcp.mcp)
app.command("serve")(_mcp.serve)
app.command("ui")(_ui.ui)
app.command("top")(_top.top)
app.add_typer(_mcp.token_app, name="token")
app.add_typer(_armory.app, name="armory")
app.command("demo")(_demo.demo)
app.add_typer(_trust.keys_app, name="keys")
app.command("verify")(_trust.verify)
app.command("export")(_trust.export)
# coordination of agents (issue 22)
app.add_typer(_coord.agents_app, name="agents")
app.add_typer(_coord.mail_app, name="mail")
app.command("reserve")(_claims.reserve)
app.command("release")(_claims.release)
app.add_typer(_claims.reservations_app, name="reservations")
app.add_typer(_claims.lock_app, name="lock")
app.add_typer(_claims.checkpoint_app, name="checkpoint")
app.command("missions")(_missions.missions)
add_examples(app)
flags_show_no_type()
