"""The fleet's MCP tools, resources and prompt, on FastMCP, mapping MCP to ``FleetService``.

No fleet logic lives here: each tool checks the caller's scope, translates arguments and calls
one service method. Build a server with :func:`build_server`; run it with
``fleetforge mcp`` (stdio) or ``fleetforge serve`` (streamable HTTP, see :mod:`.http`).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.fastmcp.prompts.base import AssistantMessage, Message, UserMessage
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from fleetforge import __version__, schemas
from fleetforge._jsondomain import READ_MAX_DEPTH, deeper_than, escape_unencodable
from fleetforge.contracts import (
    Artifact,
    FleetArtifactKind,
    FleetArtifactRef,
    FleetLease,
    FleetReceipt,
    FleetRunStatus,
    FleetTaskFailureKind,
    FleetTrustLevel,
    FleetUsage,
    FleetWorkerSpec,
    Run,
    TraceContext,
)
from fleetforge.contracts.events import TokenScope as Scope
from fleetforge.errors import ContractError, ErrorDetail, ForbiddenError, StoreError, UsageError
from fleetforge.fleet.access import Caller
from fleetforge.fleet.service import FleetService
from fleetforge.mcp_server._errors import as_fleet_error, error_result, ok_result, unknown_tool
from fleetforge.mcp_server._models import (
    ArtifactContent,
    EventPage,
    EventRecord,
    FailResult,
    LeasedTasks,
    PostedEvent,
    RunList,
)
from fleetforge.mcp_server._schema import inline_refs, output_schema
from fleetforge.mcp_server._wire import guard
from fleetforge.mcp_server.auth import FleetAccessToken, FleetTokenVerifier

__all__ = ["TOOL_NAMES", "ServerOptions", "build_server"]

# FastMCP finds the context parameter by its bare class, so at run time the annotation must not
# be subscripted; type checkers see the parameters.
if TYPE_CHECKING:
    from mcp.server.session import ServerSession

    Ctx: TypeAlias = Context[ServerSession, Any, Any]
else:
    Ctx = Context

DEFAULT_MAX_ARTIFACT_BYTES = 8 * 1024 * 1024
_LEASE_SLICE_S = 1.0  # a waiting lease reports progress (and can be cancelled) once a second

TOOL_NAMES = (
    "fleet_submit_run",
    "fleet_get_run",
    "fleet_list_runs",
    "fleet_cancel_run",
    "fleet_resume_run",
    "fleet_approve_step",
    "fleet_register_worker",
    "fleet_lease_task",
    "fleet_heartbeat",
    "fleet_post_event",
    "fleet_post_receipt",
    "fleet_fail_task",
    "fleet_release_task",
    "fleet_pause_task",
    "fleet_run_events",
    "fleet_put_artifact",
    "fleet_get_artifact",
)

INSTRUCTIONS = """\
FleetForge fleet control plane. Submit runs (DAGs of steps) with fleet_submit_run and follow them
with fleet_get_run / fleet_run_events. To work as a worker: fleet_register_worker once, then loop
fleet_lease_task -> do the task -> fleet_heartbeat while working (before the lease expires) ->
fleet_post_receipt with the output (or fleet_fail_task). Every work call after the lease passes the
task_id and fencing_token from the lease, and (unless your token names your worker) the same
worker_id you leased as: only the worker holding a lease may act on it. Errors come back as tool
errors whose structured content is {"error": {"code", "message", "details"}}; LeaseLostError or
RunCancelledError mean: stop working on that task."""


@dataclass(frozen=True)
class ServerOptions:
    """How a server is configured (transport-specific parts are used by ``fleetforge serve``)."""

    name: str = "fleetforge"
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"
    # HTTP only
    host: str = "127.0.0.1"
    port: int = 8765
    auth: bool = False  # bearer tokens from the store; False = no auth (loopback only)
    public_url: str | None = None
    stateless: bool = False
    json_response: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()


class _FleetMCP(FastMCP[Any]):
    """FastMCP whose tool results and errors are built by FleetForge (see ``_errors``)."""

    async def call_tool(  # type: ignore[override]
        self, name: str, arguments: dict[str, Any]
    ) -> CallToolResult:
        context = self.get_context()
        try:
            value = await self._tool_manager.call_tool(
                name, arguments, context=context, convert_result=False
            )
            assert isinstance(value, BaseModel), f"{name} returned {type(value).__name__}"
            structured = value.model_dump(mode="json", by_alias=True)
            _readable(structured, name)
        except ToolError as exc:
            if exc.__cause__ is None:
                known = [t.name for t in self._tool_manager.list_tools()]
                return error_result(unknown_tool(name, known))
            return error_result(as_fleet_error(exc.__cause__, tool=name))
        except Exception as exc:
            return error_result(as_fleet_error(exc, tool=name))
        return ok_result(structured)


def _readable(structured: dict[str, Any], tool: str) -> None:
    """Refuse to answer with a record no client could parse (JSON parsers stop at some depth:
    pydantic's at 200): one stored before the JSON value domain was checked."""
    where = deeper_than(structured, READ_MAX_DEPTH)
    if where is not None:
        raise StoreError(
            f"{tool}: a stored record nests deeper than {READ_MAX_DEPTH} levels, too deep to "
            "send; it was written before FleetForge checked JSON values (docs/contracts.md)",
            details=[
                ErrorDetail(escape_unencodable(where), f"deeper than {READ_MAX_DEPTH} levels")
            ],
        )


# ── caller identity and scopes ──────────────────────────────────────────────────────────────


def _caller(ctx: Ctx) -> FleetAccessToken | None:
    """The token of an HTTP caller; None for a trusted caller (stdio, in-memory, no-auth)."""
    request = ctx.request_context.request
    if request is None:
        return None
    user = request.scope.get("user")
    token = getattr(user, "access_token", None)
    return token if isinstance(token, FleetAccessToken) else None


class _Gate:
    def __init__(self, auth_required: bool) -> None:
        self.auth_required = auth_required

    def check(self, ctx: Ctx, scope: Scope, what: str) -> FleetAccessToken | None:
        token = _caller(ctx)
        if token is None:
            if self.auth_required and ctx.request_context.request is not None:
                raise ForbiddenError(f"forbidden: {what} needs a token with the '{scope}' scope")
            return None
        if scope not in token.scopes and "admin" not in token.scopes:
            have = ", ".join(token.scopes) or "none"
            raise ForbiddenError(
                f"forbidden: {what} needs the '{scope}' scope; token '{token.client_id}' has "
                f"{have}",
                scope=scope,
            )
        return token

    def caller(self, ctx: Ctx, given: str | None, what: str, *, scope: Scope = "work") -> Caller:
        """Who a work call comes from: over HTTP the token (its worker when it names one),
        else the trusted transport's ``worker_id`` argument, which is then required."""
        token = self.check(ctx, scope, what)
        if token is None:
            if not given:
                raise ContractError(
                    f"{what} needs worker_id (this transport has no token to name the worker)",
                    details=[ErrorDetail("/worker_id", "is required")],
                )
            return Caller.as_worker(given)
        bound = token.worker_id
        if bound is not None and given not in (None, bound):
            if "admin" not in token.scopes:
                raise ForbiddenError(
                    f"forbidden: token '{token.client_id}' acts as worker '{bound}', not '{given}'"
                )
            bound = None  # an admin token may act as another worker, holding what it takes
        return Caller.token(
            token.token_id, token.client_id, token.scopes, worker_id=bound, acting_as=given
        )

    def worker(self, ctx: Ctx, given: str | None, what: str) -> tuple[str, Caller]:
        """The worker a call registers or leases as, and the caller."""
        caller = self.caller(ctx, given, what)
        if caller.worker_id is None:
            raise ContractError(
                f"{what} needs worker_id (this token names no worker)",
                details=[ErrorDetail("/worker_id", "is required")],
            )
        return caller.worker_id, caller

    @staticmethod
    def by(ctx: Ctx) -> str:
        token = _caller(ctx)
        return f"token:{token.client_id}" if token is not None else "mcp"


# ── the server ──────────────────────────────────────────────────────────────────────────────

RunId = Annotated[str, Field(description="Id of the run, as returned by fleet_submit_run.")]
TaskId = Annotated[str, Field(description="Id of the leased task (`task.task_id` of the lease).")]
FencingToken = Annotated[
    int,
    Field(
        ge=1, description="Fencing token of your lease (`lease.fencing_token`); stale = refused."
    ),
]
Cursor = Annotated[
    str | None, Field(description="Cursor from a previous page's next_cursor; omit to start.")
]
WorkerId = Annotated[
    str | None,
    Field(
        description="Worker acting. Over HTTP a token bound to a worker supplies it (omit it); "
        "over stdio pass the id you registered."
    ),
]


def build_server(fleet: FleetService, options: ServerOptions | None = None) -> FastMCP[Any]:
    """A FastMCP server exposing ``fleet`` as MCP tools, resources and a prompt."""
    opts = options or ServerOptions()
    auth_kwargs: dict[str, Any] = {}
    if opts.auth:
        from mcp.server.auth.settings import AuthSettings

        base = (opts.public_url or f"http://{_url_host(opts.host)}:{opts.port}").rstrip("/")
        auth_kwargs = {
            "token_verifier": FleetTokenVerifier(fleet.sync.store),
            "auth": AuthSettings(
                issuer_url=base,  # type: ignore[arg-type]
                resource_server_url=f"{base}/mcp",  # type: ignore[arg-type]
                validate_token_resource=False,  # our tokens are not bound to a resource
            ),
        }
    mcp = _FleetMCP(
        opts.name,
        instructions=INSTRUCTIONS,
        log_level=opts.log_level,
        host=opts.host,
        port=opts.port,
        stateless_http=opts.stateless,
        json_response=opts.json_response,
        # base64 inflates artifacts by 4/3; leave room for the JSON-RPC envelope
        max_request_body_size=opts.max_artifact_bytes * 4 // 3 + 1024 * 1024,
        transport_security=_transport_security(opts),
        **auth_kwargs,
    )
    mcp._mcp_server.version = __version__
    guard(mcp._mcp_server)  # arguments outside the JSON value domain: refused, never altered
    gate = _Gate(auth_required=opts.auth)
    read_only = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

    # ── runs ──

    @mcp.tool(
        title="Submit a run",
        annotations=_writes(),
    )
    async def fleet_submit_run(
        ctx: Ctx,
        spec: Annotated[
            dict[str, Any],
            Field(
                description="The run spec as a JSON object: name, seed (positive integer), "
                "optional labels/inputs/breakpoints, and steps (each with id, type agent|tool|"
                "llm|human|map, depends_on, inputs). The full schema is the resource "
                "fleet://schemas/run_spec."
            ),
        ],
        idempotency_key: Annotated[
            str | None,
            Field(
                description="Optional key: submitting again with the same key returns the "
                "same run instead of a new one."
            ),
        ] = None,
        trace: Annotated[
            TraceContext | None,
            Field(
                description="Optional W3C trace context (traceparent, tracestate) of the "
                "caller: every task of the run carries it, so workers' spans join that trace."
            ),
        ] = None,
    ) -> Run:
        """Validate a run spec and start the run; its root steps become tasks for workers.

        Returns the run (run_id, status, steps). An invalid spec is refused with a
        ContractError listing each problem as a JSON pointer into the spec, and nothing is
        written. Follow the run with fleet_get_run or fleet_run_events.
        """
        gate.check(ctx, "submit", "fleet_submit_run")
        return await fleet.submit_run(spec, idempotency_key=idempotency_key, trace=trace)

    @mcp.tool(title="Get a run", annotations=read_only)
    async def fleet_get_run(ctx: Ctx, run_id: RunId) -> Run:
        """Read a run: status, every step's status/attempt/output/error, the outputs of
        completed steps, usage totals and the spec. NotFoundError if no such run."""
        gate.check(ctx, "read", "fleet_get_run")
        return await fleet.get_run(run_id)

    @mcp.tool(title="List runs", annotations=read_only)
    async def fleet_list_runs(
        ctx: Ctx,
        status: Annotated[
            FleetRunStatus | None, Field(description="Only runs in this status.")
        ] = None,
        labels: Annotated[
            dict[str, str] | None,
            Field(description="Only runs carrying all of these labels."),
        ] = None,
        cursor: Cursor = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="Runs per page.")] = 50,
    ) -> RunList:
        """List runs, newest first, a page at a time (pass next_cursor back as cursor)."""
        gate.check(ctx, "read", "fleet_list_runs")
        page = await fleet.list_runs(status=status, labels=labels, cursor=cursor, limit=limit)
        return RunList(runs=page.runs, next_cursor=page.next_cursor)

    @mcp.tool(
        title="Cancel a run",
        annotations=_writes(destructive=True),
    )
    async def fleet_cancel_run(
        ctx: Ctx,
        run_id: RunId,
        reason: Annotated[str, Field(description="Why, recorded for people.")] = "",
    ) -> Run:
        """Cancel a run: queued tasks are withdrawn and workers holding its tasks get
        RunCancelledError on their next call. AlreadyCompletedError if the run is final."""
        gate.check(ctx, "submit", "fleet_cancel_run")
        return await fleet.cancel_run(run_id, reason=reason, by=gate.by(ctx))

    @mcp.tool(
        title="Resume a paused run",
        annotations=_writes(),
    )
    async def fleet_resume_run(
        ctx: Ctx,
        run_id: RunId,
        value: Annotated[
            Any,
            Field(
                description="For a run paused because a task waits for input (reason "
                "`interrupt`): the answer, any JSON value, which that task continues with."
            ),
        ] = None,
        values: Annotated[
            dict[str, Any] | None,
            Field(
                description="Different answers for different waiting tasks: task id (or step "
                "id) -> value, as listed in the run's waiting_for_input; others get `value`."
            ),
        ] = None,
    ) -> Run:
        """Resume a paused run. At a breakpoint, the step it paused before becomes ready; when
        a task paused for input (fleet_pause_task), it goes back to the inbox with `value`.
        ConflictError if the run is not paused."""
        gate.check(ctx, "submit", "fleet_resume_run")
        return await fleet.resume_run(run_id, by=gate.by(ctx), value=value, values=values)

    @mcp.tool(
        title="Approve a human step",
        annotations=_writes(),
    )
    async def fleet_approve_step(
        ctx: Ctx,
        run_id: RunId,
        step_id: Annotated[str, Field(description="Id of the waiting human step.")],
        comment: Annotated[str | None, Field(description="Optional note kept with it.")] = None,
    ) -> Run:
        """Approve a human step that is waiting; it completes with output {approved, by,
        comment} and the steps after it are scheduled. ConflictError if it is not waiting."""
        gate.check(ctx, "submit", "fleet_approve_step")
        return await fleet.approve_step(run_id, step_id, by=gate.by(ctx), comment=comment)

    @mcp.tool(title="Run events", annotations=read_only)
    async def fleet_run_events(
        ctx: Ctx,
        run_id: RunId,
        cursor: Cursor = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="Events per page.")] = 100,
    ) -> EventPage:
        """A run's events in order (run_submitted, step_ready, task_leased, receipt_accepted,
        ...), a page at a time. To follow a run, call again with last_cursor as cursor."""
        gate.check(ctx, "read", "fleet_run_events")
        after = _seq_cursor(cursor)
        await fleet.get_run(run_id)  # NotFoundError for an unknown run
        events = await fleet.run_events(run_id, after=after, limit=limit)
        last = str(events[-1].seq) if events else str(after)
        return EventPage(
            events=[EventRecord.of(e) for e in events],
            next_cursor=last if len(events) == limit else None,
            last_cursor=last,
        )

    # ── work ──

    @mcp.tool(
        title="Register a worker",
        annotations=_writes(idempotent=True),
    )
    async def fleet_register_worker(
        ctx: Ctx,
        worker_id: WorkerId = None,
        role: Annotated[
            str | None, Field(description="Role served; tasks naming a role need it.")
        ] = None,
        tools: Annotated[
            list[str] | None,
            Field(description="Tool patterns this worker can call, e.g. ['workspace.*']."),
        ] = None,
        trust_level: Annotated[
            FleetTrustLevel, Field(description="Trust level of where this worker runs.")
        ] = FleetTrustLevel.SANDBOXED,
        labels: Annotated[
            dict[str, str] | None, Field(description="Labels task profiles may match.")
        ] = None,
        name: Annotated[str | None, Field(description="Name for people.")] = None,
    ) -> FleetWorkerSpec:
        """Register (or re-register) a worker and what it can do. Call once before leasing;
        tasks are matched on role, tools, trust level and labels."""
        worker, _ = gate.worker(ctx, worker_id, "fleet_register_worker")
        client = ctx.session.client_params.clientInfo if ctx.session.client_params else None
        spec: dict[str, Any] = {
            "worker_id": worker,
            "name": name,
            "role": role,
            "tools": tools or [],
            "trust_level": trust_level,
            "labels": labels or {},
            "frameworks": ["mcp"],
        }
        if client is not None:
            spec["host"] = {
                "kind": "mcp_client",
                "client_name": client.name or "unknown",
                "client_version": client.version,
            }
        return await fleet.register_worker(spec)

    @mcp.tool(
        title="Lease tasks",
        annotations=_writes(),
    )
    async def fleet_lease_task(
        ctx: Ctx,
        worker_id: WorkerId = None,
        lease_seconds: Annotated[
            float,
            Field(gt=0, le=3600, description="Lease length; heartbeat before it runs out."),
        ] = 30.0,
        wait_seconds: Annotated[
            float,
            Field(
                ge=0,
                le=300,
                description="Wait up to this long for a task (long poll); "
                "progress notifications are sent while waiting.",
            ),
        ] = 0.0,
        max_tasks: Annotated[
            int, Field(ge=1, le=100, description="Lease up to this many tasks at once.")
        ] = 1,
    ) -> LeasedTasks:
        """Lease up to max_tasks tasks this worker can do. Each entry has the task (inputs,
        type, scorer, budget), the attempt and the lease (fencing_token, expires_at). Work on
        it, call fleet_heartbeat before expires_at, then fleet_post_receipt or fleet_fail_task.
        Returns an empty list when nothing came within wait_seconds."""
        worker, caller = gate.worker(ctx, worker_id, "fleet_lease_task")
        deadline = time.monotonic() + wait_seconds
        while True:
            remaining = max(deadline - time.monotonic(), 0.0)
            slice_s = min(remaining, _LEASE_SLICE_S)
            entries = await fleet.lease_task(
                worker,
                lease_seconds=lease_seconds,
                wait_seconds=slice_s,
                max_tasks=max_tasks,
                caller=caller,
            )
            if entries or remaining <= slice_s:
                return LeasedTasks(tasks=entries)
            waited = wait_seconds - max(deadline - time.monotonic(), 0.0)
            await ctx.report_progress(
                progress=round(waited, 3), total=wait_seconds, message="waiting for a task"
            )

    @mcp.tool(
        title="Heartbeat a lease",
        annotations=_writes(idempotent=True),
    )
    async def fleet_heartbeat(
        ctx: Ctx,
        task_id: TaskId,
        fencing_token: FencingToken,
        worker_id: WorkerId = None,
        lease_seconds: Annotated[
            float, Field(gt=0, le=3600, description="New lease length from now.")
        ] = 30.0,
    ) -> FleetLease:
        """Extend your lease on a task; returns the lease with its new expires_at.
        LeaseLostError (stale token, expired, or wall-time budget spent) or RunCancelledError
        mean: stop working on this task and do not post a receipt."""
        caller = gate.caller(ctx, worker_id, "fleet_heartbeat")
        return await fleet.heartbeat(
            task_id, fencing_token, lease_seconds=lease_seconds, caller=caller
        )

    @mcp.tool(
        title="Post an agent event",
        annotations=_writes(),
    )
    async def fleet_post_event(
        ctx: Ctx,
        task_id: TaskId,
        fencing_token: FencingToken,
        envelope: Annotated[
            dict[str, Any],
            Field(
                description="An agent-run envelope (schema: fleet://schemas/agent_run): kind "
                "start|emit|checkpoint|complete|error, seq, run/step/task ids, adapter, ..."
            ),
        ],
        worker_id: WorkerId = None,
    ) -> PostedEvent:
        """Record progress of a leased task as an agent-run envelope (messages, tool calls,
        checkpoints). ContractError lists envelope problems as JSON pointers."""
        caller = gate.caller(ctx, worker_id, "fleet_post_event")
        event = await fleet.post_event(task_id, fencing_token, envelope, caller=caller)
        return PostedEvent(seq=event.seq or 0, event_id=event.event_id)

    @mcp.tool(
        title="Post a receipt",
        annotations=_writes(idempotent=True),
    )
    async def fleet_post_receipt(
        ctx: Ctx,
        task_id: TaskId,
        fencing_token: FencingToken,
        output: Annotated[Any, Field(description="The task's result (any JSON value).")],
        usage: Annotated[
            FleetUsage | None, Field(description="Tokens, cost and model used, if known.")
        ] = None,
        artifacts: Annotated[
            list[FleetArtifactRef] | None,
            Field(description="Artifacts produced (from fleet_put_artifact)."),
        ] = None,
        receipt_id: Annotated[
            str | None,
            Field(
                description="Your receipt id; by default one is derived from the task and "
                "fencing token, so repeating the call has one effect. Unique within its task."
            ),
        ] = None,
        worker_id: WorkerId = None,
    ) -> FleetReceipt:
        """Report the output of a leased task. The fleet scores it with the step's scorer:
        status 'accepted' completes the step and schedules what follows; 'rejected' comes with
        score.reason and the attempt is retried or failed. Posting again returns the first
        verdict. LeaseLostError: your lease is gone; the output was not recorded."""
        caller = gate.caller(ctx, worker_id, "fleet_post_receipt")
        return await fleet.complete_task(
            task_id,
            fencing_token,
            output,
            usage=usage,
            artifacts=artifacts or [],
            receipt_id=receipt_id,
            caller=caller,
        )

    @mcp.tool(
        title="Fail a task",
        annotations=_writes(destructive=True),
    )
    async def fleet_fail_task(
        ctx: Ctx,
        task_id: TaskId,
        fencing_token: FencingToken,
        kind: Annotated[
            FleetTaskFailureKind,
            Field(
                description="Failure kind: transient and timeout are retried by default; "
                "others fail the step unless its retry policy lists them."
            ),
        ],
        message: Annotated[str, Field(description="What went wrong, for people.")],
        worker_id: WorkerId = None,
    ) -> FailResult:
        """Report that your attempt at a leased task failed. will_retry tells whether another
        attempt was scheduled (retry policy with backoff) or the step failed for good."""
        caller = gate.caller(ctx, worker_id, "fleet_fail_task")
        retry = await fleet.fail_task(task_id, fencing_token, kind, message, caller=caller)
        return FailResult(task_id=task_id, will_retry=retry)

    @mcp.tool(
        title="Release a task",
        annotations=_writes(),
    )
    async def fleet_release_task(
        ctx: Ctx,
        task_id: TaskId,
        fencing_token: FencingToken,
        worker_id: WorkerId = None,
        reason: Annotated[str, Field(description="Why, for people (e.g. shutting down).")] = "",
    ) -> FailResult:
        """Give a leased task back unfinished, e.g. when shutting down: the same attempt goes
        back to the inbox for another worker and does not count as a failure."""
        caller = gate.caller(ctx, worker_id, "fleet_release_task")
        await fleet.release_task(task_id, fencing_token, reason=reason, caller=caller)
        return FailResult(task_id=task_id, will_retry=True)

    @mcp.tool(
        title="Pause a task to wait for input",
        annotations=_writes(),
    )
    async def fleet_pause_task(
        ctx: Ctx,
        task_id: TaskId,
        fencing_token: FencingToken,
        worker_id: WorkerId = None,
        reason: Annotated[str, Field(description="What the task needs, for people.")] = "",
        waiting_for: Annotated[
            list[Any] | None,
            Field(description="What it waits for as JSON, e.g. the questions it asks."),
        ] = None,
    ) -> Run:
        """Stop working on a leased task because it needs input (a question for a person, an
        agent framework's interrupt). Your lease ends and the run pauses; when someone calls
        fleet_resume_run with a value, the task goes back to the inbox and its next lease
        carries `resume.value`. Returns the paused run."""
        caller = gate.caller(ctx, worker_id, "fleet_pause_task")
        return await fleet.pause_task(
            task_id, fencing_token, reason=reason, waiting_for=waiting_for or [], caller=caller
        )

    # ── artifacts ──

    @mcp.tool(
        title="Store an artifact",
        annotations=_writes(idempotent=True),
    )
    async def fleet_put_artifact(
        ctx: Ctx,
        content: Annotated[
            str,
            Field(
                description="The bytes, base64-encoded; at most the server's limit (8 MiB "
                "by default) once decoded."
            ),
        ],
        media_type: Annotated[
            str, Field(description="IANA media type, e.g. text/markdown.")
        ] = "application/octet-stream",
        name: Annotated[str | None, Field(description="File name, for people.")] = None,
        kind: Annotated[FleetArtifactKind, Field(description="What it holds.")] = (
            FleetArtifactKind.FILE
        ),
        run_id: Annotated[str | None, Field(description="Run that produced it.")] = None,
        step_id: Annotated[str | None, Field(description="Step that produced it.")] = None,
        task_id: Annotated[str | None, Field(description="Task that produced it.")] = None,
        worker_id: WorkerId = None,
    ) -> Artifact:
        """Store bytes in the content-addressed artifact store; returns the digest to cite in
        a receipt's artifacts. Storing the same bytes again returns the same digest. An
        artifact of a task needs your lease on it; one of a run needs a lease in the run (or
        the submit scope)."""
        token = gate.check(ctx, "work", "fleet_put_artifact")
        caller = None
        if token is not None or task_id is not None:
            caller = gate.caller(ctx, worker_id, "fleet_put_artifact")
        if len(content) > (opts.max_artifact_bytes + 2) // 3 * 4:
            raise ContractError(
                f"artifact is larger than the {opts.max_artifact_bytes:,}-byte limit",
                details=[ErrorDetail("/content", "too large")],
            )
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ContractError(
                "content is not valid base64",
                details=[ErrorDetail("/content", "expected standard base64 (A-Z a-z 0-9 + /, =)")],
            ) from None
        return await fleet.put_artifact(
            data,
            media_type=media_type,
            name=name,
            kind=kind,
            run_id=run_id,
            step_id=step_id,
            task_id=task_id,
            caller=caller,
        )

    @mcp.tool(title="Read an artifact", annotations=read_only)
    async def fleet_get_artifact(
        ctx: Ctx,
        digest: Annotated[str, Field(description="`sha256:` + 64 hex digits.")],
    ) -> ArtifactContent:
        """Read an artifact: its metadata and its bytes (base64). NotFoundError if unknown."""
        gate.check(ctx, "read", "fleet_get_artifact")
        artifact, data = await fleet.get_artifact(digest)
        return ArtifactContent(artifact=artifact, content=base64.b64encode(data).decode())

    # ── resources ──

    @mcp.resource(
        "fleet://runs/{run_id}",
        name="run",
        title="A run",
        description="A run with its steps, outputs and usage (JSON, as fleet_get_run).",
        mime_type="application/json",
    )
    async def run_resource(run_id: str, ctx: Ctx) -> str:
        gate.check(ctx, "read", "fleet://runs")
        run = await fleet.get_run(run_id)
        return run.model_dump_json(by_alias=True)

    @mcp.resource(
        "fleet://runs/{run_id}/events",
        name="run_events",
        title="A run's events",
        description="The first 1,000 events of a run (JSON list); page with fleet_run_events.",
        mime_type="application/json",
    )
    async def run_events_resource(run_id: str, ctx: Ctx) -> str:
        gate.check(ctx, "read", "fleet://runs/{run_id}/events")
        await fleet.get_run(run_id)
        events = await fleet.run_events(run_id, limit=1000)
        return json.dumps([EventRecord.of(e).model_dump(mode="json") for e in events])

    @mcp.resource(
        "fleet://schemas/{name}",
        name="schema",
        title="A FleetForge JSON Schema",
        description="A published JSON Schema by name, e.g. run_spec, agent_run, fleet_receipt.",
        mime_type="application/schema+json",
    )
    def schema_resource(name: str) -> str:
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
        _, data = await fleet.get_artifact(digest)
        return data

    # ── prompt ──

    @mcp.prompt(name="fleet_worker_loop", title="Work tasks from the fleet")
    def fleet_worker_loop(
        worker_id: str, role: str | None = None, max_tasks: str = "1"
    ) -> list[Message]:
        """Walk an agent through lease -> work -> heartbeat -> receipt as a fleet worker."""
        role_line = f' with role "{role}"' if role else ""
        return [
            UserMessage(
                f"""You are fleet worker "{worker_id}"{role_line}. Work tasks from the fleet:

1. Call fleet_register_worker(worker_id="{worker_id}"{f', role="{role}"' if role else ""}) once.
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
            ),
            AssistantMessage(
                f'I will register as "{worker_id}", then lease, work, heartbeat and post '
                "receipts, dropping any task whose lease is lost or whose run is cancelled."
            ),
        ]

    for tool in mcp._tool_manager.list_tools():
        inline_refs(tool.parameters)
        full = tool.fn_metadata.output_schema
        if full is not None:
            inline_refs(full)
            tool.fn_metadata.output_schema = output_schema(full)
            tool.__dict__.pop("output_schema", None)  # Tool caches it (functools.cached_property)
    return mcp


def _writes(*, destructive: bool = False, idempotent: bool = False) -> ToolAnnotations:
    """Annotations of a tool that changes the fleet (never the outside world)."""
    return ToolAnnotations(readOnlyHint=False, destructiveHint=destructive,
                           idempotentHint=idempotent, openWorldHint=False)  # fmt: skip


def _seq_cursor(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit():
        raise ContractError(
            f"invalid cursor {cursor!r}",
            details=[ErrorDetail("/cursor", "use next_cursor or last_cursor from a page")],
        )
    return int(cursor)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _transport_security(opts: ServerOptions) -> TransportSecuritySettings | None:
    """DNS-rebinding protection stays on: loopback names always, plus what the operator adds."""
    loopback_hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    loopback_origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    hosts = [*loopback_hosts, *opts.allowed_hosts]
    if opts.host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        hosts.append(f"{_url_host(opts.host)}:*")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[*loopback_origins, *opts.allowed_origins],
    )


def check_listen(host: str, auth: bool) -> None:
    """Refuse to serve a non-loopback address without authentication."""
    if not auth and host not in ("127.0.0.1", "localhost", "::1"):
        raise UsageError(
            f"refusing to listen on {host} with auth disabled: anyone who can reach it could "
            "drive the fleet. Create a token (fleetforge token create) or bind to 127.0.0.1."
        )
