"""Bearer tokens, kept in the store: created once, stored as SHA-256, each with scopes.

A token is ``ffk_`` plus 43 random URL-safe characters. ``token_created`` and ``token_revoked``
events record every change (so several ``fleetforge serve`` processes on one PostgreSQL share
the same tokens, replay rebuilds them and ``db export`` carries them to the other store), and
changes are transactions: concurrent creates and revokes never lose one.

Scopes (docs/security.md): ``read`` (runs, events, artifacts), ``submit`` (submit, cancel,
resume, approve, retry), ``work`` (register, lease, and act on the leases it holds), ``admin``
(everything, and release of any lease). A token may name the worker it acts as (``worker_id``).

A tokens file of earlier versions (``$FLEETFORGE_HOME/tokens.json``, or
``FLEETFORGE_TOKENS_FILE``) is imported on first use and renamed ``tokens.json.imported``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

from fleetforge.contracts import FleetTrustLevel, RunEvent
from fleetforge.contracts.events import EVENT_TYPES, TokenScope
from fleetforge.errors import ConflictError, ContractError, ErrorDetail, NotFoundError, UsageError
from fleetforge.fleet._sql import named_queries
from fleetforge.fleet._state import at, to_dt
from fleetforge.fleet.access import hash_token
from fleetforge.fleet.clock import Clock, clock_for
from fleetforge.fleet.settings import fleet_home
from fleetforge.fleet.store import EventStore
from fleetforge.ids import new_id

__all__ = [
    "SCOPES",
    "TOKEN_PREFIX",
    "TokenRecord",
    "TokenStore",
    "check_public_key",
    "hash_token",
    "legacy_tokens_path",
]

Q = named_queries("service.sql")
SCOPES: tuple[TokenScope, ...] = get_args(TokenScope)
TOKEN_PREFIX = "ffk_"
_NAME_LIMIT = 200


def legacy_tokens_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where an earlier version kept tokens: ``FLEETFORGE_TOKENS_FILE``, else HOME/tokens.json."""
    env = os.environ if environ is None else environ
    if env.get("FLEETFORGE_TOKENS_FILE"):
        return Path(env["FLEETFORGE_TOKENS_FILE"])
    return fleet_home(env) / "tokens.json"


@dataclass(frozen=True)
class TokenRecord:
    """One token as stored: never the token itself."""

    token_id: str
    name: str
    sha256: str
    scopes: tuple[TokenScope, ...]
    worker_id: str | None
    created_at: datetime
    created_by: str | None = None
    revoked_at: datetime | None = None
    trust_level: FleetTrustLevel = FleetTrustLevel.SANDBOXED
    public_key: str | None = None
    projects: tuple[str, ...] | None = None
    """Coordination projects it is limited to (None: every project)."""

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: TokenScope) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def to_dict(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "worker_id": self.worker_id,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "created_by": self.created_by,
            "revoked_at": (None if self.revoked_at is None else self.revoked_at.isoformat()),
            "trust_level": self.trust_level.value,
            "public_key": self.public_key,
            "projects": None if self.projects is None else list(self.projects),
        }


def _record(tx: Any, row: tuple[Any, ...]) -> TokenRecord:
    token_id, name, sha256, scopes, worker_id, created_at, created_by, revoked_at = row[:8]
    projects = row[10]
    return TokenRecord(
        token_id=token_id,
        name=name,
        sha256=sha256,
        scopes=tuple(tx.load_json(scopes)),
        worker_id=worker_id,
        created_at=at(created_at),
        created_by=created_by,
        revoked_at=to_dt(revoked_at),
        trust_level=FleetTrustLevel(row[8] or "sandboxed"),
        public_key=row[9],
        projects=None if projects is None else tuple(tx.load_json(projects)),
    )


def _check_trust(level: FleetTrustLevel | str) -> FleetTrustLevel:
    try:
        return FleetTrustLevel(level)
    except ValueError:
        names = ", ".join(t.value for t in FleetTrustLevel)
        raise UsageError(f"trust level must be one of {names}; got {level!r}") from None


def check_public_key(value: str, *, where: str) -> str:
    """An Ed25519 public key as base64 of its raw 32 bytes; UsageError naming ``where``."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != 32:
        raise UsageError(f"{where} must be base64 of a raw 32-byte Ed25519 public key")
    return base64.b64encode(raw).decode()


def _check_scopes(scopes: Iterable[str]) -> tuple[TokenScope, ...]:
    wanted = tuple(dict.fromkeys(scopes))
    unknown = [s for s in wanted if s not in SCOPES]
    if not wanted or unknown:
        raise UsageError(f"scopes must be some of {', '.join(SCOPES)}; got {list(wanted)}")
    return wanted  # type: ignore[return-value]


class TokenStore:
    """The tokens of one event store: create, revoke, list and look up."""

    def __init__(self, store: EventStore, *, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock or clock_for(store)

    def _event(self, type_: str, **data: Any) -> RunEvent:
        fields = {"event_id": new_id("evt"), "run_id": None, "at": self.clock.now(), "data": data}
        return EVENT_TYPES[type_].model_validate(fields)

    # ── reading ─────────────────────────────────────────────────────────────────────────────

    def list(self, *, include_revoked: bool = False) -> list[TokenRecord]:
        """Tokens in creation order (active ones unless ``include_revoked``)."""
        with self.store.backend.read() as tx:
            records = [_record(tx, r) for r in tx.fetchall(Q["tokens"])]
        return [r for r in records if include_revoked or r.active]

    def lookup(self, token: str) -> TokenRecord | None:
        """The active record of a clear token, or None."""
        with self.store.backend.read() as tx:
            row = tx.fetchone(Q["token_by_hash"], {"sha256": hash_token(token)})
            record = None if row is None else _record(tx, row)
        return record if record is not None and record.active else None

    def active_by_hash(self) -> dict[str, TokenRecord]:
        """Every active token by its SHA-256 (what a server caches)."""
        return {r.sha256: r for r in self.list()}

    # ── changing ────────────────────────────────────────────────────────────────────────────

    def create(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        worker_id: str | None = None,
        by: str | None = None,
        trust_level: FleetTrustLevel | str = FleetTrustLevel.SANDBOXED,
        public_key: str | None = None,
        projects: Iterable[str] | None = None,
    ) -> tuple[str, TokenRecord]:
        """A new token (returned once, in clear) and its record.

        ``trust_level``: what a worker using it is trusted as (never what it declares);
        ``public_key``: the worker's Ed25519 key (base64 of the raw 32 bytes), which it must
        register and sign receipts with; ``projects`` limits what it sees of coordination
        (issue 22) to those projects."""
        level = _check_trust(trust_level)
        if public_key is not None:
            public_key = check_public_key(public_key, where="--public-key")
        if not name or len(name) > _NAME_LIMIT or not name.isprintable():
            raise UsageError(f"a token name is 1-{_NAME_LIMIT} printable characters; got {name!r}")
        wanted = _check_scopes(scopes)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        event = self._event(
            "token_created",
            token_id=new_id("tok"),
            name=name,
            sha256=hash_token(token),
            scopes=list(wanted),
            worker_id=worker_id,
            by=by,
            trust_level=level.value,
            public_key=public_key,
            **({} if projects is None else {"projects": list(dict.fromkeys(projects))}),
        )
        with self.store.transaction() as unit:
            unit.tx.lock("tokens")  # creates and revokes take turns (PostgreSQL)
            if unit.tx.fetchone(Q["token_by_name"], {"name": name}) is not None:
                raise ConflictError(
                    f"a token named {name!r} exists; revoke it first or pick another name"
                )
            unit.append([event])
        return token, self._get(event.data.token_id)

    def revoke(self, name: str, *, by: str | None = None) -> TokenRecord:
        """Revoke the active token called ``name``."""
        with self.store.transaction() as unit:
            unit.tx.lock("tokens")
            row = unit.tx.fetchone(Q["token_by_name"], {"name": name})
            if row is None:
                raise NotFoundError(f"no active token named {name!r}")
            record = _record(unit.tx, row)
            unit.append([self._event("token_revoked", token_id=record.token_id, name=name, by=by)])
        return self._get(record.token_id)

    def _get(self, token_id: str) -> TokenRecord:
        with self.store.backend.read() as tx:
            row = tx.fetchone(Q["token_by_id"], {"token_id": token_id})
            if row is None:
                raise NotFoundError(f"no token {token_id!r}")
            return _record(tx, row)

    # ── the tokens file of earlier versions ─────────────────────────────────────────────────

    def import_file(self, path: Path, *, by: str | None = None) -> int:
        """Import a tokens.json (hashes, scopes, workers) in one transaction and rename it
        ``<name>.imported``; returns how many tokens it added. Names already active are
        skipped; a file that does not parse is refused whole."""
        if not path.is_file():
            return 0
        entries = _parse_tokens_file(path)
        added = 0
        with self.store.transaction() as unit:
            unit.tx.lock("tokens")
            for entry in entries:
                taken = unit.tx.fetchone(Q["token_by_name"], {"name": entry["name"]})
                known = unit.tx.fetchone(Q["token_by_hash"], {"sha256": entry["sha256"]})
                if taken is not None or known is not None:
                    continue
                event = self._event(
                    "token_created",
                    token_id=new_id("tok"),
                    by=by,
                    imported_from=str(path),
                    **entry,
                )
                unit.append([event])
                added += 1
        path.rename(path.with_name(path.name + ".imported"))
        return added


def _parse_tokens_file(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ContractError(f"{path} cannot be imported: {exc}") from None
    items = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ContractError(f"{path}: expected an object with a 'tokens' list")
    problems: list[ErrorDetail] = []
    entries: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"/tokens/{i}"
        if not isinstance(item, dict):
            problems.append(ErrorDetail(where, "must be an object"))
            continue
        name, digest, scopes = item.get("name"), item.get("sha256"), item.get("scopes")
        worker_id = item.get("worker_id")
        if not isinstance(name, str) or not name:
            problems.append(ErrorDetail(f"{where}/name", "must be a non-empty string"))
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            problems.append(ErrorDetail(f"{where}/sha256", "must be 'sha256:' + hex digest"))
        if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
            problems.append(ErrorDetail(f"{where}/scopes", f"must list some of {SCOPES}"))
        if worker_id is not None and not isinstance(worker_id, str):
            problems.append(ErrorDetail(f"{where}/worker_id", "must be a string or null"))
        entries.append({"name": name, "sha256": digest, "scopes": scopes, "worker_id": worker_id})
    if problems:
        raise ContractError(f"{path} has invalid token entries", details=problems)
    return entries
