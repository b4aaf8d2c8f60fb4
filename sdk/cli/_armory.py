"""``fleetforge armory list | show PACK | check PACK``: the tool packs this machine can use."""

from __future__ import annotations

from typing import Annotated

import anyio
import typer
from rich.table import Table

from fleetforge.cli._console import err, out, print_json, text
from fleetforge.cli._errors import reporting

__all__ = ["app"]

app = typer.Typer(help="Tool packs: MCP servers composed into agents' tools.", no_args_is_help=True)

Pack = Annotated[
    str, typer.Argument(help="A pack name (built-in or in $FLEETFORGE_HOME/packs) or a .toml path.")
]


@app.command("list")
def list_packs(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the packs: built-ins, then $FLEETFORGE_HOME/packs/*.toml."""
    from fleetforge.armory import find_packs

    with reporting(out, err, as_json=as_json):
        packs = find_packs()
        if as_json:
            print_json([
                {"name": p.manifest.name, "version": p.manifest.version,
                 "description": p.manifest.description, "source": p.source}
                for p in packs.values()
            ])  # fmt: skip
            return
        table = Table("Pack", "Version", "Servers", "Source", "Description", box=None)
        for pack in packs.values():
            m = pack.manifest
            table.add_row(text(m.name), text(m.version), text(", ".join(s.name for s in m.servers)),
                          text(pack.source), text(m.description))  # fmt: skip
        out.print(table)


@app.command("show")
def show(pack: Pack) -> None:
    """Print a pack's manifest (as JSON; secret refs are shown as refs, never resolved)."""
    from fleetforge.armory import get_pack

    with reporting(out, err):
        found = get_pack(pack)
        print_json(found.manifest.model_dump_json())


@app.command("check")
def check(
    pack: Pack,
    grant: Annotated[
        list[str] | None, typer.Option("--grant", help="Capability glob to grant (repeatable).")
    ] = None,
) -> None:
    """Start a pack's servers, list their tools with descriptions, stop them (exit 1 on failure)."""
    from fleetforge import armory

    async def main() -> list[armory.KitTool]:
        async with armory.open([armory.get_pack(pack)], grant=grant or ["*"]) as kit:
            return kit.available(include_refused=True)

    with reporting(out, err):
        tools = anyio.run(main)
        table = Table("Tool", "Requires", "Granted", "Description", box=None)
        for tool in tools:
            first = tool.description.splitlines()[0] if tool.description else ""
            table.add_row(text(tool.name), text(tool.capability), "yes" if tool.allowed else "no",
                          text(first))  # fmt: skip
        out.print(table)
        err.print(text(f"ok: {len(tools)} tools from {pack}"))
