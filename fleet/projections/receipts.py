"""Receipts: one row per receipt, in posting order per run, with the hash chain and verdict."""

from __future__ import annotations

from fleetforge.fleet._sql import named_queries
from fleetforge.fleet.store._base import EventRow, Tx, canonical_json

__all__ = ["ReceiptsProjection"]

Q = named_queries("projections.sql")


class ReceiptsProjection:
    """Rows of ``receipts``."""

    name = "receipts"
    tables = {"receipts": ("run_id", "task_id", "receipt_id")}
    handles = frozenset(
        {"receipt_recorded", "receipt_posted", "receipt_accepted", "receipt_rejected"}
    )

    def apply(self, tx: Tx, event: EventRow) -> None:
        if event.type in ("receipt_recorded", "receipt_posted"):
            # receipt_recorded carries the verdict; receipt_posted (logs before 0.2) is pending
            # until its receipt_accepted / receipt_rejected
            receipt = event.data["receipt"]
            recorded = event.type == "receipt_recorded"
            status = receipt["status"] if recorded else "pending"
            score = receipt.get("score") if recorded else None
            if recorded:  # the column keeps the receipt as posted; the verdict has its own
                receipt = receipt | {"status": "pending", "score": None}
            tx.execute(
                Q["receipt_insert"],
                {
                    "run_id": event.run_id,
                    "receipt_id": receipt["receipt_id"],
                    "task_id": receipt["task_id"],
                    "step_id": receipt["step_id"],
                    "attempt": receipt["attempt"],
                    "worker_id": receipt["worker_id"],
                    "receipt": canonical_json(receipt),
                    "hash": receipt["hash"],
                    "prev_hash": receipt.get("prev_hash"),
                    "at": event.at,
                    "status": status,
                    "score": None if score is None else canonical_json(score),
                    "attestation": _json_or_none(event.data.get("attestation")),
                },
            )
        else:
            tx.execute(
                Q["receipt_verdict"],
                {
                    "run_id": event.run_id,
                    "receipt_id": event.data["receipt_id"],
                    "task_id": event.data["task_id"],
                    "status": "accepted" if event.type == "receipt_accepted" else "rejected",
                    "score": canonical_json(event.data["score"]),
                },
            )


def _json_or_none(value: object) -> str | None:
    return None if value is None else canonical_json(value)
