"""The fleet's MCP tools: one per operation of :mod:`fleetforge.operations`.

The tools clients list come from ``tools.json`` (generated from the operation table by
:mod:`._build`; a test keeps the two equal), so a server starts without loading the contract
models or the engine. A call finds its operation, validates the arguments with the operation's
model (a ContractError with a JSON pointer per problem), checks the caller (:mod:`._gate`), runs
the engine call in a worker thread, and answers with structured content and its JSON as text,
or with the structured error of ``_errors``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio
from mcp.types import CallToolResult, Tool, ToolAnnotations

from fleetforge.mcp_server._errors import as_fleet_error, error_result, ok_result, unknown_tool
from fleetforge.mcp_server._gate import Ctx, Gate

if TYPE_CHECKING:
    from fleetforge.fleet.access import Caller
    from fleetforge.fleet.service import FleetService
    from fleetforge.operations import Args, Operation
    from fleetforge.operations.results import LeasedTasks
    from fleetforge.operations.work import LeaseTaskArgs

__all__ = ["ToolTable", "tool_entries"]

_LEASE_SLICE_S = 1.0  # a waiting lease reports progress (and can be cancelled) once a second


@cache
def tool_entries() -> tuple[dict[str, Any], ...]:
    """The tools as ``tools.json`` describes them."""
    text = resources.files("fleetforge.mcp_server").joinpath("tools.json").read_text("utf-8")
    return tuple(json.loads(text)["tools"])


class ToolTable:
    """Lists the tools and runs their calls."""

    def __init__(
        self,
        fleet: FleetService | Callable[[], FleetService],
        gate: Gate,
        max_artifact_bytes: int,
    ) -> None:
        self._fleet = fleet
        self._opening = anyio.Lock()
        self.gate = gate
        self.max_artifact_bytes = max_artifact_bytes
        self.entries = {entry["name"]: entry for entry in tool_entries()}
        self.tools = [_mcp_tool(entry) for entry in tool_entries()]

    async def fleet(self) -> FleetService:
        """The engine, opened (in a worker thread) by the first call that needs it."""
        from fleetforge.fleet.service import FleetService

        if isinstance(self._fleet, FleetService):
            return self._fleet
        async with self._opening:
            if not isinstance(self._fleet, FleetService):
                self._fleet = await anyio.to_thread.run_sync(self._fleet)
        return self._fleet

    async def call(self, ctx: Ctx, name: str, arguments: dict[str, Any]) -> CallToolResult:
        entry = self.entries.get(name)
        if entry is None:
            return error_result(unknown_tool(name, list(self.entries)))
        try:
            from fleetforge.operations import OPERATIONS

            op = OPERATIONS[entry["operation"]]
            args = op.args.model_validate(arguments)
            result = await self._run(ctx, op, args)
            structured = result.model_dump(mode="json", by_alias=True)
            _readable(structured, name)
        except Exception as exc:
            return error_result(as_fleet_error(exc, tool=name))
        return ok_result(structured)

    async def _run(self, ctx: Ctx, op: Operation[Any, Any], args: Args) -> Any:
        caller: Caller | None = None
        token = self.gate.check(ctx, op.scope, op.tool)
        if op.as_worker and (
            token is not None or op.name != "put_artifact" or getattr(args, "task_id", None)
        ):
            caller = self.gate.caller(ctx, op, getattr(args, "worker_id", None))
        elif op.as_agent and token is not None:
            caller = self.gate.agent(token)
        fleet = await self.fleet()
        if op.name == "lease_task":
            return await _lease(ctx, fleet, op, args, caller)  # type: ignore[arg-type]
        client = None
        params = ctx.session.client_params if op.name == "register_worker" else None
        if params is not None:
            info = params.clientInfo
            client = {"client_name": info.name or "unknown", "client_version": info.version}
        return await fleet.call(
            op,
            args,
            caller=caller,
            by=self.gate.by(ctx),
            client=client,
            max_artifact_bytes=self.max_artifact_bytes,
        )


async def _lease(
    ctx: Ctx,
    fleet: FleetService,
    op: Operation[LeaseTaskArgs, LeasedTasks],
    args: LeaseTaskArgs,
    caller: Caller | None,
) -> LeasedTasks:
    """A lease that waits does so a second at a time, reporting progress in between."""
    deadline = time.monotonic() + args.wait_seconds
    while True:
        remaining = max(deadline - time.monotonic(), 0.0)
        slice_s = min(remaining, _LEASE_SLICE_S)
        sliced = args.model_copy(update={"wait_seconds": slice_s})
        leased = await fleet.call(op, sliced, caller=caller)
        if leased.tasks or remaining <= slice_s:
            return leased
        waited = args.wait_seconds - max(deadline - time.monotonic(), 0.0)
        await ctx.report_progress(
            progress=round(waited, 3), total=args.wait_seconds, message="waiting for a task"
        )


def _readable(structured: dict[str, Any], tool: str) -> None:
    """Refuse to answer with a record no client could parse (JSON parsers stop at some depth:
    pydantic's at 200): one stored before the JSON value domain was checked."""
    from fleetforge._jsondomain import READ_MAX_DEPTH, deeper_than, escape_unencodable
    from fleetforge.errors import ErrorDetail, StoreError

    where = deeper_than(structured, READ_MAX_DEPTH)
    if where is not None:
        raise StoreError(
            f"{tool}: a stored record nests deeper than {READ_MAX_DEPTH} levels, too deep to "
            "send; it was written before FleetForge checked JSON values (docs/contracts.md)",
            details=[
                ErrorDetail(escape_unencodable(where), f"deeper than {READ_MAX_DEPTH} levels")
            ],
        )


def _mcp_tool(entry: dict[str, Any]) -> Tool:
    properties = {p["name"]: p["schema"] for p in entry["params"]}
    required = [p["name"] for p in entry["params"] if p["required"]]
    input_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = required
    return Tool(
        name=entry["name"],
        title=entry["title"],
        description=entry["description"],
        inputSchema=input_schema,
        outputSchema=entry["output_schema"],
        annotations=ToolAnnotations(title=entry["title"], **entry["annotations"]),
    )
