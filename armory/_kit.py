"""A kit: the started servers of some tool packs, their tools filtered by a capability grant,
handed out as framework-native tools whose every call passes through :meth:`Kit.call`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import anyio
from mcp import StdioServerParameters
from mcp import types as mcp_types

from fleetforge.armory._packs import Pack
from fleetforge.capabilities import Capability
from fleetforge.contracts import FleetSecretRef
from fleetforge.contracts.toolpack import HttpServer, StdioServer
from fleetforge.errors import ContractError, FleetForgeError, ForbiddenError, UsageError
from fleetforge.fleet.trust.policy import PolicySet
from fleetforge.telemetry import tracer, trust_attributes

__all__ = ["Kit", "KitTool", "open_kit"]

Recorder = Callable[[str, dict[str, Any]], None]
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class KitTool:
    """One tool of a kit, as an agent sees it."""

    name: str  # exposed name (pack prefix + server's tool name)
    pack: str
    server: str
    remote_name: str
    description: str
    input_schema: dict[str, Any]
    capability: str
    allowed: bool

    @property
    def function_name(self) -> str:
        """The name models see: model APIs allow only letters, digits, ``_`` and ``-``."""
        return re.sub(r"[^A-Za-z0-9_-]", "_", self.name)

    def mcp_tool(self) -> mcp_types.Tool:
        return mcp_types.Tool(
            name=self.function_name, description=self.description, inputSchema=self.input_schema
        )


def _expand(value: str, env: Mapping[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def _command(command: str) -> str:
    """``python`` is this interpreter; a bare name found next to it (``fleetforge``) is that."""
    if command == "python":
        return sys.executable
    if os.sep in command or "/" in command:
        return command
    sibling = Path(sys.executable).with_name(command)
    return str(sibling) if sibling.exists() else command


def _resolve(
    values: Mapping[str, str], env: Mapping[str, str], secrets: list[str]
) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        if value.startswith(("env://", "file://", "vault://")):
            secret = FleetSecretRef(ref=value).resolve(dict(env)).get_secret_value()
            secrets.append(secret)
            out[key] = secret
        else:
            out[key] = _expand(value, env)
    return out


def _inherited(environ: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """What a pack server inherits: the MCP SDK's allow-list and the names it declares."""
    from mcp.client.stdio import DEFAULT_INHERITED_ENV_VARS

    wanted = [*DEFAULT_INHERITED_ENV_VARS, *names]
    return {name: environ[name] for name in wanted if name in environ}


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def single_leaf(group: BaseExceptionGroup[Any]) -> BaseException | None:
    """The one exception inside nested single-member groups, or None."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup):
        if len(inner.exceptions) != 1:
            return None
        inner = inner.exceptions[0]
    return inner


def _digest(arguments: Any) -> str:
    body = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


class Kit:
    """Started tool packs. Use :func:`open_kit` (``fleetforge.armory.open``) to get one."""

    def __init__(
        self,
        grant: Iterable[str],
        recorder: Recorder | None,
        capability: Capability | None = None,
        policy: PolicySet | None = None,
        worker_id: str = "",
    ) -> None:
        self.grant = tuple(grant)
        self.recorder = recorder
        self.capability = capability
        self.policy = policy
        self.worker_id = worker_id
        self._tools: dict[str, KitTool] = {}
        self._sessions: dict[tuple[str, str], Any] = {}

    # ── what is there ───────────────────────────────────────────────────────────────────────

    def available(self, *, include_refused: bool = False) -> list[KitTool]:
        """The tools, sorted by name (only those the grant allows, unless asked)."""
        return sorted(
            (t for t in self._tools.values() if t.allowed or include_refused),
            key=lambda t: t.name,
        )

    def _allows(self, capability: str) -> bool:
        return any(fnmatchcase(capability, pattern) for pattern in self.grant)

    def _add(self, pack: Pack, server: str, session: Any, tools: list[mcp_types.Tool]) -> None:
        rules = pack.manifest.tools
        for tool in tools:
            if not any(fnmatchcase(tool.name, p) for p in rules.include):
                continue
            if any(fnmatchcase(tool.name, p) for p in rules.exclude):
                continue
            exposed = pack.manifest.prefix + tool.name
            capability = next(
                (cap for pattern, cap in rules.requires.items() if fnmatchcase(tool.name, pattern)),
                exposed,
            )
            if exposed in self._tools:
                raise ContractError(
                    f"tool {exposed!r} is offered by two packs ({self._tools[exposed].pack} and "
                    f"{pack.manifest.name}); give one a prefix"
                )
            self._tools[exposed] = KitTool(
                name=exposed,
                pack=pack.manifest.name,
                server=server,
                remote_name=tool.name,
                description=tool.description or "",
                input_schema=dict(tool.inputSchema),
                capability=capability,
                allowed=self._allows(capability),
            )
            self._sessions[(pack.manifest.name, server)] = session

    # ── calling ─────────────────────────────────────────────────────────────────────────────

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        if self.recorder is not None:
            self.recorder(kind, data)

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None = None
    ) -> mcp_types.CallToolResult:
        """Call a tool by its exposed name: checked against the grant, traced, recorded."""
        args = dict(arguments or {})
        tool = self._tools.get(name) or next(
            (t for t in self._tools.values() if t.function_name == name), None
        )
        name = tool.name if tool is not None else name
        if tool is None or not tool.allowed:
            reason = (
                f"no tool {name!r} in this kit"
                if tool is None
                else f"the grant does not cover {tool.capability!r}"
            )
            self._record("tool_refused", {"tool": name, "reason": reason})
            raise ForbiddenError(f"tool call refused: {reason}", tool=name)
        if self.capability is not None:  # the task's capability token decides, not the globs
            decision = self.capability.check(tool.capability)
            if not decision.allowed:
                refused = {"tool": name, "reason": decision.reason, "token_id": decision.token_id}
                self._record("tool_refused", refused)
                raise ForbiddenError(
                    f"tool call refused: {decision.reason}", tool=name, token_id=decision.token_id
                )
        policy_digest = self._policy_check(name, tool.capability)
        trust = trust_attributes(
            capability_token_id=self.capability.token_id if self.capability else None,
            policy_decision=None if policy_digest is None else "allow",
        )
        session = self._sessions[(tool.pack, tool.server)]
        started = time.perf_counter()
        outcome = "error"
        with tracer.start_as_current_span(
            f"execute_tool {name}",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "fleet.pack": tool.pack,
            }
            | trust,
        ) as span:
            try:
                result: mcp_types.CallToolResult = await session.call_tool(tool.remote_name, args)
                outcome = "error" if result.isError else "ok"
                return result
            finally:
                span.set_attribute("fleet.outcome", outcome)
                self._record(
                    "tool_called",
                    {
                        "tool": name,
                        "arguments_digest": _digest(args),
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                        "outcome": outcome,
                    }
                    | ({} if policy_digest is None else {"policy_digest": policy_digest}),
                )

    def _policy_check(self, name: str, capability: str) -> str | None:
        """The Cedar policy's word on a call (none configured: None); a denial is recorded as
        ``tool_refused`` with the policy set's digest and raised."""
        if self.policy is None:
            return None
        cap = self.capability
        decision = self.policy.decide_tool(
            capability,
            worker_id=self.worker_id or "unknown",
            run_id=cap.run_id if cap is not None else "",
            task_id=cap.task_id if cap is not None else "",
        )
        if not decision.allowed:
            reason = f"the policy set {decision.digest} does not permit {capability!r}"
            refused: dict[str, Any] = {"tool": name, "reason": reason}
            refused["policy_digest"] = decision.digest
            if cap is not None:
                refused["token_id"] = cap.token_id
            self._record("tool_refused", refused)
            raise ForbiddenError(f"tool call refused: {reason}", tool=name)
        return decision.digest

    async def call_text(self, name: str, arguments: Mapping[str, Any] | None = None) -> str:
        """Call a tool and return its text; a tool error raises ContractError with its text."""
        result = await self.call(name, arguments)
        text = "\n".join(c.text for c in result.content if isinstance(c, mcp_types.TextContent))
        if result.isError:
            raise ContractError(f"tool {name} failed: {text}", tool=name)
        return text

    # ── framework-native tools ──────────────────────────────────────────────────────────────

    def tools(self, framework: str) -> list[Any]:
        """The allowed tools as ``langgraph`` (LangChain), ``autogen`` or ``crewai`` tools."""
        from fleetforge.armory import _frameworks

        makers = {
            "langgraph": _frameworks.langchain_tools,
            "langchain": _frameworks.langchain_tools,
            "autogen": _frameworks.autogen_tools,
            "crewai": _frameworks.crewai_tools,
        }
        if framework not in makers:
            raise UsageError(f"unknown framework {framework!r}; use {', '.join(sorted(makers))}")
        return makers[framework](self)


async def _start_server(
    stack: AsyncExitStack,
    pack: Pack,
    server: StdioServer | HttpServer,
    environ: Mapping[str, str],
) -> tuple[Any, list[mcp_types.Tool]]:
    from fleetforge.client import FleetClientSession

    secrets: list[str] = []
    errlog = stack.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8"))  # noqa: SIM115
    where = f"pack {pack.manifest.name!r}, server {server.name!r}"
    try:
        if isinstance(server, StdioServer):
            from mcp.client.stdio import stdio_client

            # a minimal environment: the SDK's allow-list, what the pack names, its secrets
            env = {**_inherited(environ, server.pass_env), **_resolve(server.env, environ, secrets)}
            params = StdioServerParameters(
                command=_command(server.command),
                args=[_expand(a, environ) for a in server.args],
                env=env,
                cwd=_expand(server.cwd, environ) if server.cwd else None,
            )
            read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
        else:
            import httpx
            from mcp.client.streamable_http import streamable_http_client

            headers = _resolve(server.headers, environ, secrets)
            http = await stack.enter_async_context(httpx.AsyncClient(headers=headers))
            read, write, _ = await stack.enter_async_context(
                streamable_http_client(server.url, http_client=http)
            )
        session = await stack.enter_async_context(FleetClientSession(read, write))
        # the time limit covers the awaits only: contexts entered on the stack must not be
        # entered inside a cancel scope they outlive
        with anyio.fail_after(START_TIMEOUT_S):
            await session.initialize()
            listed = await session.list_tools()
    except Exception as exc:
        errlog.seek(0)
        tail = _redact("".join(errlog.readlines()[-15:]).strip(), secrets)
        detail = _redact(str(exc) or type(exc).__name__, secrets)
        message = f"{where} failed to start: {detail}"
        if tail:
            message += f"\n--- stderr (last lines) ---\n{tail}"
        raise FleetForgeError(message, pack=pack.manifest.name, server=server.name) from None
    return session, list(listed.tools)


@asynccontextmanager
async def open_kit(
    packs: Iterable[Pack],
    *,
    grant: Iterable[str] = ("*",),
    recorder: Any = None,
    environ: Mapping[str, str] | None = None,
    capability: Capability | None = None,
    policy: PolicySet | None = None,
    worker_id: str = "",
) -> AsyncIterator[Kit]:
    """Start every server of ``packs``; yield a :class:`Kit`; stop them all on exit (also on
    error and cancellation).

    ``grant``: capability globs the caller holds (a worker's ``tools`` list works as one).
    ``capability``: the task's capability token (``Capability.from_lease``): every call is
    checked against it too (run, task, tools, expiry, revocations), a refusal recorded as
    ``tool_refused`` with the token's id. ``policy``: Cedar policies
    (:func:`fleetforge.fleet.trust.policy.load_policy`) each call is decided by too, as
    ``worker_id``; the decision's policy digest is recorded with the call.
    ``recorder``: an :class:`~fleetforge.adapter.AgentRunAdapter` (tool calls become fleet
    ``tool_called`` / ``tool_refused`` events through its envelopes) or ``f(kind, data)``.
    """
    if recorder is not None and hasattr(recorder, "emit"):  # an AgentRunAdapter
        adapter = recorder
        recorder = lambda kind, data: adapter.emit("custom", {"type": kind, **data})  # noqa: E731
    kit = Kit(grant, recorder, capability, policy, worker_id)
    env = dict(os.environ if environ is None else environ)
    try:
        async with AsyncExitStack() as stack:
            for pack in packs:
                for server in pack.manifest.servers:
                    session, tools = await _start_server(stack, pack, server, env)
                    kit._add(pack, server.name, session, tools)
            yield kit
    except BaseExceptionGroup as group:
        # the MCP client's task groups wrap what the block raised: give the caller its error
        leaf = single_leaf(group)
        if leaf is None:
            raise
        raise leaf from None
