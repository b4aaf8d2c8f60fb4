"""Environment requirements matched at lease (issue 23): a worker reports its machine when it
registers (names, never values); a task whose workspace needs more disk or an environment
variable it lacks is never leased to it, and Run.blocked says what is missing; both stores."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from fleetforge.contracts import FleetReceipt
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.replay import verify
from fleetforge.fleet.requirements import meets
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore
from fleetforge.worker import detect_environment

TASKS = int(os.environ.get("FLEETFORGE_REQUIREMENTS_TASKS", "120"))  # 500 in make stress

# 8 workers: disk in MiB and the variables each has (one reports nothing at all)
WORKERS: dict[str, dict[str, Any] | None] = {
    "w0": None,
    "w1": {"free_disk_mb": 100, "env_vars": []},
    "w2": {"free_disk_mb": 10_000, "env_vars": ["OPENAI_API_KEY"]},
    "w3": {"free_disk_mb": 100_000, "env_vars": ["OPENAI_API_KEY", "GITHUB_TOKEN"]},
    "w4": {"free_disk_mb": 500, "env_vars": ["GITHUB_TOKEN"]},
    "w5": {"free_disk_mb": 50_000, "env_vars": []},
    "w6": {"free_disk_mb": 1_000, "env_vars": ["OPENAI_API_KEY"]},
    "w7": {"free_disk_mb": 20_000, "env_vars": ["GITHUB_TOKEN", "PATH"]},
}
NEEDS = [
    None,
    {"min_disk_mb": 1_000},
    {"min_disk_mb": 20_000},
    {"environment": {"required": ["OPENAI_API_KEY"]}},
    {"environment": {"required": ["GITHUB_TOKEN"]}, "min_disk_mb": 10_000},
    {"environment": {"required": ["OPENAI_API_KEY", "GITHUB_TOKEN"]}},
]


@pytest.fixture
def fleet(store: EventStore) -> SyncFleetService:
    service = SyncFleetService(store, clock=ManualClock())
    for worker_id, env in WORKERS.items():
        service.register_worker({"worker_id": worker_id, "tools": ["*"], "environment": env})
    return service


def test_every_task_is_leased_only_by_a_worker_that_meets_its_requirements(
    fleet: SyncFleetService, store: EventStore
) -> None:
    rng = random.Random(7)
    steps = []
    for i in range(TASKS):
        step: dict[str, Any] = {"id": f"s{i}", "type": "tool", "tool": "t"}
        need = NEEDS[i % len(NEEDS)]
        if need is not None:
            step["workspace"] = need
        steps.append(step)
    fleet.submit_run({"name": "mixed", "seed": 1, "steps": steps})
    done = 0
    while done < TASKS:
        leased = []
        for worker_id in rng.sample(list(WORKERS), len(WORKERS)):
            for entry in fleet.lease_task(worker_id, max_tasks=3):
                leased.append(entry)
        assert leased, f"nothing leasable with {TASKS - done} tasks left"
        for entry in leased:
            fleet.post_receipt(FleetReceipt.success(entry, None))
            done += 1
    need_of = {f"s{i}": NEEDS[i % len(NEEDS)] for i in range(TASKS)}
    specs = {w.spec.worker_id: w.spec for w in fleet.list_workers()}
    by_worker: dict[str, int] = {}
    for row in store.query_rows(limit=100_000):
        if row.type != "task_leased":
            continue
        step_id = row.data["task_id"].rsplit(".", 1)[1]
        worker = specs[row.data["worker_id"]]
        assert meets(need_of[step_id], worker.environment), (step_id, worker.worker_id)
        by_worker[worker.worker_id] = by_worker.get(worker.worker_id, 0) + 1
    assert "w0" in by_worker  # the worker that reported nothing still takes the plain tasks
    assert len(by_worker) == len(WORKERS)
    assert verify(store) == []


def test_a_task_nobody_can_take_says_what_is_missing(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(
        {
            "name": "needy",
            "seed": 1,
            "steps": [
                {
                    "id": "key",
                    "type": "tool",
                    "tool": "t",
                    "workspace": {"environment": {"required": ["ANTHROPIC_API_KEY"]}},
                },
                {"id": "disk", "type": "tool", "tool": "t", "workspace": {"min_disk_mb": 10**9}},
            ],
        }
    )
    for worker_id in WORKERS:
        assert fleet.lease_task(worker_id, max_tasks=5) == []
    blocked = {b.step_id: (b.code, b.message) for b in fleet.get_run(run.run_id).blocked}
    assert blocked["key"] == ("env_var_missing", "no live worker has env var ANTHROPIC_API_KEY")
    assert blocked["disk"] == ("disk_too_small", "8 workers lack 1000000000 MiB free disk")


def test_a_worker_reports_names_never_values(tmp_path: Any) -> None:
    env = detect_environment(tmp_path, {"SECRET_THING": "value-sentinel-123", "PATH": "/bin"})
    assert env.env_vars == ["PATH", "SECRET_THING"]
    assert "value-sentinel-123" not in env.model_dump_json()
    assert env.free_disk_mb is not None
    assert env.free_disk_mb > 0
    assert env.python is not None
    assert "langgraph" in env.extras  # installed with every extra in the dev environment
