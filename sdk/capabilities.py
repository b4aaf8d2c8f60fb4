"""Capability tokens: what a leased task may call, as a Biscuit token the fleet signs.

At lease the fleet mints one token per task (:mod:`fleetforge.fleet.trust.capabilities`): its
authority block names the run and the task, the tool patterns the step was granted, the run's
security policy (``allowed_tools``, ``denied_tools``) and the lease's expiry. Anyone holding the
fleet's capability public key checks a tool call offline (:meth:`Capability.check`, about 20 µs
once parsed); a worker narrows it for a sub-agent without asking the fleet (:func:`attenuate`).

A token's id (``cap_`` + the first 32 hex digits of its authority block's revocation id) is the
same for every attenuation of it, so revoking the id revokes them all. Revocations reach a worker
with its heartbeat answers (``HeartbeatResult.revoked_capabilities``); :meth:`Capability.revoke`
records one, and every later check is refused.

Datalog of a minted token (authority block)::

    run("run_…"); task("tsk_…");
    grant("^workspace\\..*$"); allow_tool("^.*$"); deny_tool("^workspace\\.write$");
    check if time($t), $t <= 2026-…;
    check if operation($op), grant($re), $op.matches($re);
    check if operation($op), allow_tool($re), $op.matches($re);
    reject if operation($op), deny_tool($re), $op.matches($re);

The checker adds ``time(now)``, ``operation(tool)`` and ``current_task(run, task)`` and allows
only when the token's run and task are the current ones (a token replayed on another task is
refused).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fleetforge.errors import ContractError, ForbiddenError

if TYPE_CHECKING:
    import biscuit_auth

__all__ = [
    "Capability",
    "CapabilityDecision",
    "attenuate",
    "capability_id",
    "glob_regex",
]

ID_PREFIX = "cap_"


def glob_regex(pattern: str) -> str:
    """A tool glob (``*``, ``?``) as an anchored regular expression Biscuit's ``matches``
    understands (Rust's regex syntax, no ``\\Z``)."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "^" + "".join(out) + "$"


def capability_id(token: biscuit_auth.Biscuit | str) -> str:
    """The token's id: ``cap_`` + 32 hex digits of its authority block's revocation id, shared
    by every attenuation of it. A base64 token is read without checking its signature."""
    import biscuit_auth

    ids = (
        biscuit_auth.UnverifiedBiscuit.from_base64(token).revocation_ids
        if isinstance(token, str)
        else token.revocation_ids
    )
    return ID_PREFIX + ids[0][:32]


def _public_key(public_key: str) -> biscuit_auth.PublicKey:
    import biscuit_auth

    try:
        # the installed stub predates from_bytes' algorithm argument
        _ED25519 = biscuit_auth.Algorithm.Ed25519  # type: ignore[attr-defined]
        return biscuit_auth.PublicKey.from_bytes(  # type: ignore[call-arg]
            bytes.fromhex(public_key), _ED25519
        )
    except (ValueError, TypeError) as exc:
        raise ContractError(f"capability public key is not 64 hex digits: {exc}") from None


def _parse(token: str, public_key: str) -> biscuit_auth.Biscuit:
    import biscuit_auth

    try:
        return biscuit_auth.Biscuit.from_base64(token, _public_key(public_key))
    except (biscuit_auth.BiscuitValidationError, biscuit_auth.BiscuitSerializationError) as exc:
        raise ForbiddenError(f"capability token refused: {exc}") from None


def attenuate(
    token: str,
    public_key: str,
    *,
    tools: Iterable[str] | None = None,
    expires_at: datetime | None = None,
) -> str:
    """A narrower token for a sub-agent, made offline: only ``tools`` (globs) and/or only
    until ``expires_at``. It can never do more than ``token``; it keeps its id."""
    import biscuit_auth

    parsed = _parse(token, public_key)
    code: list[str] = []
    params: dict[str, Any] = {}
    patterns = list(tools) if tools is not None else None
    if patterns is not None:
        alternatives = "|".join(f"(?:{glob_regex(p)})" for p in patterns) or "^$."
        code.append("check if operation($op), $op.matches({narrow});")
        params["narrow"] = alternatives
    if expires_at is not None:
        code.append("check if time($t), $t <= {until};")
        params["until"] = expires_at.astimezone(UTC)
    if not code:
        return token
    block = biscuit_auth.BlockBuilder("\n".join(code), params)
    return str(parsed.append(block).to_base64())


@dataclass(frozen=True)
class CapabilityDecision:
    """The answer to one tool call: allowed or not, why, and which token decided."""

    allowed: bool
    tool: str
    token_id: str
    reason: str = ""


@dataclass
class Capability:
    """A task's capability token, parsed once, checked at every tool call.

    ``token``: the Biscuit (base64) the lease carried; ``public_key``: the fleet's capability
    public key (hex); ``run_id`` / ``task_id``: the task it is used for."""

    token: str
    public_key: str
    run_id: str
    task_id: str
    revoked: set[str] = field(default_factory=set)
    _parsed: Any = field(default=None, init=False, repr=False)
    _id: str = field(default="", init=False, repr=False)

    @classmethod
    def from_lease(cls, lease: Any, *, run_id: str, task_id: str) -> Capability | None:
        """The capability a :class:`~fleetforge.contracts.FleetLease` carries, if any."""
        token = getattr(lease, "capability", None)
        if token is None:
            return None
        return cls(token.token, token.public_key, run_id, task_id)

    @property
    def token_id(self) -> str:
        if not self._id:
            self._id = capability_id(self._biscuit())
        return self._id

    def _biscuit(self) -> biscuit_auth.Biscuit:
        if self._parsed is None:
            self._parsed = _parse(self.token, self.public_key)
        parsed: biscuit_auth.Biscuit = self._parsed
        return parsed

    def update(self, lease: Any) -> None:
        """Take a heartbeat's answer (a FleetLease): a renewed token, revoked ids."""
        renewed = getattr(lease, "capability", None)
        if renewed is not None and renewed.token != self.token:
            self.token, self.public_key = renewed.token, renewed.public_key
            self._parsed, self._id = None, ""
        self.revoke(getattr(lease, "revoked_capabilities", None) or ())

    def revoke(self, token_ids: Iterable[str]) -> None:
        """Record revoked ids (from heartbeat answers): later checks of them are refused."""
        self.revoked.update(token_ids)

    def check(self, tool: str, *, now: datetime | None = None) -> CapabilityDecision:
        """May ``tool`` be called now for this task? Never raises for a refusal."""
        import biscuit_auth

        try:
            parsed = self._biscuit()
        except ForbiddenError as exc:
            return CapabilityDecision(False, tool, "", exc.message)
        token_id = self.token_id
        if token_id in self.revoked:
            return CapabilityDecision(False, tool, token_id, f"capability {token_id} was revoked")
        builder = biscuit_auth.AuthorizerBuilder(
            "time({now}); operation({tool}); current_task({run}, {task});"
            "allow if run($r), task($t), current_task($r, $t);",
            {
                "now": now or datetime.now(UTC),
                "tool": tool,
                "run": self.run_id,
                "task": self.task_id,
            },
        )
        builder.set_limits(_limits(builder))  # type: ignore[attr-defined]  # (stub predates it)
        authorizer = builder.build(parsed)
        try:
            authorizer.authorize()
        except biscuit_auth.AuthorizationError as exc:
            return CapabilityDecision(False, tool, token_id, _why(str(exc), tool))
        return CapabilityDecision(True, tool, token_id)

    def require(self, tool: str, *, now: datetime | None = None) -> CapabilityDecision:
        """:meth:`check`, raising ForbiddenError (naming the token) on a refusal."""
        decision = self.check(tool, now=now)
        if not decision.allowed:
            raise ForbiddenError(
                f"tool call refused: {decision.reason}", tool=tool, token_id=decision.token_id
            )
        return decision


def _limits(builder: Any) -> Any:
    """Biscuit's limits with a wall-time ceiling of 100 ms instead of 1 ms: a check takes
    about 20 µs, but on a loaded machine a 1 ms ceiling refuses good tokens at random."""
    limits = builder.limits()
    limits.max_time = timedelta(milliseconds=100)
    return limits


def _why(message: str, tool: str) -> str:
    """A person's reason from Biscuit's authorization error."""
    if "execution limits" in message:
        return "the capability check ran out of time (refused to be safe)"
    if "no matching policy" in message:
        return f"the capability token is for another task, not this one ({tool!r})"
    if "time($t)" in message:
        return "the capability token expired"
    if "deny_tool" in message:
        return f"{tool!r} is denied by the run's security policy"
    if "allow_tool" in message:
        return f"{tool!r} is outside the run's allowed tools"
    if "grant(" in message:
        return f"the step's grant does not cover {tool!r}"
    if "matches({narrow})" in message or "$op.matches" in message:
        return f"the attenuated capability does not cover {tool!r}"
    return f"the capability token does not allow {tool!r}"
