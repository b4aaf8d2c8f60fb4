"""Capability tokens (issue 21, authorization): the check a tool gate makes at every call, and
minting one token per lease.

``check_ms``: median of :meth:`fleetforge.capabilities.Capability.check` on a parsed token
(what the armory does at each call: the token is parsed once per task). ``check_cold_ms``: the
first check of a token (parsing and verifying its signature included). ``mint_ms``: one
:meth:`CapabilityMint.mint` (what a lease adds per task). Goal: a check <= 0.2 ms.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime, timedelta

from fleetforge.capabilities import Capability
from fleetforge.contracts import FleetTaskSpec
from fleetforge.fleet.store import open_store
from fleetforge.fleet.trust.capabilities import CapabilityMint

QUICK = os.environ.get("FLEETFORGE_BENCH_QUICK") == "1"
N = 500 if QUICK else 3000

GOALS: dict[str, tuple[str, float]] = {"check_ms": ("<=", 0.2)}


def _task() -> FleetTaskSpec:
    return FleetTaskSpec.model_validate(
        {
            "task_id": "run_1.a",
            "run_id": "run_1",
            "step_id": "a",
            "type": "agent",
            "agent": "a",
            "seed": 1,
            "worker": {"tools": ["workspace.*", "web.fetch"]},
            "security": {"allowed_tools": ["*"], "denied_tools": ["workspace.write"]},
        }
    )


def run() -> dict[str, float]:
    mint = CapabilityMint()
    with open_store("sqlite:///:memory:") as store, store.transaction() as unit:
        mint.load(unit.tx, datetime.now(UTC), after_commit=None)
    task = _task()
    expires = datetime.now(UTC) + timedelta(minutes=10)
    mints, colds, checks = [], [], []
    tokens = []
    for _ in range(max(N // 10, 50)):
        start = time.perf_counter()
        tokens.append(mint.mint(task, expires))
        mints.append((time.perf_counter() - start) * 1000)
    for token in tokens:
        cap = Capability(token.token, token.public_key, "run_1", "run_1.a")
        start = time.perf_counter()
        assert cap.check("workspace.read").allowed
        colds.append((time.perf_counter() - start) * 1000)
    cap = Capability(tokens[0].token, tokens[0].public_key, "run_1", "run_1.a")
    cap.check("workspace.read")
    for i in range(N):
        tool = "workspace.read" if i % 2 else "workspace.write"
        start = time.perf_counter()
        cap.check(tool)
        checks.append((time.perf_counter() - start) * 1000)
    return {
        "check_ms": round(statistics.median(checks), 4),
        "check_cold_ms": round(statistics.median(colds), 4),
        "mint_ms": round(statistics.median(mints), 4),
    }
