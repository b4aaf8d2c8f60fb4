"""The Armory: tool packs (TOML manifests of MCP servers) composed into agents' tools.

::

    from fleetforge import armory

    packs = [armory.get_pack("workspace")]
    async with armory.open(packs, grant=["workspace.*"], recorder=task.adapter) as kit:
        tools = kit.tools("langgraph")     # or "autogen", "crewai"

``open`` starts each server with the official MCP client, lists its tools, keeps those the
manifest includes and the grant allows, and hands them out as framework-native tools. Every call
goes through :meth:`Kit.call`: an ``execute_tool`` span and a ``tool_called`` fleet event (tool,
argument digest, duration, outcome), or ``tool_refused`` for a tool outside the grant. Servers
stop when the block ends, also on error and cancellation. docs/armory.md has the manifest format.
"""

from fleetforge.armory._kit import Kit, KitTool, open_kit
from fleetforge.armory._packs import (
    Pack,
    builtin_packs,
    find_packs,
    get_pack,
    load_pack,
    parse_pack,
)

open = open_kit

__all__ = [
    "Kit",
    "KitTool",
    "Pack",
    "builtin_packs",
    "find_packs",
    "get_pack",
    "load_pack",
    "open",
    "open_kit",
    "parse_pack",
]
