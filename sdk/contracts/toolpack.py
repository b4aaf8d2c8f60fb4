"""Tool pack manifests (seed 003, the Armory): MCP servers and which of their tools an agent gets.

A pack is a TOML file::

    name = "workspace"
    version = "1.0"
    description = "Files in one workspace directory"
    prefix = "workspace."                      # tools appear as workspace.read, ...

    [[servers]]
    name = "files"
    command = "python"
    args = ["-m", "fleetforge.armory.workspace", "--root", "."]
    env = { TOKEN = "env://WORKSPACE_TOKEN" }  # secret refs, resolved only at start
    pass_env = ["LANG"]                        # passed on when set; nothing else is

    [tools]
    include = ["*"]
    exclude = []

    [tools.requires]                           # tool pattern -> capability it requires
    "write" = "workspace.write"
    "*" = "workspace.read"
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from fleetforge.contracts._base import ContractModel

__all__ = ["HttpServer", "StdioServer", "ToolFilter", "ToolPack"]

SecretOrValue = Annotated[
    str,
    Field(description="A literal, or a secret ref (`env://NAME`, `file://PATH`) read at start."),
]


class StdioServer(ContractModel):
    """An MCP server the armory starts as a child process (stdio transport)."""

    name: str = Field(min_length=1, description="Server name, unique in the pack.")
    transport: Literal["stdio"] = Field("stdio", description="Transport.")
    command: str = Field(min_length=1, description="Program to run (`python` = this Python).")
    args: list[str] = Field(default_factory=list, description="Its arguments.")
    env: dict[str, SecretOrValue] = Field(default_factory=dict, description="Extra environment.")
    pass_env: list[str] = Field(
        default_factory=list,
        description="Variables of the worker's environment passed on when set. Nothing else "
        "is: the server starts with the MCP SDK's short allow-list (HOME, LOGNAME, PATH, "
        "SHELL, TERM, USER), these, and `env`.",
    )
    cwd: str | None = Field(None, description="Working directory; none = the current one.")


class HttpServer(ContractModel):
    """An MCP server reached over streamable HTTP."""

    name: str = Field(min_length=1, description="Server name, unique in the pack.")
    transport: Literal["http"] = Field("http", description="Transport.")
    url: str = Field(pattern=r"^https?://", description="Endpoint, e.g. http://host:8765/mcp.")
    headers: dict[str, SecretOrValue] = Field(default_factory=dict, description="HTTP headers.")


class ToolFilter(ContractModel):
    """Which tools of the pack's servers are exposed, and what each requires."""

    include: list[str] = Field(default_factory=lambda: ["*"], description="Tool name globs kept.")
    exclude: list[str] = Field(default_factory=list, description="Tool name globs dropped.")
    requires: dict[str, str] = Field(
        default_factory=dict,
        description="Tool glob -> the capability a worker's grant must cover to call it; the "
        "first matching glob wins; tools no glob matches require their exposed name.",
    )


class ToolPack(ContractModel):
    """A tool pack manifest."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", description="Pack name.")
    version: str = Field(min_length=1, description="Pack version.")
    description: str = Field("", description="What the pack gives an agent.")
    prefix: str = Field("", description="Prepended to every tool name the pack exposes.")
    servers: list[StdioServer | HttpServer] = Field(
        min_length=1, description="The MCP servers of the pack."
    )
    tools: ToolFilter = Field(default_factory=ToolFilter, description="Tool selection.")
