"""A run's bundle: everything needed to verify it on a machine with no store, in one JSON file.

``{"format": "fleetforge-bundle", "version": 1, "run_id", "exported_at",
"events": [run_event...], "receipts": [{receipt_id, task_id, position, attestation}],
"artifacts": [{digest, media_type, size_bytes, content_base64 | missing}],
"projections": {table: [row...]}, "trust": {"keys": [...]}, "revoked_token_ids": []}``

``events`` are the run's events in ``seq`` order; ``projections`` the rows of every projection
table that has a ``run_id`` column, for this run, as JSON values (timestamps as RFC 3339 text,
JSON columns parsed) so rows read from SQLite and from PostgreSQL compare alike.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from fleetforge.errors import ContractError, NotFoundError, UsageError
from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.store import EventStore
from fleetforge.fleet.store._base import EventRow, iso, json_loads
from fleetforge.fleet.trust.keys import TrustStore

__all__ = [
    "FORMAT",
    "Bundle",
    "build_bundle",
    "json_columns",
    "load_bundle",
    "portable",
    "run_tables",
]

FORMAT = "fleetforge-bundle"
VERSION = 1


@dataclass
class Bundle:
    """A run's bundle, loaded: what the checks of :mod:`.verify` read."""

    run_id: str
    events: list[EventRow]
    projections: dict[str, list[dict[str, Any]]]
    artifacts: dict[str, bytes | None]  # digest -> bytes (None: not in the bundle)
    trust: TrustStore
    revoked_token_ids: list[str] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    # the authorization half: each task's capability token (its latest lease's), the
    # capability root public key, and when each revoked id was revoked
    capabilities: dict[str, dict[str, Any]] = field(default_factory=dict)
    capability_key: str | None = None
    revocations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "run_id": self.run_id,
            "exported_at": iso(datetime.now(UTC)),
            "events": [e.to_json() for e in self.events],
            "receipts": self.receipts,
            "artifacts": [_artifact_json(d, b) for d, b in sorted(self.artifacts.items())],
            "projections": self.projections,
            "trust": self.trust.to_json(),
            "revoked_token_ids": self.revoked_token_ids,
            "capabilities": self.capabilities,
            "capability_key": self.capability_key,
            "revocations": self.revocations,
        }

    def write(self, path: Path) -> None:
        path.write_bytes(orjson.dumps(self.to_json()))


def _artifact_json(digest: str, content: bytes | None) -> dict[str, Any]:
    if content is None:
        return {"digest": digest, "missing": True}
    return {
        "digest": digest,
        "size_bytes": len(content),
        "content_base64": base64.b64encode(content).decode(),
    }


def portable(value: Any) -> Any:
    """A projection cell as a JSON value, the same whichever backend it was read from."""
    kind = type(value)
    if kind is str:
        if value[:1] in ("{", "["):
            try:
                return json_loads(value)
            except ValueError:
                return value
        return value
    if kind is int or value is None or kind is float:
        return value
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, bool):
        return int(value)
    return value


def run_tables(store: EventStore) -> dict[str, tuple[str, ...]]:
    """Projection tables with a ``run_id`` column, with their primary keys."""
    found: dict[str, tuple[str, ...]] = {}
    for projection in store.projections:
        for table, key in projection.tables.items():
            if "run_id" in store.table_columns(table):
                found[table] = key
    return found


def run_rows(store: EventStore, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """The run's rows of every run table, portable, in primary-key order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for table, key in run_tables(store).items():
        columns = store.table_columns(table)
        with store.backend.read() as tx:
            rows = tx.fetchall(
                f"SELECT * FROM {table} WHERE run_id = :run_id ORDER BY {', '.join(key)}",
                {"run_id": run_id},
            )
        decode = _json_columns().get(table, frozenset()) if store.backend.name == "sqlite" else ()
        out[table] = [
            {
                c: portable(json_loads(v) if c in decode and isinstance(v, str) else v)
                for c, v in zip(columns, row, strict=True)
            }
            for row in rows
        ]
    return out


def json_columns(table: str) -> frozenset[str]:
    """The JSON columns of ``table`` (see :func:`_json_columns`)."""
    return _json_columns().get(table, frozenset())


@cache
def _json_columns() -> dict[str, frozenset[str]]:
    """The JSON columns of each table (``jsonb`` in the PostgreSQL schema): SQLite keeps them as
    JSON text, which is decoded so a row reads the same from either store (an output of
    ``"done"``, ``5`` or ``null`` included)."""
    from fleetforge.fleet._sql import read_sql

    found: dict[str, set[str]] = {}
    table = None
    for line in read_sql("postgres/schema.sql").splitlines():
        start = re.match(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", line)
        if start:
            table = start.group(1)
        elif line.startswith(")"):
            table = None
        elif table and (column := re.match(r"\s+(\w+) jsonb\b", line)):
            found.setdefault(table, set()).add(column.group(1))
    return {t: frozenset(c) for t, c in found.items()}


def run_events(store: EventStore, run_id: str) -> list[EventRow]:
    events: list[EventRow] = []
    after = 0
    while True:
        rows = store.query_rows(run_id=run_id, after=after, limit=5000)
        events += rows
        if len(rows) < 5000:
            return events
        after = rows[-1].seq


def _digests(events: list[EventRow]) -> set[str]:
    found: set[str] = set()
    for event in events:
        if event.type == "receipt_recorded":
            found.update(a["digest"] for a in event.data["receipt"].get("artifacts") or ())
        elif event.type == "artifact_stored":
            digest = (event.data.get("artifact") or {}).get("digest")
            if digest:
                found.add(digest)
    return found


def build_bundle(
    store: EventStore,
    run_id: str,
    *,
    artifacts: ArtifactStore | None,
    trust: TrustStore,
    revoked_token_ids: list[str] | None = None,
) -> Bundle:
    """The bundle of ``run_id`` as the store holds it now."""
    events = run_events(store, run_id)
    if not events:
        raise NotFoundError(f"no run '{run_id}'", run_id=run_id)
    projections = run_rows(store, run_id)
    content: dict[str, bytes | None] = {}
    for digest in sorted(_digests(events)):
        try:  # the bytes as stored, unchecked: verification checks them
            content[digest] = None if artifacts is None else artifacts.path(digest).read_bytes()
        except (OSError, ContractError):
            content[digest] = None
    receipts = [
        {
            "receipt_id": r["receipt_id"],
            "task_id": r["task_id"],
            "position": r["position"],
            "attestation": r.get("attestation"),
        }
        for r in projections.get("receipts", [])
    ]
    capabilities, key, revocations = _capabilities(store, run_id)
    revoked = sorted({*(revoked_token_ids or []), *revocations})
    return Bundle(run_id, events, projections, content, trust, revoked, receipts,
                  capabilities, key, revocations)  # fmt: skip


def _capabilities(
    store: EventStore, run_id: str
) -> tuple[dict[str, dict[str, Any]], str | None, dict[str, str]]:
    """The run's tasks' capability tokens (never the root's private key), the root's public
    key, and every revocation (id -> when)."""
    from fleetforge.fleet._sql import named_queries
    from fleetforge.fleet.trust.capabilities import KEY_NAME

    q = named_queries("service.sql")
    with store.backend.read() as tx:
        rows = tx.fetchall(q["capabilities_of_run"], {"run_id": run_id})
        key = tx.fetchone(q["capability_public_key"], {"name": KEY_NAME})
        revoked = tx.fetchall(q["capabilities_revoked"])
    capabilities = {
        r[0]: {"token_id": r[1], "token": r[2], "fencing_token": int(r[3]), "expires_at": iso(r[4])}
        for r in rows
    }
    return capabilities, (key[0] if key else None), {r[0]: iso(r[1]) for r in revoked}


def load_bundle(path: Path) -> Bundle:
    """Read a bundle file (UsageError when it cannot be read, ContractError when malformed)."""
    try:
        value = json_loads(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:  # orjson's and json's decode errors
        raise ContractError(f"{path} is not JSON: {exc}") from None
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise ContractError(f"{path} is not a FleetForge run bundle (format {FORMAT!r})")
    try:
        events = [
            EventRow(
                int(e.get("seq") or 0),
                str(e["event_id"]),
                e.get("run_id"),
                str(e["type"]),
                str(e["at"]),
                dict(e["data"]),
            )
            for e in value["events"]
        ]
        artifacts: dict[str, bytes | None] = {}
        for a in value.get("artifacts", []):
            raw = a.get("content_base64")
            artifacts[str(a["digest"])] = None if raw is None else base64.b64decode(raw)
        return Bundle(
            run_id=str(value["run_id"]),
            events=events,
            projections={str(k): list(v) for k, v in value.get("projections", {}).items()},
            artifacts=artifacts,
            trust=TrustStore.from_json(value.get("trust", {"keys": []}), f"{path} (trust)"),
            revoked_token_ids=[str(t) for t in value.get("revoked_token_ids", [])],
            capabilities=dict(value.get("capabilities") or {}),
            capability_key=value.get("capability_key"),
            revocations=dict(value.get("revocations") or {}),
            receipts=list(value.get("receipts", [])),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ContractError(f"{path}: malformed bundle ({exc!r})") from None


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2)
