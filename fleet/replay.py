"""Replay: projections rebuilt from events alone, and a check that they equal the live ones.

``verify`` rebuilds every projection into a scratch database of the same kind (an in-memory
SQLite, or a temporary PostgreSQL schema), then compares every row of every projection table.
An empty result means the projections are exactly what the events say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetforge.fleet.store import EventStore
from fleetforge.fleet.store._base import EventRow, chunks

__all__ = ["Difference", "chain_failures", "replay_into", "verify"]


@dataclass(frozen=True)
class Difference:
    """One projection row that replay and the live store disagree on."""

    table: str
    key: tuple[Any, ...]
    live: dict[str, Any] | None
    replayed: dict[str, Any] | None

    def __str__(self) -> str:
        if self.live is None:
            return f"{self.table} {self.key}: missing from the store (replay has it)"
        if self.replayed is None:
            return f"{self.table} {self.key}: in the store but not produced by replay"
        changed = sorted(k for k in self.live if self.live[k] != self.replayed.get(k))
        parts = [f"{k}: store={self.live[k]!r} replay={self.replayed.get(k)!r}" for k in changed]
        return f"{self.table} {self.key}: " + "; ".join(parts)


def replay_into(source: EventStore, target: EventStore, *, batch: int = 5000) -> int:
    """Apply every event of ``source`` to ``target``'s projections only; return the count."""
    done = 0
    for rows in chunks(source.iter_rows(batch=batch), batch):
        with target.backend.write() as tx:
            for row in rows:
                target.project(tx, row)
        done += len(rows)
    return done


def verify(store: EventStore) -> list[Difference]:
    """Rebuild every projection in a scratch database and compare it with the store's."""
    with store.backend.scratch() as backend:
        scratch = EventStore(backend, store.projections)
        replay_into(store, scratch)
        differences: list[Difference] = []
        for projection in store.projections:
            for table, key_columns in projection.tables.items():
                differences += _compare(store, scratch, table, key_columns)
        return differences


def _compare(
    live: EventStore, replayed: EventStore, table: str, key_columns: tuple[str, ...]
) -> list[Difference]:
    columns = live.table_columns(table)
    key_at = [columns.index(c) for c in key_columns]

    def keyed(rows: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], dict[str, Any]]:
        return {tuple(row[i] for i in key_at): dict(zip(columns, row, strict=True)) for row in rows}

    a, b = keyed(live.table_rows(table)), keyed(replayed.table_rows(table))
    return [
        Difference(table, key, a.get(key), b.get(key))
        for key in sorted(a.keys() | b.keys(), key=repr)
        if a.get(key) != b.get(key)
    ]


def chain_failures(store: EventStore) -> list[str]:
    """Where each run's receipt chain breaks: a receipt whose hash is not over its content, or
    whose ``prev_hash`` is not the previous receipt's (deleted, inserted, reordered, altered).
    Signatures are checked by ``fleetforge verify`` (it needs the trust store)."""
    from fleetforge.fleet.trust.bundle import Bundle
    from fleetforge.fleet.trust.keys import TrustStore
    from fleetforge.fleet.trust.verify import check_chain

    by_run: dict[str, list[EventRow]] = {}
    after = 0
    while True:
        rows = store.query_rows(types=["receipt_recorded"], after=after, limit=5000)
        for row in rows:
            by_run.setdefault(row.run_id or "", []).append(row)
        if len(rows) < 5000:
            break
        after = rows[-1].seq
    failures: list[str] = []
    for run_id, events in by_run.items():
        bundle = Bundle(run_id, events, {}, {}, TrustStore())
        failures += [f"run {run_id} {f}" for f in check_chain(bundle, bundle.trust)]
    return failures
