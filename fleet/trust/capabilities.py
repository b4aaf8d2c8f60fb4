"""The fleet's side of capability tokens: its root key and minting one token per lease.

The root key (Ed25519, Biscuit's) is kept in the store (table ``trust_keys``, row
``capabilities``): every ``fleetforge serve`` of one store mints with the same key and any of
them checks any token. It is made on first use; it is never in an event, a log or an export.
It is independent of the fleet's receipt-signing keys. What a token says and how it is checked:
:mod:`fleetforge.capabilities`.

:func:`tools_policy` is what the token grants (the step's tool patterns, within the run's
``allowed_tools`` and outside its ``denied_tools``); the receipt statement and ``verify`` use
:func:`check_tool_use` to ask whether a token covered a tool that was used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fleetforge.capabilities import Capability, CapabilityDecision, capability_id, glob_regex
from fleetforge.contracts import FleetCapabilityToken, FleetTaskSpec
from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.store._base import iso

if TYPE_CHECKING:
    import biscuit_auth

    from fleetforge.fleet.store import Tx

__all__ = ["CapabilityMint", "ToolsPolicy", "check_tool_use", "tools_policy"]

Q = named_queries("service.sql")
KEY_NAME = "capabilities"


@dataclass(frozen=True)
class ToolsPolicy:
    """The tool patterns a task's token grants: ``grant`` within ``allowed``, minus ``denied``."""

    grant: tuple[str, ...]
    allowed: tuple[str, ...]
    denied: tuple[str, ...]


def tools_policy(task: FleetTaskSpec) -> ToolsPolicy:
    """The step's grant (its worker profile's tools; none listed: any) and the run's policy."""
    security = task.security
    return ToolsPolicy(
        grant=tuple(task.worker.tools) or ("*",),
        allowed=tuple(security.allowed_tools) if security is not None else ("*",),
        denied=tuple(security.denied_tools) if security is not None else (),
    )


class CapabilityMint:
    """Mints capability tokens with the store's root key (made on first use)."""

    def __init__(self) -> None:
        self._private: biscuit_auth.PrivateKey | None = None
        self.public_key = ""
        self._stored = False  # the key in memory is known to be committed in the store

    def load(
        self, tx: Tx, now: datetime, *, after_commit: Callable[[Callable[[], None]], None] | None
    ) -> None:
        """Read (or create, once per store) the root key, inside the caller's transaction;
        cheap once the key is known to be stored. A key this call creates is trusted for
        later calls only once ``after_commit`` (the unit's) says it committed: a rolled-back
        unit never leaves a key only this process knows (the next call makes another)."""
        if self._private is not None and self._stored:
            return
        import biscuit_auth

        row = tx.fetchone(Q["trust_key"], {"name": KEY_NAME})
        stored = row is not None
        if row is None:
            pair = biscuit_auth.KeyPair()
            tx.execute(
                Q["trust_key_insert"],
                {
                    "name": KEY_NAME,
                    "private_key": pair.private_key.to_bytes().hex(),
                    "public_key": pair.public_key.to_bytes().hex(),
                    "at": iso(now),
                },
            )
            row = tx.fetchone(Q["trust_key"], {"name": KEY_NAME})  # another process's, if first
        assert row is not None
        # the installed stub predates from_bytes' algorithm argument
        _ED25519 = biscuit_auth.Algorithm.Ed25519  # type: ignore[attr-defined]
        self._private = biscuit_auth.PrivateKey.from_bytes(  # type: ignore[call-arg]
            bytes.fromhex(row[0]), _ED25519
        )
        self.public_key = str(row[1])
        if stored or after_commit is None:
            self._stored = True
        else:

            def committed() -> None:
                self._stored = True

            after_commit(committed)

    def mint(
        self, task: FleetTaskSpec, expires_at: datetime, policy: ToolsPolicy | None = None
    ) -> FleetCapabilityToken:
        """A token for ``task`` until ``expires_at`` (call :meth:`load` first)."""
        import biscuit_auth

        assert self._private is not None, "load() the root key first"
        policy = policy or tools_policy(task)
        code = ["run({run});", "task({task});"]
        params: dict[str, Any] = {
            "run": task.run_id,
            "task": task.task_id,
            "exp": expires_at.astimezone(UTC),
        }
        for kind, patterns in (
            ("grant", policy.grant),
            ("allow_tool", policy.allowed),
            ("deny_tool", policy.denied),
        ):
            for i, pattern in enumerate(patterns):
                code.append(f"{kind}({{{kind}{i}}});")
                params[f"{kind}{i}"] = glob_regex(pattern)
        code += [
            "check if time($t), $t <= {exp};",
            "check if operation($op), grant($re), $op.matches($re);",
            "check if operation($op), allow_tool($re), $op.matches($re);",
            "reject if operation($op), deny_tool($re), $op.matches($re);",
        ]
        token: biscuit_auth.Biscuit = biscuit_auth.BiscuitBuilder("\n".join(code), params).build(
            self._private
        )
        return FleetCapabilityToken(
            token_id=capability_id(token),
            token=token.to_base64(),
            public_key=self.public_key,
            expires_at=expires_at,
        )


def check_tool_use(
    token: str,
    public_key: str,
    *,
    run_id: str,
    task_id: str,
    tools: Iterable[str],
    at: datetime,
    revoked: Iterable[str] = (),
) -> list[CapabilityDecision]:
    """Did ``token`` cover each tool used by ``task_id`` at time ``at``? One decision per tool
    (for the receipt statement and offline verify)."""
    capability = Capability(token, public_key, run_id, task_id, revoked=set(revoked))
    return [capability.check(tool, now=at) for tool in tools]
