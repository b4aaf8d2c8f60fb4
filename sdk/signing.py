"""Worker signatures of receipts (Ed25519, via ``cryptography``).

A run whose security policy has ``require_signed_receipts`` accepts a receipt only with a
``worker_signature`` by the key the worker registered (its ``ed25519`` auth, which over HTTP is
the key an admin registered with its token). What is signed is the receipt's canonical digest,
:func:`receipt_digest`: ``sha256:`` + hex of the canonical JSON (sorted keys, no spaces) of the
fields the worker itself states — run, step, task, attempt, worker, fencing token, result, usage
and artifacts — so the fleet's own fields (id, status, score, hashes) never change it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import TYPE_CHECKING

from fleetforge.contracts import FleetReceipt, FleetReceiptSignature

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "SIGNED_FIELDS",
    "public_key_of",
    "receipt_digest",
    "sign_receipt",
    "signature_problem",
]

SIGNED_FIELDS = frozenset(
    {"run_id", "step_id", "task_id", "attempt", "worker_id", "fencing_token", "result", "usage",
     "artifacts"}
)  # fmt: skip


def receipt_digest(receipt: FleetReceipt) -> str:
    """The canonical digest a worker signs (see the module doc)."""
    body = receipt.model_dump(mode="json", include=set(SIGNED_FIELDS))
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def public_key_of(private_key: Ed25519PrivateKey) -> str:
    """Base64 of the raw 32-byte public key (what ``tokens create --public-key`` takes)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign_receipt(
    receipt: FleetReceipt, private_key: Ed25519PrivateKey, *, key_id: str = "worker"
) -> FleetReceipt:
    """``receipt`` with its ``worker_signature``."""
    digest = receipt_digest(receipt)
    signature = base64.b64encode(private_key.sign(digest.encode())).decode()
    signed = FleetReceiptSignature(key_id=key_id, digest=digest, signature=signature)
    return receipt.model_copy(update={"worker_signature": signed})


def signature_problem(receipt: FleetReceipt, public_key: str | None) -> str | None:
    """Why ``receipt``'s worker signature does not hold for ``public_key`` (base64 raw
    Ed25519), or None when it does."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    signed = receipt.worker_signature
    if signed is None:
        return "the run requires signed receipts and this receipt carries no worker_signature"
    if public_key is None:
        return f"worker '{receipt.worker_id}' registered no ed25519 key to check the signature"
    digest = receipt_digest(receipt)
    if signed.digest != digest:
        return "worker_signature.digest is not the receipt's canonical digest"
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        key.verify(base64.b64decode(signed.signature), digest.encode())
    except (InvalidSignature, ValueError, binascii.Error):
        return "worker_signature does not verify with the worker's registered key"
    return None
