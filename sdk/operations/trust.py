"""Operations of the trust plane (docs/trust.md): revoking a task's capability token.

Revocation is an admin's act: the operation needs the ``admin`` scope over HTTP (the stdio
transport and the local CLI are the operator's own, trusted), and is recorded as a
``capability_revoked`` event naming who revoked it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from fleetforge.operations._base import Args, Operation

__all__ = ["REVOKE_CAPABILITY", "CapabilityRevoked", "RevokeCapabilityArgs"]


class RevokeCapabilityArgs(Args):
    capability_id: str = Field(
        pattern=r"^cap_[0-9a-f]{32}$",
        description="Id of the task's capability token (`cap_` + 32 hex digits), as "
        "`task_leased` events, lease answers and receipt statements name it.",
    )
    reason: str = Field("", description="Why, recorded for people.")


class CapabilityRevoked(BaseModel):
    """What a revocation did."""

    capability_id: str = Field(description="The id revoked.")
    task_id: str | None = Field(
        description="The task the token was minted for; null when this fleet minted no such id "
        "(the id is revoked all the same)."
    )
    revoked: bool = Field(description="False when the id was revoked already (nothing written).")


REVOKE_CAPABILITY = Operation(
    "revoke_capability",
    RevokeCapabilityArgs,
    CapabilityRevoked,
    "admin",
    "Revoke a capability token",
    """Revoke a task's capability token id (admin): every token with that id, attenuations
included, is refused from now on. The worker holding it learns it with its next heartbeat
answer and tools it calls after that are refused; offline verify reports a tool call made
after the revocation. Revoking an id twice has one effect (revoked: false the second time).""",
    lambda call, a: CapabilityRevoked.model_validate(
        call.fleet.revoke_capability(a.capability_id, reason=a.reason, by=call.by)
    ),
    destructive=True,
    idempotent=True,
    cli="token revoke-capability",
)
