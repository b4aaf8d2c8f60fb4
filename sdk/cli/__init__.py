"""The ``fleetforge`` command line: ``fleetforge --help`` lists the commands."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetforge import __version__
from fleetforge.cli import _schemas, _validate

__all__ = ["app", "main"]

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
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """FleetForge: a control plane for fleets of AI agents."""


app.command("validate")(_validate.validate)
app.add_typer(_schemas.app, name="schemas")


def main() -> None:
    """Entry point of the ``fleetforge`` script."""
    app()
