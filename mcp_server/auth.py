"""Bearer tokens for ``fleetforge serve``, checked through the MCP SDK's token-verifier hook.

Tokens live in the store (:mod:`fleetforge.fleet.tokens`): ``fleetforge token create`` on any
machine that reaches the store, and every server of that store accepts the token within about a
second; ``token revoke`` refuses it as fast. A server keeps the active tokens' hashes in memory
and reads them again at most once a second (and at once, at most ten times a second, when an
unknown token arrives), so a request costs no database round trip.

Scopes (DESIGN "MCP tool arguments and errors", docs/security.md):

- ``read``: get/list runs, run events, artifact reads;
- ``submit``: submit, cancel, resume, approve, retry;
- ``work``: register, lease, and heartbeat / event / receipt / fail / release / pause / artifacts
  on the leases this credential holds;
- ``admin``: everything, and releasing any lease.

A token may name the worker it acts as (``worker_id``); then worker tools use that identity and
refuse another. A token that names no worker holds the leases it takes itself.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio.to_thread
from mcp.server.auth.provider import AccessToken, TokenVerifier

from fleetforge.fleet.access import hash_token
from fleetforge.redaction import get_logger

if TYPE_CHECKING:
    from fleetforge.fleet.store import EventStore
    from fleetforge.fleet.tokens import TokenRecord

__all__ = ["FleetAccessToken", "FleetTokenVerifier"]

log = get_logger("fleetforge.mcp_server.auth")


class FleetAccessToken(AccessToken):
    """The SDK's access token plus who the token is: its id and the worker it acts as."""

    token_id: str
    worker_id: str | None = None
    trust_level: str = "sandboxed"  # what the admin who issued it trusts its worker with
    public_key: str | None = None  # the worker's Ed25519 key, when the admin registered one
    projects: list[str] | None = None
    """Coordination projects it is limited to (None: all)."""


class FleetTokenVerifier(TokenVerifier):
    """Answers the MCP SDK's bearer-token hook from the tokens in a store."""

    def __init__(
        self, store: EventStore, *, refresh_seconds: float = 1.0, miss_seconds: float = 0.1
    ) -> None:
        from fleetforge.fleet.tokens import TokenStore

        self.tokens = TokenStore(store)
        self.refresh_seconds = refresh_seconds
        self.miss_seconds = miss_seconds
        self._active: dict[str, TokenRecord] = {}
        self._loaded = float("-inf")

    async def _reload(self) -> None:
        # the store's drivers are synchronous: read in a worker thread, off the event loop
        self._active = await anyio.to_thread.run_sync(self.tokens.active_by_hash)
        self._loaded = time.monotonic()

    async def _find(self, digest: str) -> TokenRecord | None:
        age = time.monotonic() - self._loaded
        if age >= self.refresh_seconds:
            await self._reload()
            age = 0.0
        record = self._active.get(digest)
        if record is None and age >= self.miss_seconds:
            await self._reload()  # created a moment ago?
            record = self._active.get(digest)
        return record

    async def verify_token(self, token: str) -> AccessToken | None:
        record = await self._find(hash_token(token))
        if record is None:
            return None
        return FleetAccessToken(
            token=record.sha256,  # never keep the clear token in memory longer than needed
            client_id=record.name,
            scopes=list(record.scopes),
            token_id=record.token_id,
            worker_id=record.worker_id,
            trust_level=record.trust_level.value,
            public_key=record.public_key,
            projects=None if record.projects is None else list(record.projects),
        )
