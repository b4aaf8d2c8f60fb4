"""What the two write-path floors (bench_pgfloor, bench_sqlfloor) share: the receipt's JSON
form they build receipts from, and the checks that what they wrote is what the product's
projections, chains and bundles need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleetforge.contracts import FleetReceipt
from fleetforge.contracts.protocol import TaskSuccess
from fleetforge.fleet.replay import chain_failures, verify
from fleetforge.fleet.store import EventStore


def receipt_template() -> dict[str, Any]:
    """A receipt's JSON form with the product's fields in its order (FleetReceipt's dump)."""
    receipt = FleetReceipt(
        receipt_id="rcp_x",
        run_id="run_x",
        step_id="s",
        task_id="run_x.s",
        attempt=1,
        worker_id="w",
        fencing_token=1,
        result=TaskSuccess(output=None),
    )
    return receipt.model_dump(mode="json")


def check_replay_and_chains(store: EventStore) -> None:
    """Raise unless the projections equal a replay of the events and every chain holds."""
    differences = verify(store)
    if differences:
        for d in differences[:5]:
            print("  replay differs:", d, flush=True)
        raise AssertionError(f"{len(differences)} projection rows differ from a replay")
    broken = chain_failures(store)
    if broken:
        raise AssertionError(f"receipt chains broken: {broken[:3]}")


def check_bundles(store: EventStore, run_ids: list[str], home: Path) -> None:
    """Raise unless each run's bundle passes every check of ``fleetforge verify``."""
    from fleetforge.fleet.trust.bundle import build_bundle
    from fleetforge.fleet.trust.keys import TrustStore, load_signing_key
    from fleetforge.fleet.trust.verify import CHECKS, verify_bundle

    entry = load_signing_key(home).entry()
    trusted = TrustStore({entry.key_id: entry})
    for run_id in run_ids:
        bundle = build_bundle(store, run_id, artifacts=None, trust=trusted)
        failures = verify_bundle(bundle, trusted, checks=list(CHECKS))
        if failures:
            raise AssertionError(f"verify {run_id}: {failures[:3]}")
