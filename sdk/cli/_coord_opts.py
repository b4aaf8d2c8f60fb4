"""Options the coordination commands share: the project (default: the git repository's top
folder name) and the agent a command acts as (``--as``, default ``$FLEETFORGE_AGENT``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetforge.errors import UsageError

__all__ = ["AsAgent", "JsonFlag", "ProjectOpt", "agent_of", "project_of", "project_root"]

ProjectOpt = Annotated[
    str | None,
    typer.Option(
        "--project",
        envvar="FLEETFORGE_PROJECT",
        help="Project key. Default: $FLEETFORGE_PROJECT, else the git repository's top folder "
        "name (the same key on every machine), else this folder's name.",
        show_default=False,
    ),
]
AsAgent = Annotated[
    str | None,
    typer.Option(
        "--as",
        envvar="FLEETFORGE_AGENT",
        help="Your callsign (default: $FLEETFORGE_AGENT).",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def project_root(start: Path | None = None) -> Path:
    """The git repository's top folder above ``start`` (the working directory), else it."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return here


def project_of(given: str | None) -> str:
    """The project key: given, else the repository's top folder name."""
    return given or project_root().name


def agent_of(given: str | None) -> str:
    """The callsign a command acts as; UsageError when there is none."""
    if not given:
        raise UsageError("name your callsign with --as CALLSIGN (or set FLEETFORGE_AGENT)")
    return given
