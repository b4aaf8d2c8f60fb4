"""Fleet protocol types (seed 001): the durable contract between fleet, workers and surfaces.

Seed 001 names these types without fields; the fields below are ours, and ``docs/contracts.md``
explains each choice. Every type is additive: unknown fields are accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, model_validator

from fleetforge.contracts._base import (
    FLEET_PROTOCOL_VERSION,
    SECRET_REF_PATTERN,
    Digest,
    Identifier,
    JsonObject,
    Labels,
    ProtocolModel,
    Timestamp,
)
from fleetforge.contracts.enums import (
    FleetAlertChannel,
    FleetAlertEventClass,
    FleetArtifactKind,
    FleetInboxStatus,
    FleetReceiptStatus,
    FleetRunStatus,
    FleetTaskFailureKind,
    FleetTrustLevel,
    FleetWorkerStatus,
)
from fleetforge.errors import UsageError

__all__ = [
    "FleetAlertChannel",
    "FleetAlertEndpoint",
    "FleetAlertEventClass",
    "FleetAlertPolicy",
    "FleetArtifactKind",
    "FleetArtifactRef",
    "FleetCapabilityGrant",
    "FleetCapabilityToken",
    "FleetEnvironmentRequirements",
    "FleetHostSpec",
    "FleetInboxEntry",
    "FleetInboxStatus",
    "FleetLease",
    "FleetReceipt",
    "FleetReceiptSignature",
    "FleetReceiptStatus",
    "FleetRetryPolicy",
    "FleetRun",
    "FleetRunBudget",
    "FleetRunStatus",
    "FleetScore",
    "FleetScorerSpec",
    "FleetSecretRef",
    "FleetSecurityPolicy",
    "FleetTaskBudget",
    "FleetTaskFailureKind",
    "FleetTaskResult",
    "FleetTaskSpec",
    "FleetTaskWorkerProfile",
    "FleetTrustLevel",
    "FleetUsage",
    "FleetWorkerAuth",
    "FleetWorkerEnvironment",
    "FleetWorkerEvent",
    "FleetWorkerEventPayload",
    "FleetWorkerSpec",
    "FleetWorkerStatus",
    "FleetWorkspaceRequirements",
    "TraceContext",
]

ToolPattern = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.*?:-]+$")]


class FleetSecretRef(ProtocolModel):
    """A reference to a secret, resolved at run time; it never holds the secret's value."""

    ref: str = Field(
        description=(
            "Where the secret lives: `env://NAME` (environment variable), `file://PATH` "
            "(file contents, trailing newline stripped) or `vault://MOUNT/PATH#KEY` (key KEY of "
            "a HashiCorp Vault / OpenBao KV v2 secret; VAULT_ADDR and VAULT_TOKEN from the "
            "environment)."
        ),
        pattern=SECRET_REF_PATTERN,
    )

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {"examples": [{"ref": "env://OPENAI_API_KEY"}]}
    }

    @property
    def scheme(self) -> str:
        """``env``, ``file`` or ``vault``."""
        return self.ref.split("://", 1)[0]

    def __repr__(self) -> str:
        return f"FleetSecretRef({self.ref!r})"

    def resolve(self, environ: Mapping[str, str] | None = None) -> SecretStr:
        """Read the secret (:func:`fleetforge.secrets.resolve_secret`). The value comes back
        wrapped: ``repr``, ``str`` and JSON show stars; and from now on this process masks it
        wherever text reaches an event, a log line or an error (:mod:`fleetforge.redaction`)."""
        from fleetforge.secrets import resolve_secret

        return resolve_secret(self.ref, environ)


# ── budgets, retries, scoring ────────────────────────────────────────────────────────────────


class FleetTaskBudget(ProtocolModel):
    """Budget limits for one task; exceeding one fails the attempt with `budget_exceeded`."""

    max_tokens: int | None = Field(None, ge=1, description="Most tokens (input + output) to use.")
    max_cost_usd: float | None = Field(None, ge=0, description="Most model cost in US dollars.")
    max_wall_s: float | None = Field(None, gt=0, description="Most wall-clock seconds per attempt.")

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [{"max_tokens": 20000, "max_cost_usd": 0.5, "max_wall_s": 120}]
        }
    }


class FleetRunBudget(ProtocolModel):
    """Budget limits for a whole run, every attempt of every step together (issue 23).

    Usage counts as it arrives (envelopes carrying ``usage``, then receipts), not only at the
    end; wall time runs from the run's start. Going over records ``budget_exceeded``, the
    run's running attempts are stopped (their next call is refused with BudgetExceededError)
    and the run fails or pauses as ``on_exceed`` says; a paused run resumes with a raised
    budget (``resume_run(budget=...)``)."""

    max_tokens: int | None = Field(
        None, ge=1, description="Most tokens (input + output) the whole run may use."
    )
    max_cost_usd: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="Most model cost in US dollars; costs the fleet cannot know count as 0.",
    )
    max_wall_s: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Most wall-clock seconds from the run's start (paused time included).",
    )
    on_exceed: Literal["fail", "pause"] = Field(
        "fail", description="What going over does to the run: fail it, or pause it."
    )

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "max_tokens": 200000,
                    "max_cost_usd": 5.0,
                    "max_wall_s": 3600,
                    "on_exceed": "pause",
                }
            ]
        }
    }


class FleetRetryPolicy(ProtocolModel):
    """How failed attempts are retried: exponential backoff with jitter, for some kinds only."""

    max_attempts: int = Field(1, ge=1, le=100, description="Attempts in all, the first included.")
    backoff_s: float = Field(1.0, ge=0, description="Delay before the second attempt, seconds.")
    backoff_multiplier: float = Field(2.0, ge=1, description="Factor applied per further attempt.")
    max_backoff_s: float = Field(300.0, ge=0, description="Upper bound of any one delay, seconds.")
    jitter: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Random spread as a fraction of the delay, drawn from (seed, step, attempt).",
    )
    retry_on: list[FleetTaskFailureKind] = Field(
        default_factory=lambda: [FleetTaskFailureKind.TRANSIENT, FleetTaskFailureKind.TIMEOUT],
        description="Failure kinds that are retried; any other kind fails the step at once.",
    )

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {"max_attempts": 3, "backoff_s": 1.0, "retry_on": ["transient", "timeout"]}
            ]
        }
    }


class _ScorerBase(ProtocolModel):
    pointer: str = Field(
        "",
        pattern=r"^(/([^~/]|~[01])*)*$",
        description="JSON pointer into the task output selecting the value to score ('' = all).",
    )


class ExactScorer(_ScorerBase):
    """Passes when the selected value equals `value`."""

    kind: Literal["exact"] = Field("exact", description="Scorer kind.")
    value: Any = Field(description="The expected value.")


class ContainsScorer(_ScorerBase):
    """Passes when the selected string (or list) contains `value`."""

    kind: Literal["contains"] = Field("contains", description="Scorer kind.")
    value: Any = Field(description="Substring or list item that must be present.")
    case_sensitive: bool = Field(True, description="Compare strings case-sensitively.")


class RegexScorer(_ScorerBase):
    """Passes when the selected string matches `pattern` (Python `re.search`)."""

    kind: Literal["regex"] = Field("regex", description="Scorer kind.")
    pattern: str = Field(min_length=1, description="Regular expression to search for.")


class JsonSchemaScorer(_ScorerBase):
    """Passes when the selected value validates against `schema` (JSON Schema 2020-12)."""

    kind: Literal["json_schema"] = Field("json_schema", description="Scorer kind.")
    schema_: JsonObject = Field(alias="schema", description="The JSON Schema to validate against.")


class NumericRangeScorer(_ScorerBase):
    """Passes when the selected number lies within [min, max]."""

    kind: Literal["numeric_range"] = Field("numeric_range", description="Scorer kind.")
    min: float | None = Field(None, description="Inclusive lower bound; none = unbounded.")
    max: float | None = Field(None, description="Inclusive upper bound; none = unbounded.")


class CustomScorer(_ScorerBase):
    """Runs a scorer function registered under `name` with `params`."""

    kind: Literal["custom"] = Field("custom", description="Scorer kind.")
    name: str = Field(min_length=1, description="Name the scorer was registered under.")
    params: JsonObject = Field(default_factory=dict, description="Arguments for the scorer.")


FleetScorerSpec = Annotated[
    ExactScorer
    | ContainsScorer
    | RegexScorer
    | JsonSchemaScorer
    | NumericRangeScorer
    | CustomScorer,
    Field(discriminator="kind"),
]
"""Scoring rule used to verify a task result, selected by `kind`."""


class FleetScore(ProtocolModel):
    """The verdict of a scorer on one receipt."""

    passed: bool = Field(description="True when the result satisfies the scorer.")
    score: float = Field(ge=0, le=1, description="Score between 0 and 1 (1 = perfect).")
    scorer: str = Field(description="Scorer kind, or `custom:<name>`.")
    reason: str = Field("", description="Why the result passed or failed, for people.")

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {"passed": False, "score": 0, "scorer": "regex", "reason": "no match for '^OK'"}
            ]
        }
    }


class FleetUsage(ProtocolModel):
    """Resources a task attempt used, as reported by the worker's framework."""

    input_tokens: int = Field(0, ge=0, description="Prompt tokens.")
    output_tokens: int = Field(0, ge=0, description="Completion tokens.")
    total_tokens: int = Field(0, ge=0, description="All tokens (may exceed the sum: reasoning).")
    cost_usd: float | None = Field(None, ge=0, description="Cost in US dollars when known.")
    model: str | None = Field(None, description="Model name as the provider reports it.")
    wall_s: float | None = Field(None, ge=0, description="Wall-clock seconds of the attempt.")

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [{"input_tokens": 120, "output_tokens": 48, "total_tokens": 168}]
        }
    }


# ── artifacts ────────────────────────────────────────────────────────────────────────────────


class FleetArtifactRef(ProtocolModel):
    """Reference to a content-addressed artifact produced or consumed by a task."""

    digest: Digest = Field(description="`sha256:` followed by the 64-hex digest of the bytes.")
    kind: FleetArtifactKind = Field(FleetArtifactKind.FILE, description="What the artifact holds.")
    media_type: str = Field(
        "application/octet-stream", min_length=1, description="IANA media type of the bytes."
    )
    size_bytes: int = Field(ge=0, description="Size of the content in bytes.")
    name: str | None = Field(None, description="Optional file name for people and downloads.")

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "digest": "sha256:" + "ab" * 32,
                    "kind": "report",
                    "media_type": "text/markdown",
                    "size_bytes": 1834,
                    "name": "draft.md",
                }
            ]
        }
    }


# ── requirements and policies ────────────────────────────────────────────────────────────────


class FleetEnvironmentRequirements(ProtocolModel):
    """Environment variables a task requires or may pass through to its worker."""

    required: list[str] = Field(
        default_factory=list, description="Variable names that must be set on the worker."
    )
    passthrough: list[str] = Field(
        default_factory=list, description="Variable names (glob patterns) the task may read."
    )
    secrets: dict[str, FleetSecretRef] = Field(
        default_factory=dict, description="Variables set from secret references at start."
    )

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "required": ["HOME"],
                    "passthrough": ["LANG", "LC_*"],
                    "secrets": {"OPENAI_API_KEY": {"ref": "env://OPENAI_API_KEY"}},
                }
            ]
        }
    }


class FleetWorkspaceRequirements(ProtocolModel):
    """Workspace and environment constraints that must hold before a task starts."""

    kind: Literal["none", "scratch", "shared"] = Field(
        "scratch",
        description="`none`: no files; `scratch`: a new directory; `shared`: the run's directory.",
    )
    writable: bool = Field(True, description="Whether the task may write to the workspace.")
    network: Literal["none", "loopback", "egress"] = Field(
        "egress", description="Network the task may reach."
    )
    min_disk_mb: int | None = Field(None, ge=0, description="Free disk the workspace needs, MiB.")
    environment: FleetEnvironmentRequirements = Field(
        default_factory=FleetEnvironmentRequirements,
        description="Environment variables the task needs.",
    )

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {"examples": [{"kind": "shared", "network": "loopback"}]}
    }


class FleetTaskWorkerProfile(ProtocolModel):
    """The worker a task needs: its role, the tools it must offer and the trust it must have."""

    role: str | None = Field(None, description="Worker role that may lease the task; none = any.")
    tools: list[ToolPattern] = Field(
        default_factory=list,
        description="Tool name patterns (`*` wildcards) the worker must be granted.",
    )
    min_trust: FleetTrustLevel = Field(
        FleetTrustLevel.UNTRUSTED, description="Lowest worker trust level admitted."
    )
    labels: Labels = Field(
        default_factory=dict, description="Labels the worker must carry with equal values."
    )

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [{"role": "planner", "tools": ["workspace.*"], "min_trust": "internal"}]
        }
    }


class FleetSecurityPolicy(ProtocolModel):
    """Security policy applied to every task of a run."""

    min_trust: FleetTrustLevel = Field(
        FleetTrustLevel.UNTRUSTED, description="Lowest trust level of any worker in the run."
    )
    allowed_tools: list[ToolPattern] = Field(
        default_factory=lambda: ["*"], description="Tool patterns tasks may call."
    )
    denied_tools: list[ToolPattern] = Field(
        default_factory=list, description="Tool patterns refused even when allowed."
    )
    approval_required_tools: list[ToolPattern] = Field(
        default_factory=list, description="Tool patterns that need a human approval per call."
    )
    network: Literal["none", "loopback", "egress"] = Field(
        "egress", description="Most network reach any task may have."
    )
    require_signed_receipts: bool = Field(False, description="Refuse unsigned receipts.")

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {"min_trust": "internal", "allowed_tools": ["workspace.*"], "denied_tools": []}
            ]
        }
    }


class FleetAlertEndpoint(ProtocolModel):
    """Where an alert goes: an inline URL or a secret reference to one (exactly one of them)."""

    channel: FleetAlertChannel = Field(description="Delivery channel.")
    url: str | None = Field(None, min_length=1, description="Inline endpoint URL or address.")
    url_ref: FleetSecretRef | None = Field(None, description="Secret holding the endpoint URL.")
    secret_ref: FleetSecretRef | None = Field(
        None,
        description="For `webhook`: the Standard Webhooks signing secret (`whsec_...`); each "
        "delivery then carries a `webhook-signature` header. Without it deliveries are unsigned.",
    )

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {"channel": "slack", "url_ref": {"ref": "env://SLACK_WEBHOOK_URL"}},
                {"channel": "log"},
            ],
            # url and url_ref exclude each other (null counts as absent, as in the model)
            "not": {
                "description": "give either url or url_ref, not both",
                "required": ["url", "url_ref"],
                "properties": {"url": {"type": "string"}, "url_ref": {"type": "object"}},
            },
        }
    }

    @model_validator(mode="after")
    def _one_target(self) -> FleetAlertEndpoint:
        if self.url is not None and self.url_ref is not None:
            raise ValueError("give either url or url_ref, not both")
        return self


class FleetAlertPolicy(ProtocolModel):
    """Alert and escalation policy attached to a run or a task."""

    events: list[FleetAlertEventClass] = Field(
        min_length=1, description="Event classes that raise an alert."
    )
    endpoints: list[FleetAlertEndpoint] = Field(
        min_length=1, description="Where alerts are delivered."
    )
    min_interval_s: float = Field(
        0, ge=0, description="Quiet period between two alerts of one class, seconds."
    )
    escalate_after_s: float | None = Field(
        None, gt=0, description="Re-alert when the condition persists this long, seconds."
    )

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "events": ["run_failed", "budget_exceeded"],
                    "endpoints": [{"channel": "webhook", "url": "https://alerts.example/h"}],
                }
            ]
        }
    }


class FleetCapabilityGrant(ProtocolModel):
    """An explicit authorization for a worker to perform one class of action on some resources."""

    grant_id: Identifier = Field(description="Id of the grant.")
    worker_id: Identifier = Field(description="Worker the grant is given to.")
    action: Literal[
        "lease_task", "call_tool", "read_secret", "write_artifact", "submit_run", "network"
    ] = Field(description="Class of action authorized.")
    resources: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Patterns of what the action may touch (tool names, secret refs, ...).",
    )
    run_id: Identifier | None = Field(None, description="Limit the grant to one run.")
    issued_by: str = Field(description="Who issued the grant (user, policy or service).")
    issued_at: Timestamp = Field(description="When the grant was issued.")
    expires_at: Timestamp | None = Field(None, description="When it stops being valid.")

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "grant_id": "grt_01",
                    "worker_id": "wkr_writer",
                    "action": "call_tool",
                    "resources": ["workspace.*"],
                    "issued_by": "policy:default",
                    "issued_at": "2026-11-22T10:00:00Z",
                }
            ]
        }
    }


# ── hosts, auth, workers ─────────────────────────────────────────────────────────────────────


class LocalHost(ProtocolModel):
    """The worker runs as a process on a machine the fleet operator controls."""

    kind: Literal["local"] = Field("local", description="Host kind.")
    hostname: str | None = Field(None, description="Machine name, for people.")


class ContainerHost(ProtocolModel):
    """The worker runs in a container."""

    kind: Literal["container"] = Field("container", description="Host kind.")
    image: str = Field(min_length=1, description="Container image reference.")
    runtime: str | None = Field(None, description="Container runtime (docker, podman, k8s).")


class RemoteHost(ProtocolModel):
    """The worker runs on another machine and reaches the fleet over the network."""

    kind: Literal["remote"] = Field("remote", description="Host kind.")
    address: str = Field(min_length=1, description="Host name or address of the worker.")
    region: str | None = Field(None, description="Region or site, for placement.")


class McpClientHost(ProtocolModel):
    """The worker is an MCP client (Claude Desktop, Claude Code, Cursor) calling fleet tools."""

    kind: Literal["mcp_client"] = Field("mcp_client", description="Host kind.")
    client_name: str = Field(min_length=1, description="Client name from MCP initialization.")
    client_version: str | None = Field(None, description="Client version, when reported.")


FleetHostSpec = Annotated[
    LocalHost | ContainerHost | RemoteHost | McpClientHost, Field(discriminator="kind")
]
"""Host on which a worker runs, selected by `kind`."""


class NoAuth(ProtocolModel):
    """No credentials: only for in-process and stdio workers, whose caller is trusted."""

    kind: Literal["none"] = Field("none", description="Auth kind.")


class BearerAuth(ProtocolModel):
    """A bearer token sent with every request; scopes come from the token."""

    kind: Literal["bearer"] = Field("bearer", description="Auth kind.")
    token_ref: FleetSecretRef = Field(description="Secret holding the token.")


class MtlsAuth(ProtocolModel):
    """Mutual TLS with a client certificate."""

    kind: Literal["mtls"] = Field("mtls", description="Auth kind.")
    cert_ref: FleetSecretRef = Field(description="Secret holding the PEM client certificate.")
    key_ref: FleetSecretRef = Field(description="Secret holding the PEM private key.")


class Ed25519Auth(ProtocolModel):
    """Requests and receipts signed with an Ed25519 key the fleet knows by id."""

    kind: Literal["ed25519"] = Field("ed25519", description="Auth kind.")
    key_id: str = Field(min_length=1, description="Id of the public key registered with the fleet.")
    public_key: str = Field(
        pattern=r"^[A-Za-z0-9+/]{43}=$", description="Base64 of the 32-byte public key."
    )


FleetWorkerAuth = Annotated[
    NoAuth | BearerAuth | MtlsAuth | Ed25519Auth, Field(discriminator="kind")
]
"""How a worker authenticates to the fleet, selected by `kind`."""


class FleetWorkerEnvironment(ProtocolModel):
    """What a worker reports of its machine when it registers (names, never values): matched at
    lease against a task's workspace requirements."""

    free_disk_mb: int | None = Field(None, ge=0, description="Free disk of its workspace, MiB.")
    platform: str | None = Field(None, description="Operating system (`sys.platform`).")
    python: str | None = Field(None, description="Python version, e.g. `3.11.7`.")
    extras: list[str] = Field(
        default_factory=list, description="FleetForge extras installed (langgraph, postgres...)."
    )
    env_vars: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list, description="Names of the environment variables set (no values)."
    )

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {"free_disk_mb": 51200, "platform": "linux", "python": "3.11.7",
                 "extras": ["langgraph"], "env_vars": ["OPENAI_API_KEY", "PATH"]}
            ]
        }
    }  # fmt: skip


class FleetWorkerSpec(ProtocolModel):
    """A worker as it registers: what it can do, where it runs and how it authenticates."""

    worker_id: Identifier = Field(description="Id of the worker, unique in the fleet.")
    name: str | None = Field(None, description="Name for people.")
    role: str | None = Field(None, description="Role it serves (matches task `worker.role`).")
    tools: list[ToolPattern] = Field(default_factory=list, description="Tools it can call.")
    frameworks: list[str] = Field(
        default_factory=list, description="Agent frameworks it runs (langgraph, autogen, ...)."
    )
    trust_level: FleetTrustLevel = Field(
        FleetTrustLevel.UNTRUSTED, description="Trust level of its host."
    )
    host: FleetHostSpec = Field(default_factory=LocalHost, description="Where it runs.")
    auth: FleetWorkerAuth = Field(default_factory=NoAuth, description="How it authenticates.")
    max_concurrency: int = Field(1, ge=1, le=1024, description="Tasks it works on at once.")
    labels: Labels = Field(default_factory=dict, description="Labels matched by task profiles.")
    version: str | None = Field(None, description="Worker software version.")
    environment: FleetWorkerEnvironment | None = Field(
        None,
        description="Its machine (free disk, platform, Python, extras, env var names): a task "
        "whose workspace requirements it does not meet is not leased to it. None: it reported "
        "nothing, and meets no requirement.",
    )

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "worker_id": "wkr_planner_1",
                    "role": "planner",
                    "tools": ["workspace.read", "workspace.list"],
                    "frameworks": ["langgraph"],
                    "trust_level": "internal",
                    "host": {"kind": "local", "hostname": "dev-box"},
                    "auth": {"kind": "none"},
                    "max_concurrency": 2,
                }
            ]
        }
    }


class RegisteredPayload(ProtocolModel):
    """The worker registered or re-registered with this spec."""

    kind: Literal["registered"] = Field("registered", description="Payload kind.")
    spec: FleetWorkerSpec = Field(description="The worker's spec.")


class HeartbeatPayload(ProtocolModel):
    """The worker is alive; it lists the tasks it holds."""

    kind: Literal["heartbeat"] = Field("heartbeat", description="Payload kind.")
    status: FleetWorkerStatus = Field(description="Status of the worker.")
    task_ids: list[Identifier] = Field(
        default_factory=list, description="Tasks it holds leases on."
    )


class StatusChangedPayload(ProtocolModel):
    """The worker's status changed."""

    kind: Literal["status_changed"] = Field("status_changed", description="Payload kind.")
    previous: FleetWorkerStatus = Field(description="Status before.")
    status: FleetWorkerStatus = Field(description="Status now.")
    reason: str = Field("", description="Why, for people.")


class LogPayload(ProtocolModel):
    """A log line from the worker."""

    kind: Literal["log"] = Field("log", description="Payload kind.")
    level: Literal["debug", "info", "warning", "error"] = Field(description="Severity.")
    message: str = Field(description="The message.")


FleetWorkerEventPayload = Annotated[
    RegisteredPayload | HeartbeatPayload | StatusChangedPayload | LogPayload,
    Field(discriminator="kind"),
]
"""Union of all worker event payloads, selected by `kind`."""


class FleetWorkerEvent(ProtocolModel):
    """An event a worker reports about itself (not about a task)."""

    protocol_version: str = Field(FLEET_PROTOCOL_VERSION, description="Fleet protocol version.")
    worker_id: Identifier = Field(description="The reporting worker.")
    seq: int = Field(ge=0, description="Per-worker sequence number, increasing by one.")
    at: Timestamp = Field(description="When the worker observed it.")
    payload: FleetWorkerEventPayload = Field(description="What happened.")

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "worker_id": "wkr_planner_1",
                    "seq": 7,
                    "at": "2026-11-22T10:00:05Z",
                    "payload": {"kind": "heartbeat", "status": "busy", "task_ids": ["tsk_plan"]},
                }
            ]
        }
    }


# ── runs, tasks, inbox, receipts ─────────────────────────────────────────────────────────────


class FleetRun(ProtocolModel):
    """Top-level handle of a fleet run: who it is and where it stands."""

    run_id: Identifier = Field(description="Globally unique id of the run.")
    name: str = Field(description="Run name from the spec.")
    status: FleetRunStatus = Field(description="Lifecycle status.")
    seed: int = Field(ge=1, description="The run's seed (see docs/contracts.md, 'The seed').")
    labels: Labels = Field(default_factory=dict, description="Labels from the spec.")
    protocol_version: str = Field(FLEET_PROTOCOL_VERSION, description="Fleet protocol version.")
    created_at: Timestamp = Field(description="When it was submitted.")
    updated_at: Timestamp = Field(description="When its status last changed.")

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "run_id": "run_01JD3Z6Q",
                    "name": "hello-fleet",
                    "status": "running",
                    "seed": 42,
                    "labels": {"team": "demo"},
                    "created_at": "2026-11-22T10:00:00Z",
                    "updated_at": "2026-11-22T10:00:01Z",
                }
            ]
        }
    }


class TraceContext(ProtocolModel):
    """W3C trace context so spans in another process join the submitter's trace."""

    traceparent: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        description="W3C `traceparent` header value; none when tracing is off.",
    )
    tracestate: str | None = Field(None, description="W3C `tracestate` header value.")


class FleetTaskSpec(ProtocolModel):
    """One unit of work: a ready step (or one item of a map step) compiled for a worker."""

    protocol_version: str = Field(FLEET_PROTOCOL_VERSION, description="Fleet protocol version.")
    task_id: Identifier = Field(description="Id of the task; stable across its attempts.")
    run_id: Identifier = Field(description="Run the task belongs to.")
    step_id: Identifier = Field(description="Step the task comes from.")
    map_index: int | None = Field(None, ge=0, description="Item index when the step is a map.")
    type: Literal["agent", "tool", "llm"] = Field(description="Kind of work.")
    agent: str | None = Field(None, description="Agent name, for `agent` tasks.")
    tool: str | None = Field(None, description="Tool name, for `tool` tasks.")
    prompt: str | None = Field(None, description="Prompt, for `llm` tasks (and agent hints).")
    model: str | None = Field(None, description="Model to use, when the step names one.")
    inputs: JsonObject = Field(
        default_factory=dict, description="Resolved inputs: references replaced by values."
    )
    seed: int = Field(ge=1, description="The run's seed; pass it to models that accept one.")
    worker: FleetTaskWorkerProfile = Field(
        default_factory=FleetTaskWorkerProfile, description="Worker the task needs."
    )
    scorer: FleetScorerSpec | None = Field(None, description="How the result is verified.")
    retry: FleetRetryPolicy = Field(
        default_factory=FleetRetryPolicy, description="How failed attempts are retried."
    )
    budget: FleetTaskBudget | None = Field(None, description="Limits per attempt.")
    workspace: FleetWorkspaceRequirements | None = Field(
        None, description="Workspace needed before start."
    )
    security: FleetSecurityPolicy | None = Field(None, description="The run's security policy.")
    alerts: FleetAlertPolicy | None = Field(None, description="Alerts for this task.")
    labels: Labels = Field(default_factory=dict, description="The run's labels.")
    trace: TraceContext = Field(
        default_factory=TraceContext, description="Trace context of the step's span."
    )

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "task_id": "tsk_01JD3Z6Q_plan",
                    "run_id": "run_01JD3Z6Q",
                    "step_id": "plan",
                    "type": "agent",
                    "agent": "planner",
                    "inputs": {"topic": "event sourcing"},
                    "seed": 42,
                    "worker": {
                        "role": "planner",
                        "tools": ["workspace.*"],
                        "min_trust": "internal",
                    },
                    "scorer": {"kind": "json_schema", "schema": {"required": ["outline"]}},
                    "retry": {"max_attempts": 3, "backoff_s": 1.0},
                    "budget": {"max_tokens": 20000},
                }
            ]
        }
    }


class FleetResume(ProtocolModel):
    """What a paused task continues with: the value `resume_run` was given (may be null)."""

    value: Any = Field(None, description="The value, e.g. a person's answer to an interrupt.")


class FleetCapabilityToken(ProtocolModel):
    """A task's capability token: a Biscuit the fleet minted at lease, naming the run, the task,
    the tools it may call and the lease's expiry (see ``fleetforge.capabilities``)."""

    token_id: str = Field(
        pattern=r"^cap_[0-9a-f]{32}$", description="Its id (revocable; shared by attenuations)."
    )
    token: str = Field(min_length=1, description="The Biscuit token, base64 (URL-safe).")
    public_key: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="The fleet's capability public key (hex Ed25519)."
    )
    expires_at: Timestamp = Field(description="When it stops being valid (the lease's expiry).")


class FleetLease(ProtocolModel):
    """Who holds an inbox entry and until when."""

    worker_id: Identifier = Field(description="Worker holding the lease.")
    fencing_token: int = Field(ge=1, description="Monotonic per task; stale tokens are refused.")
    leased_at: Timestamp = Field(description="When the lease was granted.")
    expires_at: Timestamp = Field(description="When it lapses unless a heartbeat extends it.")
    capability: FleetCapabilityToken | None = Field(
        None,
        description="The task's capability token: with the lease, and renewed with each "
        "heartbeat that extends it (a read-only heartbeat sends none: the last one holds).",
    )
    revoked_capabilities: list[str] = Field(
        default_factory=list,
        description="Heartbeat answers: ids of this task's capability tokens that were revoked; "
        "tools called after it are refused.",
    )


class FleetInboxEntry(ProtocolModel):
    """A durable inbox entry: one attempt of a task, waiting to be (or being) worked on."""

    entry_id: Identifier = Field(description="Id of this entry (one per attempt).")
    task: FleetTaskSpec = Field(description="The task to perform.")
    attempt: int = Field(ge=1, description="Attempt number, starting at 1.")
    status: FleetInboxStatus = Field(description="State of the entry.")
    priority: int = Field(0, description="Higher values are leased first.")
    enqueued_at: Timestamp = Field(description="When the entry was created.")
    available_at: Timestamp = Field(description="Not leased before this time (retry backoff).")
    lease: FleetLease | None = Field(None, description="The current lease, when leased.")
    resume: FleetResume | None = Field(
        None,
        description="Set when the task paused for input and `resume_run` gave it: the agent "
        "continues from where it paused with `resume.value`.",
    )

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "entry_id": "inb_01JD3Z6Q_plan_1",
                    "task": {
                        "task_id": "tsk_01JD3Z6Q_plan",
                        "run_id": "run_01JD3Z6Q",
                        "step_id": "plan",
                        "type": "agent",
                        "agent": "planner",
                        "seed": 42,
                    },
                    "attempt": 1,
                    "status": "leased",
                    "enqueued_at": "2026-11-22T10:00:00Z",
                    "available_at": "2026-11-22T10:00:00Z",
                    "lease": {
                        "worker_id": "wkr_planner_1",
                        "fencing_token": 1,
                        "leased_at": "2026-11-22T10:00:01Z",
                        "expires_at": "2026-11-22T10:00:31Z",
                    },
                }
            ]
        }
    }


class TaskSuccess(ProtocolModel):
    """The worker finished the task with an output."""

    outcome: Literal["success"] = Field("success", description="Result outcome.")
    output: Any = Field(description="The task's output (any JSON value).")


class TaskFailure(ProtocolModel):
    """The worker could not finish the task."""

    outcome: Literal["failure"] = Field("failure", description="Result outcome.")
    kind: FleetTaskFailureKind = Field(description="Failure category; decides retries.")
    message: str = Field(description="What went wrong, for people.")


FleetTaskResult = Annotated[TaskSuccess | TaskFailure, Field(discriminator="outcome")]
"""What a worker reports for one task attempt, selected by `outcome`."""


class FleetReceiptSignature(ProtocolModel):
    """A worker's signature of its receipt: Ed25519 over the bytes of
    ``fleetforge.signing.receipt_digest(receipt)`` (``sha256:`` + hex of the canonical JSON of
    the worker's fields: run, step, task, attempt, worker, fencing token, result, usage,
    artifacts)."""

    key_id: str = Field(min_length=1, description="Id of the key (the worker's registered key).")
    digest: Digest = Field(description="The canonical digest that was signed.")
    signature: str = Field(
        pattern=r"^[A-Za-z0-9+/]{86}==$", description="Base64 of the 64-byte signature."
    )


class FleetReceipt(ProtocolModel):
    """A worker's signed-off report of one attempt, scored and chained by the fleet."""

    protocol_version: str = Field(FLEET_PROTOCOL_VERSION, description="Fleet protocol version.")
    receipt_id: Identifier = Field(
        description="Id of the receipt; posting it twice has one effect."
    )
    run_id: Identifier = Field(description="Run of the task.")
    step_id: Identifier = Field(description="Step of the task.")
    task_id: Identifier = Field(description="The task.")
    attempt: int = Field(ge=1, description="Attempt the receipt is for.")
    worker_id: Identifier = Field(description="Worker that did the work.")
    fencing_token: int = Field(ge=1, description="Fencing token of the worker's lease.")
    result: FleetTaskResult = Field(description="What the worker reports.")
    usage: FleetUsage = Field(default_factory=FleetUsage, description="Resources used.")
    artifacts: list[FleetArtifactRef] = Field(
        default_factory=list, description="Artifacts produced."
    )
    status: FleetReceiptStatus = Field(
        FleetReceiptStatus.PENDING, description="Verification state, set by the fleet."
    )
    score: FleetScore | None = Field(None, description="The scorer's verdict, set by the fleet.")
    posted_at: Timestamp | None = Field(None, description="When the fleet received it.")
    prev_hash: Digest | None = Field(None, description="Hash of the run's previous receipt.")
    hash: Digest | None = Field(None, description="Hash over this receipt and prev_hash.")
    worker_signature: FleetReceiptSignature | None = Field(
        None,
        description="The worker's Ed25519 signature over the receipt's canonical digest "
        "(required when the run's policy has `require_signed_receipts`).",
    )
    attestation_id: Digest | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="Id of the fleet's signed attestation of this receipt (`sha256:` of its "
        "in-toto statement), on the fleet's answer when it signs receipts. Not part of the "
        "receipt: outside its hash and its stored form.",
    )

    @classmethod
    def success(
        cls, entry: FleetInboxEntry, output: Any, *, usage: FleetUsage | None = None
    ) -> FleetReceipt:
        """A receipt reporting ``output`` for a leased inbox entry."""
        return cls._for(entry, TaskSuccess(output=output), usage)

    @classmethod
    def failure(
        cls,
        entry: FleetInboxEntry,
        kind: FleetTaskFailureKind | str,
        message: str,
        *,
        usage: FleetUsage | None = None,
    ) -> FleetReceipt:
        """A receipt reporting that the attempt of a leased inbox entry failed."""
        return cls._for(entry, TaskFailure(kind=FleetTaskFailureKind(kind), message=message), usage)

    @classmethod
    def _for(
        cls, entry: FleetInboxEntry, result: TaskSuccess | TaskFailure, usage: FleetUsage | None
    ) -> FleetReceipt:
        if entry.lease is None:
            raise UsageError(f"inbox entry {entry.entry_id} is not leased: nothing to report on")
        from fleetforge.ids import new_id

        task = entry.task
        return cls(
            receipt_id=new_id("rcp"),
            run_id=task.run_id,
            step_id=task.step_id,
            task_id=task.task_id,
            attempt=entry.attempt,
            worker_id=entry.lease.worker_id,
            fencing_token=entry.lease.fencing_token,
            result=result,
            usage=usage or FleetUsage(),
        )

    model_config = ProtocolModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "receipt_id": "rcp_01JD3Z6Q_plan_1",
                    "run_id": "run_01JD3Z6Q",
                    "step_id": "plan",
                    "task_id": "tsk_01JD3Z6Q_plan",
                    "attempt": 1,
                    "worker_id": "wkr_planner_1",
                    "fencing_token": 1,
                    "result": {"outcome": "success", "output": {"outline": ["intro", "body"]}},
                    "usage": {"input_tokens": 120, "output_tokens": 48, "total_tokens": 168},
                }
            ]
        }
    }
