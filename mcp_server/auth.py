"""Bearer tokens for ``fleetforge serve``: created once, stored hashed, each with scopes.

A token is ``ffk_`` plus 43 random URL-safe characters; only its SHA-256 digest is kept, in a
JSON token file (``$FLEETFORGE_HOME/tokens.json`` by default, ``--tokens`` or
``FLEETFORGE_TOKENS_FILE`` to choose another) or inline in ``FLEETFORGE_TOKENS`` (the same JSON,
for containers). Scopes (DESIGN "MCP tool arguments and errors"):

- ``read``: get/list runs, run events, artifact reads;
- ``submit``: submit, cancel, resume, approve;
- ``work``: register, lease, heartbeat, event, receipt, fail, put artifact;
- ``admin``: everything.

A token may name the worker it acts as (``worker_id``); then worker tools use that identity and
refuse another.

A running server notices changes to its token file (checked at most once a second, on the next
request): a token created or revoked with ``fleetforge token`` takes effect without a restart.
A file that no longer parses is ignored, with a warning, until it does; a deleted file means no
token is accepted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from mcp.server.auth.provider import AccessToken, TokenVerifier

from fleetforge.errors import ContractError, ErrorDetail, UsageError
from fleetforge.fleet.settings import fleet_home

__all__ = [
    "SCOPES",
    "FleetAccessToken",
    "FleetTokenVerifier",
    "Scope",
    "TokenRecord",
    "TokenRegistry",
    "hash_token",
    "tokens_path",
]

log = logging.getLogger("fleetforge.mcp_server.auth")

Scope = Literal["read", "submit", "work", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
TOKEN_PREFIX = "ffk_"


def hash_token(token: str) -> str:
    """The stored form of a token: ``sha256:`` and the hex digest."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def tokens_path(flag: str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The token file: ``--tokens``, else ``FLEETFORGE_TOKENS_FILE``, else HOME/tokens.json."""
    env = os.environ if environ is None else environ
    if flag:
        return Path(flag)
    if env.get("FLEETFORGE_TOKENS_FILE"):
        return Path(env["FLEETFORGE_TOKENS_FILE"])
    return fleet_home(env) / "tokens.json"


@dataclass(frozen=True)
class TokenRecord:
    """One token as stored: never the token itself."""

    name: str
    sha256: str
    scopes: tuple[Scope, ...]
    worker_id: str | None = None
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "scopes": list(self.scopes),
            "worker_id": self.worker_id,
            "created_at": self.created_at,
        }


@dataclass
class TokenRegistry:
    """The known tokens, by digest."""

    records: list[TokenRecord] = field(default_factory=list)
    source: Path | None = None  # the token file it was loaded from (None: inline JSON)

    # ── loading and saving ───────────────────────────────────────────────────────────────────

    @classmethod
    def from_json(cls, text: str, *, source: str) -> TokenRegistry:
        """Parse a token document; problems are reported with JSON pointers."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(f"{source} is not JSON: {exc}") from None
        problems: list[ErrorDetail] = []
        records: list[TokenRecord] = []
        items = doc.get("tokens") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise ContractError(f"{source}: expected an object with a 'tokens' list")
        for i, item in enumerate(items):
            where = f"/tokens/{i}"
            if not isinstance(item, dict):
                problems.append(ErrorDetail(where, "must be an object"))
                continue
            name, digest = item.get("name"), item.get("sha256")
            scopes = item.get("scopes")
            if not isinstance(name, str) or not name:
                problems.append(ErrorDetail(f"{where}/name", "must be a non-empty string"))
            if not isinstance(digest, str) or not digest.startswith("sha256:"):
                problems.append(ErrorDetail(f"{where}/sha256", "must be 'sha256:' + hex digest"))
            if not isinstance(scopes, list) or not scopes:
                problems.append(ErrorDetail(f"{where}/scopes", f"must list some of {SCOPES}"))
                scopes = []
            for j, scope in enumerate(scopes):
                if scope not in SCOPES:
                    problems.append(
                        ErrorDetail(f"{where}/scopes/{j}", f"unknown scope {scope!r}; use {SCOPES}")
                    )
            worker_id = item.get("worker_id")
            if worker_id is not None and not isinstance(worker_id, str):
                problems.append(ErrorDetail(f"{where}/worker_id", "must be a string or null"))
            if not problems:
                records.append(
                    TokenRecord(
                        name=str(name),
                        sha256=str(digest),
                        scopes=tuple(scopes),
                        worker_id=worker_id,
                        created_at=str(item.get("created_at") or ""),
                    )
                )
        if problems:
            raise ContractError(f"{source} has invalid token entries", details=problems)
        return cls(records)

    @classmethod
    def load(cls, path: Path) -> TokenRegistry:
        """The registry in ``path``; empty when the file does not exist."""
        if not path.exists():
            return cls(source=path)
        loaded = cls.from_json(path.read_text(encoding="utf-8"), source=str(path))
        loaded.source = path
        return loaded

    @classmethod
    def configured(
        cls, flag: str | None = None, environ: Mapping[str, str] | None = None
    ) -> TokenRegistry:
        """``FLEETFORGE_TOKENS`` (inline JSON) when set and no flag is given, else the file."""
        env = os.environ if environ is None else environ
        if not flag and env.get("FLEETFORGE_TOKENS"):
            return cls.from_json(env["FLEETFORGE_TOKENS"], source="FLEETFORGE_TOKENS")
        return cls.load(tokens_path(flag, env))

    def save(self, path: Path) -> None:
        """Write the registry (owner-only permissions), atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        body = json.dumps({"tokens": [r.to_dict() for r in self.records]}, indent=2)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body + "\n")
        tmp.replace(path)

    # ── changing ─────────────────────────────────────────────────────────────────────────────

    def create(
        self, name: str, scopes: Iterable[str], *, worker_id: str | None = None
    ) -> tuple[str, TokenRecord]:
        """A new token (returned once, in clear) and its record, added to the registry."""
        wanted = tuple(dict.fromkeys(scopes))
        unknown = [s for s in wanted if s not in SCOPES]
        if not wanted or unknown:
            raise UsageError(f"scopes must be some of {', '.join(SCOPES)}; got {list(wanted)}")
        if any(r.name == name for r in self.records):
            raise UsageError(f"a token named {name!r} exists; revoke it first or pick another")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(
            name=name,
            sha256=hash_token(token),
            scopes=wanted,  # type: ignore[arg-type]
            worker_id=worker_id,
            created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
        self.records.append(record)
        return token, record

    def revoke(self, name: str) -> None:
        before = len(self.records)
        self.records = [r for r in self.records if r.name != name]
        if len(self.records) == before:
            raise UsageError(f"no token named {name!r}")

    def lookup(self, token: str) -> TokenRecord | None:
        digest = hash_token(token)
        for record in self.records:
            if secrets.compare_digest(record.sha256, digest):
                return record
        return None


class FleetAccessToken(AccessToken):
    """The SDK's access token plus the worker the token acts as."""

    worker_id: str | None = None


def _file_state(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class FleetTokenVerifier(TokenVerifier):
    """The MCP SDK's bearer-token hook, answered from a :class:`TokenRegistry`.

    When the registry came from a file, the file is looked at again (at most every
    ``recheck_seconds``) and reloaded when it changed, so revoking a token needs no restart.
    """

    def __init__(self, registry: TokenRegistry, *, recheck_seconds: float = 1.0) -> None:
        self.registry = registry
        self.recheck_seconds = recheck_seconds
        self._checked = time.monotonic()
        self._seen = _file_state(registry.source) if registry.source else None

    def _refresh(self) -> None:
        path = self.registry.source
        now = time.monotonic()
        if path is None or now - self._checked < self.recheck_seconds:
            return
        self._checked = now
        try:
            state = _file_state(path)
            if state == self._seen:
                return
            registry = TokenRegistry.load(path)
        except (ContractError, OSError, ValueError) as exc:
            log.warning("token file %s not reloaded (the tokens before stay): %s", path, exc)
            return
        self.registry, self._seen = registry, state
        log.info("token file %s reloaded: %d tokens", path, len(registry.records))

    async def verify_token(self, token: str) -> AccessToken | None:
        self._refresh()
        record = self.registry.lookup(token)
        if record is None:
            return None
        return FleetAccessToken(
            token=record.sha256,  # never keep the clear token in memory longer than needed
            client_id=record.name,
            scopes=list(record.scopes),
            worker_id=record.worker_id,
        )
