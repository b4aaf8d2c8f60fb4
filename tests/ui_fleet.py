"""A fleet to look at, for the dashboard and ``top`` tests: Hello Fleet's spec worked by four
in-process workers (one per role) that answer what its scorers accept, and a run with a
human step."""

from __future__ import annotations

from typing import Any

from fleetforge.contracts import Run
from fleetforge.demo.hello_fleet import load_spec
from fleetforge.fleet.service import SyncFleetService

ANSWERS: dict[str, Any] = {
    "plan": {"outline": "intro, log, replay", "sections": ["intro", "log", "replay"]},
    "research": {"facts": ["events are appended", "projections rebuild"]},
    "write": {"draft": "# Event sourcing\n\nintro, log, replay."},
    "review": {"approved": True},
}
ROLES = {"plan": "planner", "research": "researcher", "write": "writer", "review": "reviewer"}

HUMAN_SPEC: dict[str, Any] = {
    "name": "needs-a-human",
    "seed": 7,
    "labels": {"team": "ui"},
    "steps": [
        {"id": "draft", "type": "tool", "tool": "echo"},
        {"id": "sign_off", "type": "human", "prompt": "Ship it?", "depends_on": ["draft"]},
    ],
}


def register(service: SyncFleetService, step_id: str) -> str:
    worker_id = f"ui-{ROLES.get(step_id, 'any')}"
    spec: dict[str, Any] = {"worker_id": worker_id, "trust_level": "privileged", "tools": ["*"]}
    if step_id in ROLES:
        spec["role"] = ROLES[step_id]
    service.register_worker(spec)
    return worker_id


def work_one(
    service: SyncFleetService, step_id: str, output: Any = None, *, run_id: str | None = None
) -> str:
    """Lease the task of ``step_id`` (it must be the oldest ready one for its role) and complete
    it; returns its task id."""
    worker_id = register(service, step_id)
    [entry] = service.lease_task(worker_id, lease_seconds=60)
    assert entry.task.step_id == step_id, (entry.task.step_id, step_id)
    assert run_id in (None, entry.task.run_id), (entry.task.run_id, run_id)
    assert entry.lease is not None
    answer = ANSWERS.get(step_id) if output is None else output
    service.complete_task(entry.task.task_id, entry.lease.fencing_token, answer)
    return entry.task.task_id


def hello_fleet(service: SyncFleetService, *, finish: bool = True) -> Run:
    """A Hello Fleet run, its four steps completed unless ``finish`` is false."""
    run = service.submit_run(load_spec())
    if finish:
        for step_id in ("plan", "research", "write", "review"):
            work_one(service, step_id, run_id=run.run_id)
    return service.get_run(run.run_id)


def human_run(service: SyncFleetService) -> Run:
    """A run whose human step waits for an approval."""
    run = service.submit_run(HUMAN_SPEC)
    work_one(service, "draft", {"text": "ready"}, run_id=run.run_id)
    return service.get_run(run.run_id)
