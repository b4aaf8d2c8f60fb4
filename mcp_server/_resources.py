"""The fleet's MCP resources (runs, events, schemas, artifacts) and its worker prompt."""

from __future__ import annotations

import json
from typing import Any

import anyio
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.prompts.base import AssistantMessage, Message, UserMessage

from fleetforge.mcp_server._gate import Ctx
from fleetforge.mcp_server._tools import ToolTable

__all__ = ["register_prompts", "register_resources"]


def register_resources(mcp: FastMCP[Any], table: ToolTable) -> None:
    """``fleet://runs/{run_id}``, ``.../events``, ``fleet://schemas/{name}``,
    ``fleet://artifacts/{digest}``."""
    gate = table.gate

    @mcp.resource(
        "fleet://runs/{run_id}",
        name="run",
        title="A run",
        description="A run with its steps, outputs and usage (JSON, as fleet_get_run).",
        mime_type="application/json",
    )
    async def run_resource(run_id: str, ctx: Ctx) -> str:
        gate.check(ctx, "read", "fleet://runs")
        from fleetforge.operations.runs import GET_RUN, GetRunArgs

        fleet = await table.fleet()
        run = await fleet.call(GET_RUN, GetRunArgs(run_id=run_id))
        return str(run.model_dump_json(by_alias=True))

    @mcp.resource(
        "fleet://runs/{run_id}/events",
        name="run_events",
        title="A run's events",
        description="The first 1,000 events of a run (JSON list); page with fleet_run_events.",
        mime_type="application/json",
    )
    async def run_events_resource(run_id: str, ctx: Ctx) -> str:
        gate.check(ctx, "read", "fleet://runs/{run_id}/events")
        from fleetforge.operations.runs import RUN_EVENTS, RunEventsArgs

        fleet = await table.fleet()
        page = await fleet.call(RUN_EVENTS, RunEventsArgs(run_id=run_id, limit=1000))
        return json.dumps([e.model_dump(mode="json") for e in page.events])

    @mcp.resource(
        "fleet://schemas/{name}",
        name="schema",
        title="A FleetForge JSON Schema",
        description="A published JSON Schema by name, e.g. run_spec, agent_run, fleet_receipt.",
        mime_type="application/schema+json",
    )
    def schema_resource(name: str) -> str:
        from fleetforge import schemas

        return json.dumps(schemas.load(name))

    @mcp.resource(
        "fleet://artifacts/{digest}",
        name="artifact",
        title="An artifact's bytes",
        description="The bytes of a stored artifact, by digest (sha256:...).",
        mime_type="application/octet-stream",
    )
    async def artifact_resource(digest: str, ctx: Ctx) -> bytes:
        gate.check(ctx, "read", "fleet://artifacts")
        fleet = await table.fleet()
        _, data = await anyio.to_thread.run_sync(fleet.sync.get_artifact, digest)
        return data


def register_prompts(mcp: FastMCP[Any]) -> None:
    """The ``fleet_worker_loop`` prompt."""

    @mcp.prompt(name="fleet_worker_loop", title="Work tasks from the fleet")
    def fleet_worker_loop(
        worker_id: str, role: str | None = None, max_tasks: str = "1"
    ) -> list[Message]:
        """Walk an agent through lease -> work -> heartbeat -> receipt as a fleet worker."""
        return [
            UserMessage(_worker_loop(worker_id, role, max_tasks)),
            AssistantMessage(
                f'I will register as "{worker_id}", then lease, work, heartbeat and post '
                "receipts, dropping any task whose lease is lost or whose run is cancelled."
            ),
        ]


def _worker_loop(worker_id: str, role: str | None, max_tasks: str) -> str:
    role_line = f' with role "{role}"' if role else ""
    role_arg = f', role="{role}"' if role else ""
    return f"""You are fleet worker "{worker_id}"{role_line}. Work tasks from the fleet:

1. Call fleet_register_worker(worker_id="{worker_id}"{role_arg}) once.
2. Call fleet_lease_task(worker_id="{worker_id}", max_tasks={max_tasks}, wait_seconds=30).
   An empty `tasks` list means nothing is ready: lease again.
3. For each leased entry read entry.task (type, agent/tool/prompt, inputs, scorer) and keep
   entry.task.task_id and entry.lease.fencing_token: every later call needs both, plus
   worker_id="{worker_id}" (only the worker holding a lease may act on it).
4. Do the work. If it takes a while, call fleet_heartbeat(task_id, fencing_token) well before
   entry.lease.expires_at. You may record progress with fleet_post_event.
5. Finish with fleet_post_receipt(task_id, fencing_token, output=...). Check the result's
   status: "accepted", or "rejected" with score.reason (the fleet retries or fails the step).
   If you cannot do the task, call fleet_fail_task(task_id, fencing_token, kind, message) with
   kind "transient" for problems worth retrying, else "agent_error" or "tool_error".
   If the task needs an answer from a person first, call fleet_pause_task(task_id,
   fencing_token, reason, waiting_for=[your question]); the run pauses, and when someone
   answers (fleet_resume_run with a value) you will lease it again with entry.resume.value.
6. If any call returns LeaseLostError or RunCancelledError, drop that task: do not post a
   receipt for it. Then go back to step 2."""
