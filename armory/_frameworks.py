"""A kit's tools in each framework's own tool type, every call routed through ``Kit.call``.

LangChain/LangGraph tools come from ``langchain-mcp-adapters`` and AutoGen's from
``autogen_ext.tools.mcp``, each given a session object whose ``call_tool`` is the kit's (so grant
checks and recording happen in one place). CrewAI's MCP support starts servers itself, so its
tools are ``BaseTool`` subclasses built here over the same kit call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.from_thread
import anyio.lowlevel
from mcp import types as mcp_types
from pydantic import Field, create_model

from fleetforge.adapters._base import require

if TYPE_CHECKING:
    from fleetforge.armory._kit import Kit

__all__ = ["autogen_tools", "crewai_tools", "langchain_tools"]


class _KitSession:
    """Quacks like ``mcp.ClientSession`` for the adapters: ``call_tool`` goes to the kit."""

    def __init__(self, kit: Kit) -> None:
        self.kit = kit

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, *args: Any, **kwargs: Any
    ) -> mcp_types.CallToolResult:
        return await self.kit.call(name, arguments)


def langchain_tools(kit: Kit) -> list[Any]:
    adapters = require("langchain_mcp_adapters.tools", "langgraph")
    session = _KitSession(kit)
    return [
        adapters.convert_mcp_tool_to_langchain_tool(session, tool.mcp_tool())
        for tool in kit.available()
    ]


def autogen_tools(kit: Kit) -> list[Any]:
    mcp_tools = require("autogen_ext.tools.mcp", "autogen")
    params = mcp_tools.StdioServerParams(command="fleetforge-armory")  # unused: the session is ours
    session = _KitSession(kit)
    return [
        mcp_tools.StdioMcpToolAdapter(params, tool.mcp_tool(), session) for tool in kit.available()
    ]


_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "object": dict,
    "array": list,
}


def crewai_tools(kit: Kit) -> list[Any]:
    from fleetforge.adapters.crewai import import_crewai

    import_crewai()
    base_tool = require("crewai.tools", "crewai").BaseTool
    loop = anyio.lowlevel.current_token()  # CrewAI runs tools on its own threads: call back here
    made = []
    for tool in kit.available():
        props = tool.input_schema.get("properties", {})
        required = set(tool.input_schema.get("required", []))
        fields: dict[str, Any] = {}
        for key, spec in props.items():
            kind = _JSON_TYPES.get(spec.get("type", "string"), Any)
            default = ... if key in required else spec.get("default")
            fields[key] = (kind if key in required else kind | None,
                           Field(default, description=spec.get("description", "")))  # fmt: skip
        schema = create_model(f"{tool.name.replace('.', '_')}_args", **fields)

        def run(self: Any, _name: str = tool.name, **kwargs: Any) -> str:
            return str(anyio.from_thread.run(kit.call_text, _name, kwargs, token=loop))

        cls = type(
            f"Armory_{tool.name.replace('.', '_')}",
            (base_tool,),
            {
                "__module__": __name__,
                "__annotations__": {"name": str, "description": str, "args_schema": type},
                "name": tool.function_name,
                "description": tool.description or tool.name,
                "args_schema": schema,
                "_run": run,
            },
        )
        made.append(cls())
    return made
