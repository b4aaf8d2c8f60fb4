"""What an operation is: its name, arguments, result, scope, hints, description and engine call.

Every fleet operation is declared once, as an :class:`Operation`; the MCP tool, the client
method, the CLI command and the docs table all come from that declaration. Its ``run`` function
is the engine call: it gets a :class:`Call` (the synchronous service and who is calling) and the
validated arguments, and returns the result model. This module imports no engine: ``run``
functions reach the service through the :class:`Call` they are given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from fleetforge.fleet.access import Caller
    from fleetforge.fleet.service import SyncFleetService

__all__ = ["Args", "Call", "Operation", "Scope"]

Scope = Literal["read", "submit", "work", "admin"]
A = TypeVar("A", bound="Args")
R = TypeVar("R", bound=BaseModel)


class Args(BaseModel):
    """Arguments of an operation: what an MCP client sends and a client method takes."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Call:
    """What an engine call gets besides its arguments."""

    fleet: SyncFleetService
    caller: Caller | None = None
    """Who calls, for the operations that act as a worker (None: a trusted in-process caller)."""
    by: str | None = None
    """Recorded as ``by`` on the events a person's action writes (``token:NAME``, ``cli``...)."""
    max_artifact_bytes: int = 8 * 1024 * 1024
    client: dict[str, Any] | None = None
    """The MCP client's ``client_name`` and ``client_version``, when the call came over MCP."""


@dataclass(frozen=True)
class Operation(Generic[A, R]):
    """One fleet operation (see the module doc)."""

    name: str
    """The client method and CLI name, e.g. ``get_run``."""
    args: type[A]
    result: type[R]
    scope: Scope
    title: str
    description: str
    """Written for a model: what it does, what it returns, which errors mean what."""
    run: Callable[[Call, A], R]
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    as_worker: bool = False
    """The call acts as a worker: it carries the caller's identity (``worker_id`` over stdio,
    the token over HTTP) and only the worker holding a lease may act on it."""
    as_agent: bool = False
    """The call acts as a coordinating agent (fleetforge.operations.coordination): over HTTP
    the token's identity and project limits go with it."""
    tool: str = ""
    """The MCP tool name; ``fleet_`` + name unless the wire keeps an older name."""
    cli: str = ""
    """The ``fleetforge`` command that runs it (``worker`` for what the Worker does)."""

    def __post_init__(self) -> None:
        if not self.tool:
            object.__setattr__(self, "tool", f"fleet_{self.name}")

    def parse(self, arguments: dict[str, Any]) -> A:
        """The arguments as their model (ContractError with pointers, via the caller)."""
        return self.args.model_validate(arguments)
