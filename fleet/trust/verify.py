"""Offline verification of a run: a list of checks over a loaded :class:`~.bundle.Bundle`.

Each check is a function ``(bundle, trust) -> list[Failure]``; :data:`CHECKS` runs in order and
another check (the authorization work's "the capability token covered what was used") is one
more entry. A :class:`Failure` says where (``seq N``, ``receipt ID``, ``artifact DIGEST``,
``TABLE KEY``, ``chain_head``) and what.

- :func:`check_chain`: each receipt's hash is over its content, and its ``prev_hash`` is the
  previous receipt's hash (a receipt deleted, inserted, reordered or altered breaks it);
- :func:`check_signatures`: each receipt has a DSSE envelope signed by a trusted key that was
  valid when the receipt was posted, and its statement matches the receipt (output and artifact
  digests, chain hashes, ids, fencing token, verdict);
- :func:`check_chain_head`: the run's final event signs the chain's head and length (a tail cut
  off is missing from the chain it names);
- :func:`check_artifacts`: every artifact's bytes have the digest they are named by;
- :func:`check_projections`: the projection rows equal a replay of the events.
"""

from __future__ import annotations

import base64
import binascii
import gc
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from securesystemslib.dsse import Envelope

from fleetforge.fleet.store import EventRow
from fleetforge.fleet.store._base import json_loads
from fleetforge.fleet.trust.attest import (
    CHAIN_HEAD_PREDICATE,
    RECEIPT_PREDICATE,
    STATEMENT_TYPE,
    output_digest,
    receipt_hash,
)
from fleetforge.fleet.trust.bundle import Bundle
from fleetforge.fleet.trust.keys import TrustStore

__all__ = ["CHECKS", "FINAL_EVENTS", "Check", "Failure", "check_capabilities", "verify_bundle"]

FINAL_EVENTS = ("run_completed", "run_failed", "run_cancelled")


@dataclass(frozen=True)
class Failure:
    """One thing that does not hold, and where."""

    check: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "where": self.where, "message": self.message}


Check = Callable[[Bundle, TrustStore], list[Failure]]


_Receipts = list[tuple[int, dict[str, Any], Any]]


def _receipts(bundle: Bundle) -> _Receipts:
    """(seq, receipt, attestation) of each receipt_recorded event, in order (listed once per
    verify_bundle call)."""
    memo = _LISTED.get()
    if memo is not None and memo[0] is bundle.events:
        return memo[1]
    found = [
        (e.seq, e.data["receipt"], e.data.get("attestation"))
        for e in bundle.events
        if e.type == "receipt_recorded"
    ]
    if memo is not None or _DECODED.get() is not None:
        _LISTED.set((bundle.events, found))
    return found


def check_chain(bundle: Bundle, trust: TrustStore) -> list[Failure]:
    failures: list[Failure] = []
    prev: str | None = None
    last_seq = 0
    for event in bundle.events:
        if event.seq <= last_seq:
            failures.append(
                Failure("chain", f"seq {event.seq}", f"out of order (after seq {last_seq})")
            )
        last_seq = max(last_seq, event.seq)
    for seq, receipt, _ in _receipts(bundle):
        where = f"seq {seq} receipt {receipt.get('receipt_id')}"
        stated = receipt.get("hash")
        if receipt_hash(receipt) != stated:
            failures.append(Failure("chain", where, "content does not match its hash (altered)"))
        if receipt.get("prev_hash") != prev:
            failures.append(
                Failure(
                    "chain",
                    where,
                    f"prev_hash is {receipt.get('prev_hash')} but the previous receipt's hash is "
                    f"{prev} (a receipt was deleted, inserted or reordered)",
                )
            )
        prev = stated
    return failures


# what one verify_bundle call has decoded already: id(envelope) -> (envelope, payload bytes,
# statement or None). The checks read the same envelopes (signatures, chain head, capabilities);
# each is decoded once. Keyed by identity and holding the envelope, so an id is never reused.
_DECODED: ContextVar[dict[int, tuple[Any, bytes, dict[str, Any] | None]] | None] = ContextVar(
    "fleetforge_verify_decoded", default=None
)


# the receipts of the bundle being verified (its events list, and them)
_LISTED: ContextVar[tuple[list[EventRow], _Receipts] | None] = ContextVar(
    "fleetforge_verify_receipts", default=None
)


@contextmanager
def _decoding_once() -> Iterator[None]:
    token = _DECODED.set({})
    listed = _LISTED.set(None)
    try:
        yield
    finally:
        _LISTED.reset(listed)
        _DECODED.reset(token)


def _decoded(envelope: Any) -> tuple[bytes, dict[str, Any] | None]:
    """An envelope's payload bytes and the statement they hold (None: not a JSON object).
    Raises KeyError / TypeError / ValueError / binascii.Error when the envelope is malformed."""
    memo = _DECODED.get()
    if memo is not None:
        hit = memo.get(id(envelope))
        if hit is not None and hit[0] is envelope:
            return hit[1], hit[2]
    payload = _b64(envelope["payload"])
    try:  # orjson: the fleet wrote it with orjson, and the signature covers these very bytes
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        value = None
    statement = value if isinstance(value, dict) else None
    if memo is not None:
        memo[id(envelope)] = (envelope, payload, statement)
    return payload, statement


def _b64(text: str) -> bytes:
    """Base64 as DSSE envelopes carry it (standard, else URL-safe; strict), as
    securesystemslib's ``Envelope.from_dict`` reads it."""
    if not isinstance(text, str):
        raise TypeError("the payload is not a string")
    data = text.encode()
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        return base64.b64decode(data, altchars=b"-_", validate=True)


class _Keys:
    """Public keys of the trust store, parsed once per verification."""

    def __init__(self, trust: TrustStore) -> None:
        self.trust = trust
        self._public: dict[str, Ed25519PublicKey] = {}

    def verify(self, envelope: Any, at: str | None, where: str, check: str) -> list[Failure]:
        """Failures of a DSSE envelope's signatures (none valid by a trusted key in its window)."""
        try:
            payload, _ = _decoded(envelope)
            # securesystemslib's envelope for the pre-authentication encoding; its signatures
            # are read here as its from_dict reads them (base64, one per key id), without
            # from_dict's rewriting of the dicts it is given
            pae = Envelope(payload, envelope["payloadType"], {}).pae()
            signatures: dict[str, bytes] = {}
            for entry in envelope["signatures"]:
                key_id = entry["keyid"]
                if key_id in signatures:
                    raise ValueError(f"Multiple signatures found for keyid {key_id}")
                signatures[key_id] = _b64(entry["sig"])
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            return [Failure(check, where, f"the DSSE envelope is malformed ({exc})")]
        if not signatures:
            return [Failure(check, where, "the envelope has no signature")]
        problems: list[str] = []
        for key_id, signature in signatures.items():
            entry = self.trust.keys.get(key_id)
            if entry is None:
                problems.append(f"signed by {key_id}, which the trust store does not trust")
                continue
            public = self._public.get(key_id)
            if public is None:
                public = self._public[key_id] = entry.public()
            try:
                public.verify(signature, pae)
            except (InvalidSignature, ValueError):
                problems.append(f"the signature by {key_id} does not verify")
                continue
            when = _time(at)
            if when is None or not entry.valid_at(when):
                problems.append(
                    f"signed by {key_id} at {at}, outside its validity window "
                    f"({_window(entry.not_before)} .. {_window(entry.not_after)}): expired key"
                )
                continue
            return []
        return [Failure(check, where, p) for p in problems]


def _time(value: str | None) -> datetime | None:
    try:
        return None if value is None else datetime.fromisoformat(value)
    except ValueError:
        return None


def _window(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat()


def _statement(envelope: Any) -> dict[str, Any] | None:
    try:
        return _decoded(envelope)[1]
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error):
        return None


def _predicate(statement: dict[str, Any] | None) -> dict[str, Any] | None:
    """A statement's predicate when it is an object (absent: empty; else None, a failure)."""
    predicate = (statement or {}).get("predicate") or {}
    return predicate if isinstance(predicate, dict) else None


_PREDICATE_FIELDS = (
    ("run_id", "run_id"),
    ("step_id", "step_id"),
    ("task_id", "task_id"),
    ("attempt", "attempt"),
    ("worker_id", "worker_id"),
    ("fencing_token", "fencing_token"),
    ("receipt_id", "receipt_id"),
    ("receipt_hash", "hash"),
    ("prev_receipt_hash", "prev_hash"),
    ("posted_at", "posted_at"),
    ("status", "status"),
    ("score", "score"),
    ("usage", "usage"),
)


def check_signatures(bundle: Bundle, trust: TrustStore) -> list[Failure]:
    failures: list[Failure] = []
    keys = _Keys(trust)
    for seq, receipt, envelope in _receipts(bundle):
        where = f"seq {seq} receipt {receipt.get('receipt_id')}"
        if not envelope:
            failures.append(Failure("signature", where, "the receipt has no attestation"))
            continue
        statement = _statement(envelope)
        if statement is None:
            failures.append(Failure("signature", where, "the attestation's payload is not JSON"))
            continue
        predicate = _predicate(statement)
        if predicate is None:
            failures.append(
                Failure("signature", where, "the attestation's predicate is not an object")
            )
            continue
        failures += keys.verify(envelope, predicate.get("posted_at"), where, "signature")
        if statement.get("_type") != STATEMENT_TYPE:
            failures.append(Failure("signature", where, "not an in-toto Statement v1"))
        if statement.get("predicateType") != RECEIPT_PREDICATE:
            failures.append(Failure("signature", where, "not a FleetForge receipt attestation"))
        for name, key in _PREDICATE_FIELDS:
            if predicate.get(name) != receipt.get(key):
                failures.append(
                    Failure(
                        "signature", f"{where} field /{key}", "differs from what the fleet signed"
                    )
                )
        subjects = {
            s.get("name"): (s.get("digest") or {}).get("sha256")
            for s in statement.get("subject") or ()
        }
        if subjects.pop("output", None) != output_digest(receipt.get("result") or {}):
            failures.append(
                Failure(
                    "signature",
                    f"{where} field /result",
                    "output differs from the signed output digest",
                )
            )
        for artifact in receipt.get("artifacts") or ():
            name = f"artifact:{artifact.get('name') or artifact.get('digest')}"
            signed = subjects.pop(name, None)
            if signed is None or "sha256:" + signed != artifact.get("digest"):
                failures.append(
                    Failure(
                        "signature",
                        f"{where} artifact {artifact.get('digest')}",
                        "not the artifact the fleet signed",
                    )
                )
        for name in subjects:
            failures.append(Failure("signature", where, f"signed subject {name} is missing"))
    return failures


def check_chain_head(bundle: Bundle, trust: TrustStore) -> list[Failure]:
    final = next((e for e in reversed(bundle.events) if e.type in FINAL_EVENTS), None)
    if final is None:
        return [
            Failure(
                "chain_head",
                "chain_head",
                "the run has no final event: its receipt chain is not sealed, so a "
                "truncated tail cannot be ruled out",
            )
        ]
    where = f"seq {final.seq} {final.type} chain_head"
    head = final.data.get("chain_head")
    if not head:
        return [Failure("chain_head", where, "the final event carries no signed chain head")]
    envelope = head.get("attestation") or {}
    statement = _statement(envelope)
    if statement is None or statement.get("predicateType") != CHAIN_HEAD_PREDICATE:
        return [Failure("chain_head", where, "not a FleetForge chain-head attestation")]
    predicate = _predicate(statement)
    if predicate is None:
        return [Failure("chain_head", where, "the chain head's predicate is not an object")]
    failures = _Keys(trust).verify(envelope, predicate.get("at"), where, "chain_head")
    before = [r for s, r, _ in _receipts(bundle) if s < final.seq]
    last = before[-1].get("hash") if before else None
    if predicate.get("run_id") != bundle.run_id:
        failures.append(Failure("chain_head", where, "signed for another run"))
    if predicate.get("receipts") != len(before) or predicate.get("head") != last:
        failures.append(
            Failure(
                "chain_head",
                where,
                f"signed a chain of {predicate.get('receipts')} receipts ending "
                f"{predicate.get('head')}"
                f"; the events hold {len(before)} ending {last} (receipts deleted or the tail "
                "truncated)",
            )
        )
    if head.get("receipts") != predicate.get("receipts") or head.get("head") != predicate.get(
        "head"
    ):
        failures.append(Failure("chain_head", where, "differs from what the fleet signed"))
    return failures


def check_artifacts(bundle: Bundle, trust: TrustStore) -> list[Failure]:
    failures: list[Failure] = []
    for digest, content in sorted(bundle.artifacts.items()):
        where = f"artifact {digest}"
        if content is None:
            failures.append(Failure("artifacts", where, "its bytes are missing"))
        elif "sha256:" + hashlib.sha256(content).hexdigest() != digest:
            failures.append(Failure("artifacts", where, "its bytes do not match the digest"))
    return failures


def check_projections(bundle: Bundle, trust: TrustStore) -> list[Failure]:
    """Replay the bundle's events into a scratch store (:mod:`.replay`: the projections' own
    code, with the schema's triggers); its rows must equal the bundle's.

    Each table is first compared whole, row by row in key order, against the replayed rows as
    read (only JSON columns decoded); a table that differs anywhere is compared again column
    by column, for the failures' locations."""
    from fleetforge.fleet.trust.replay import Replay, ReplayError

    with Replay() as replay:
        try:
            replay.apply(bundle.events)
        except ReplayError as exc:
            event = exc.event
            return [Failure("projections", f"seq {event.seq} {event.type}",
                            f"replay cannot apply it ({exc.reason})")]  # fmt: skip
        replayed = {t: (k, *replay.rows(bundle.run_id, t)) for t, k in replay.tables.items()}
    failures: list[Failure] = []
    for table in sorted(replayed.keys() | bundle.projections.keys()):
        key_columns, columns, rows = replayed.get(table, (("run_id",), [], []))
        claimed = bundle.projections.get(table, [])
        if _same_rows(columns, rows, claimed, key_columns, table):
            continue
        failures += _row_failures(
            table, key_columns, claimed, [_portable(columns, table, r) for r in rows]
        )
    return failures


def _portable(columns: list[str], table: str, row: tuple[Any, ...]) -> dict[str, Any]:
    """A replayed row as :func:`~.bundle.run_rows` exports it from SQLite."""
    from fleetforge.fleet.trust.bundle import json_columns, portable

    decode = json_columns(table)
    return {
        c: portable(json_loads(v) if c in decode and isinstance(v, str) else v)
        for c, v in zip(columns, row, strict=True)
    }


def _same_rows(
    columns: list[str],
    rows: list[tuple[Any, ...]],
    claimed: list[dict[str, Any]],
    key_columns: tuple[str, ...],
    table: str,
) -> bool:
    """Whether the bundle's rows of a table equal the replayed ones (a fast, exact test: True
    only when every cell is equal; False sends the table to the column-by-column comparison).

    Cells are compared as read, JSON columns decoded; a text cell that merely looks like JSON
    (which the export decodes too) compares unequal here and is settled by the slow path."""
    from fleetforge.fleet.trust.bundle import json_columns

    if len(rows) != len(claimed):
        return False
    names = set(columns)
    decode = [i for i, c in enumerate(columns) if c in json_columns(table)]
    loads, dumps = json_loads, orjson.dumps
    for attempt in (claimed, None):
        if attempt is None:  # another store's key order (PostgreSQL's collation): ours
            try:
                attempt = sorted(claimed, key=lambda r: _key(r, key_columns))
            except TypeError:
                return False
        for raw, have in zip(rows, attempt, strict=True):
            if have.keys() != names:
                return False
            cells = list(raw)
            for i in decode:
                value = cells[i]
                if type(value) is str:
                    claim = have[columns[i]]
                    # the claim written as the column holds it (canonical JSON, keys sorted)
                    # is the cheap test; any other spelling is decoded and compared as values
                    try:
                        same = dumps(claim) == value.encode()
                    except TypeError:  # not orjson's (an integer past 64 bits)
                        same = False
                    cells[i] = claim if same else loads(value)
            if cells != list(map(have.__getitem__, columns)):
                break
        else:
            return True
    return False


def _row_failures(
    table: str,
    key_columns: tuple[str, ...],
    claimed: list[dict[str, Any]],
    replayed: list[dict[str, Any]],
) -> list[Failure]:
    failures: list[Failure] = []
    have = {_key(r, key_columns): r for r in claimed}
    want = {_key(r, key_columns): r for r in replayed}
    for key in sorted(have.keys() | want.keys(), key=repr):
        where = f"{table} {key}"
        a, b = have.get(key), want.get(key)
        if a == b:
            continue
        if a is None:
            failures.append(Failure("projections", where, "missing (replay has it)"))
        elif b is None:
            failures.append(Failure("projections", where, "not produced by replay"))
        else:
            for column in sorted(set(a) | set(b)):
                if a.get(column) != b.get(column):  # both portable already
                    failures.append(
                        Failure(
                            "projections",
                            f"{where} field /{column}",
                            "differs from a replay of the events",
                        )
                    )
    return failures


def _key(row: dict[str, Any], columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(row.get(c) for c in columns)


def check_capabilities(bundle: Bundle, trust: TrustStore) -> list[Failure]:
    """Each tool a task used was covered by the capability token its receipt's statement names:
    the token the bundle carries for that task has that id, names that run and task, allowed
    the tool, had not expired and was not revoked when the tool was called."""
    from fleetforge.fleet.trust.capabilities import check_tool_use

    failures: list[Failure] = []
    used: dict[str, list[EventRow]] = {}  # task -> its tool calls since its last receipt
    for event in bundle.events:
        task_id = event.data.get("task_id") if event.type == "tool_called" else None
        if task_id:
            used.setdefault(str(task_id), []).append(event)
        if event.type != "receipt_recorded":
            continue
        receipt = event.data["receipt"]
        calls = used.pop(str(receipt["task_id"]), [])
        attestation = event.data.get("attestation")
        named = (_predicate(_statement(attestation)) or {}) if attestation else {}
        cap_id = named.get("capability_token_id")
        if cap_id is None or not calls:
            continue  # trust off, or no tool used: nothing to cover
        where = f"seq {event.seq} receipt {receipt['receipt_id']}"
        token = bundle.capabilities.get(str(receipt["task_id"]))
        if token is None or bundle.capability_key is None:
            missing = f"capability token {cap_id} is not in the bundle: its tools go unchecked"
            failures.append(Failure("capabilities", where, missing))
            continue
        if token["token_id"] != cap_id:
            if token.get("fencing_token") == receipt.get("fencing_token"):
                other = f"the statement names {cap_id}, the task's token is {token['token_id']}"
                failures.append(Failure("capabilities", where, other))
            continue  # a later attempt's token replaced it: this attempt's is gone
        for call in calls:
            at = datetime.fromisoformat(call.at.replace("Z", "+00:00"))
            revoked = [c for c, when in bundle.revocations.items() if when <= call.at]
            revoked += [c for c in bundle.revoked_token_ids if c not in bundle.revocations]
            [decision] = check_tool_use(
                token["token"], bundle.capability_key, run_id=bundle.run_id,
                task_id=str(receipt["task_id"]), tools=[str(call.data["tool"])], at=at,
                revoked=revoked,
            )  # fmt: skip
            if not decision.allowed:
                spot = f"seq {call.seq} tool_called {call.data['tool']}"
                why = f"capability token {cap_id} did not cover it: {decision.reason}"
                failures.append(Failure("capabilities", spot, why))
    return failures


CHECKS: list[Check] = [
    check_chain,
    check_signatures,
    check_chain_head,
    check_artifacts,
    check_projections,
    check_capabilities,
]


def verify_bundle(
    bundle: Bundle, trust: TrustStore, *, checks: list[Check] | None = None
) -> list[Failure]:
    """Every failure of every check (empty: the run verifies)."""
    failures: list[Failure] = []
    # a bundle is millions of small objects that all stay alive: the cyclic collector would
    # rescan them again and again while the checks allocate (a third of the time), for nothing
    collecting = gc.isenabled()
    gc.disable()
    try:
        with _decoding_once():  # an envelope several checks read is decoded once
            for check in CHECKS if checks is None else checks:
                failures += check(bundle, trust)
    finally:
        if collecting:
            gc.enable()
    return failures
