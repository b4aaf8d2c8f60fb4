"""Every fleet operation, declared once (docs/contracts.md, "Operations").

An :class:`Operation` names its arguments and result models, the scope it needs, its MCP hints
and a description written for a model, and its engine call. From this table come the MCP tools
(:mod:`fleetforge.mcp_server`), the :class:`~fleetforge.client.FleetClient` methods, the CLI
commands and the docs table; adding an operation is one entry here plus its engine method.
"""

from __future__ import annotations

from typing import Any

from fleetforge.operations._base import Args, Call, Operation, Scope
from fleetforge.operations.alerts import ALERT_OPERATIONS
from fleetforge.operations.artifacts import GET_ARTIFACT, PUT_ARTIFACT
from fleetforge.operations.batches import COMPLETE_TASKS, HEARTBEAT_MANY, POST_EVENTS
from fleetforge.operations.coordination import COORDINATION_OPERATIONS
from fleetforge.operations.runs import (
    APPROVE_STEP,
    CANCEL_RUN,
    DEAD_LETTERS,
    GET_RUN,
    LIST_RUNS,
    RESUME_RUN,
    RETRY_STEP,
    RETRY_STEPS,
    RUN_EVENTS,
    SUBMIT_RUN,
)
from fleetforge.operations.trust import REVOKE_CAPABILITY
from fleetforge.operations.work import (
    COMPLETE_TASK,
    FAIL_TASK,
    HEARTBEAT,
    LEASE_TASK,
    LIST_WORKERS,
    PAUSE_TASK,
    POST_EVENT,
    REGISTER_WORKER,
    RELEASE_TASK,
)

__all__ = [
    "OPERATIONS",
    "Args",
    "Call",
    "Operation",
    "Scope",
    "by_tool",
]

OPERATIONS: dict[str, Operation[Any, Any]] = {
    op.name: op
    for op in (
        SUBMIT_RUN,
        GET_RUN,
        LIST_RUNS,
        CANCEL_RUN,
        RESUME_RUN,
        APPROVE_STEP,
        RETRY_STEP,
        RETRY_STEPS,
        DEAD_LETTERS,
        RUN_EVENTS,
        REGISTER_WORKER,
        LIST_WORKERS,
        LEASE_TASK,
        HEARTBEAT,
        POST_EVENT,
        COMPLETE_TASK,
        FAIL_TASK,
        RELEASE_TASK,
        PAUSE_TASK,
        COMPLETE_TASKS,
        HEARTBEAT_MANY,
        POST_EVENTS,
        PUT_ARTIFACT,
        GET_ARTIFACT,
        REVOKE_CAPABILITY,
    )
}
"""Operations by name, in the order the docs list them."""
OPERATIONS.update({op.name: op for op in COORDINATION_OPERATIONS})  # issue 22, after the rest
OPERATIONS.update({op.name: op for op in ALERT_OPERATIONS})  # issue 23


def by_tool(tool: str) -> Operation[Any, Any] | None:
    """The operation an MCP tool name stands for."""
    return next((op for op in OPERATIONS.values() if op.tool == tool), None)
