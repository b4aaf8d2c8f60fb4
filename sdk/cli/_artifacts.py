"""``fleetforge artifacts put|get``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from fleetforge.cli._console import err, out, print_json
from fleetforge.cli._context import open_fleet
from fleetforge.cli._errors import reporting
from fleetforge.contracts.enums import FleetArtifactKind
from fleetforge.errors import ContractError, UsageError

__all__ = ["app"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # fleetforge.fleet.artifacts.DEFAULT_MAX_BYTES (a test checks)

app = typer.Typer(help="Put and get content-addressed artifacts.", no_args_is_help=True)


@app.command("put")
def put(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="File to store.")],
    media_type: Annotated[str, typer.Option(help="IANA media type.")] = "application/octet-stream",
    kind: Annotated[
        FleetArtifactKind, typer.Option(help="What it holds.")
    ] = FleetArtifactKind.FILE,
    run_id: Annotated[str | None, typer.Option("--run", help="Run it belongs to.")] = None,
    max_bytes: Annotated[int, typer.Option(help="Refuse larger files.")] = DEFAULT_MAX_BYTES,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metadata as JSON.")] = False,
) -> None:
    """Store a file under its sha256 digest and record its metadata; print the digest."""
    with reporting(out, err, as_json=as_json):
        try:
            with file.open("rb") as handle:
                content = handle.read(max_bytes + 1)
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror}", path=str(file)) from exc
        if len(content) > max_bytes:
            raise ContractError(
                f"{file} is larger than the {max_bytes:,}-byte limit (--max-bytes)",
                path=str(file),
            )
        with open_fleet(ctx) as fleet:
            artifact = fleet.put_artifact(
                content, media_type=media_type, kind=kind, name=file.name, run_id=run_id
            )
    if as_json:
        print_json(artifact.model_dump(mode="json"))
    else:
        print(artifact.digest)


@app.command("get")
def get(
    ctx: typer.Context,
    digest: Annotated[str, typer.Argument(help="sha256:<hex> digest.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write an artifact's bytes (verified against the digest) to stdout or a file."""
    with reporting(out, err), open_fleet(ctx, existing=True) as fleet:
        _, content = fleet.get_artifact(digest)
        if output is None:
            sys.stdout.buffer.write(content)
            sys.stdout.buffer.flush()
        else:
            output.write_bytes(content)
