"""Receipt attestations: an in-toto Statement v1 in a DSSE envelope, signed by the fleet key.

A recorded receipt's statement names as subjects the digest of its output (``output``) and of
each artifact it reports (``artifact:<name>``); its predicate (type :data:`RECEIPT_PREDICATE`)
says what the fleet decided: run, step, task, attempt, worker, fencing token, the receipt's id,
chain hash and the previous receipt's hash, the scorer's verdict, usage, and (filled by the
authorization work) the capability token id, policy decisions and the worker's own signature.

A run's final event carries a :data:`CHAIN_HEAD_PREDICATE` statement over the head of its
receipt chain and the number of receipts, so a chain cut short is detectable.

The envelope is securesystemslib's :class:`~securesystemslib.dsse.Envelope` (its PAE, its
signature format; the PAE is never hand-rolled), signed with the key itself rather than through
a securesystemslib ``Signer`` (which re-derives the key object per signature); a test checks the
result equals what ``Envelope.sign`` gives. The statement is serialised once with orjson, signed
once.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from fleetforge.fleet.store._base import hashed_json
from fleetforge.fleet.trust.keys import SigningKey

__all__ = [
    "CHAIN_HEAD_PREDICATE",
    "PAYLOAD_TYPE",
    "RECEIPT_PREDICATE",
    "STATEMENT_TYPE",
    "Attestor",
    "attestation_id",
    "output_digest",
    "receipt_hash",
    "statement_of",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
RECEIPT_PREDICATE = "https://fleetforge.dev/attestations/receipt/v1"
CHAIN_HEAD_PREDICATE = "https://fleetforge.dev/attestations/chain-head/v1"
# the verdict and chain fields the fleet adds, and the attestation id its answer carries
_RECEIPT_UNHASHED = ("status", "score", "hash", "posted_at", "attestation_id")


def output_digest(result: Mapping[str, Any]) -> str:
    """Hex SHA-256 of what a receipt reports: its output (success) or its whole result."""
    value = result.get("output") if result.get("outcome") == "success" else result
    return hashlib.sha256(hashed_json(value).encode()).hexdigest()


def receipt_hash(receipt: Mapping[str, Any]) -> str:
    """The chain hash of a receipt in its JSON form (as the fleet computes it on posting)."""
    body = {k: v for k, v in receipt.items() if k not in _RECEIPT_UNHASHED}
    return "sha256:" + hashlib.sha256(hashed_json(body).encode()).hexdigest()


def attestation_id(envelope: Mapping[str, Any]) -> str:
    """``sha256:`` + the digest of the signed statement (the envelope's payload bytes)."""
    payload = base64.b64decode(envelope["payload"])
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def statement_of(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The statement inside a DSSE envelope (JSON form), not yet verified."""
    value = orjson.loads(base64.b64decode(envelope["payload"]))
    if not isinstance(value, dict):
        raise ValueError("the payload is not a JSON object")
    return value


def _hex(prefixed: str) -> str:
    return prefixed.split(":", 1)[1] if ":" in prefixed else prefixed


class Attestor:
    """Signs statements with one :class:`SigningKey` (built once per service)."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key

    @property
    def key_id(self) -> str:
        return self.key.key_id

    def sign(self, statement: Mapping[str, Any]) -> dict[str, Any]:
        """``statement`` in a DSSE envelope signed by the key, in its JSON form (what
        ``Envelope(payload, PAYLOAD_TYPE, {}).sign(signer).to_dict()`` gives)."""
        from securesystemslib.dsse import Envelope

        payload = orjson.dumps(statement)
        signature = self.key.private_key.sign(Envelope(payload, PAYLOAD_TYPE, {}).pae())
        return {
            "payload": base64.standard_b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [
                {"keyid": self.key.key_id, "sig": base64.standard_b64encode(signature).decode()}
            ],
        }

    def receipt(
        self,
        receipt: Mapping[str, Any],
        *,
        capability_token_id: str | None = None,
        policy_decisions: Sequence[Mapping[str, Any]] = (),
        worker_signature: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The signed attestation of a judged receipt (its JSON form, chained and scored)."""
        subjects = [{"name": "output", "digest": {"sha256": output_digest(receipt["result"])}}]
        for artifact in receipt.get("artifacts") or ():
            name = artifact.get("name") or artifact["digest"]
            subjects.append(
                {"name": f"artifact:{name}", "digest": {"sha256": _hex(artifact["digest"])}}
            )
        predicate = {
            "run_id": receipt["run_id"],
            "step_id": receipt["step_id"],
            "task_id": receipt["task_id"],
            "attempt": receipt["attempt"],
            "worker_id": receipt["worker_id"],
            "fencing_token": receipt["fencing_token"],
            "receipt_id": receipt["receipt_id"],
            "receipt_hash": receipt["hash"],
            "prev_receipt_hash": receipt.get("prev_hash"),
            "posted_at": receipt.get("posted_at"),
            "status": receipt.get("status"),
            "score": receipt.get("score"),
            "usage": receipt.get("usage"),
            "capability_token_id": capability_token_id,
            "policy_decisions": list(policy_decisions),
            "worker_signature": worker_signature,
        }
        return self.sign(
            {
                "_type": STATEMENT_TYPE,
                "subject": subjects,
                "predicateType": RECEIPT_PREDICATE,
                "predicate": predicate,
            }
        )

    def chain_head(
        self, run_id: str, head: str | None, receipts: int, final: str, at: str
    ) -> dict[str, Any]:
        """The signed head of a run's receipt chain, for its final event."""
        subject = {"name": f"receipt-chain:{run_id}", "digest": {"sha256": _hex(head or "")}}
        predicate = {
            "run_id": run_id,
            "head": head,
            "receipts": receipts,
            "final_event": final,
            "at": at,
        }
        return self.sign(
            {
                "_type": STATEMENT_TYPE,
                "subject": [subject] if head else [],
                "predicateType": CHAIN_HEAD_PREDICATE,
                "predicate": predicate,
            }
        )
