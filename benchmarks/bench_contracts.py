"""Contract validation throughput (issue 3's goals).

- agent_run envelopes per second on the JSON Schema path (validator chosen by kind) and on the
  pydantic path (discriminated union);
- run events per second, both ways;
- validate_run_spec time for a 100-step DAG (schema + DAG rules + model);
- the JSON value domain check (issue 17) of the same envelopes, and its cost as a share of
  their JSON Schema validation, measured in the same run (goal: at most 5 %);
- `import fleetforge` time in a fresh interpreter.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from fleetforge import schemas, validate_run_spec
from fleetforge._jsondomain import check_json_value
from fleetforge.contracts import parse_envelope, parse_event

GOALS = {
    "envelopes_per_s_jsonschema": (">=", 10_000),
    "envelopes_per_s_pydantic": (">=", 100_000),
    "run_spec_100_steps_ms": ("<=", 20.0),
    "limits_check_pct_of_envelope_validation": ("<=", 5.0),
}


def _rate(fn: Callable[[Any], object], items: list[Any], seconds: float = 1.0) -> float:
    """Items per second, best of three rounds of about `seconds / 3` each."""
    best = 0.0
    for _ in range(3):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            for item in items:
                fn(item)
            done += len(items)
        best = max(best, done / (time.perf_counter() - start))
    return best


def _events() -> list[dict[str, Any]]:
    at = "2026-11-22T10:00:00Z"
    base = {"run_id": "run_1", "at": at, "seq": 1}
    task = schemas.load("fleet_task_spec")["examples"][0]
    receipt = schemas.load("fleet_receipt")["examples"][0]
    data = {
        "step_ready": {"step_id": "plan"},
        "task_enqueued": {"entry_id": "inb_1", "attempt": 1, "available_at": at, "task": task},
        "task_leased": {"task_id": "t1", "entry_id": "inb_1", "attempt": 1, "worker_id": "w1",
                        "fencing_token": 1, "expires_at": at},
        "task_heartbeat": {"task_id": "t1", "worker_id": "w1", "fencing_token": 1,
                           "expires_at": at},
        "receipt_posted": {"receipt": receipt},
        "step_completed": {"step_id": "plan", "output": {"outline": ["a", "b"]}},
    }  # fmt: skip
    return [
        {"event_id": f"e{i}", "type": t, **base, "data": d} for i, (t, d) in enumerate(data.items())
    ]


def spec_with_steps(n: int) -> dict[str, Any]:
    """A DAG of `n` agent steps: a chain where each step also reads the first step's output."""
    steps: list[dict[str, Any]] = [
        {"id": "s0", "type": "agent", "agent": "a", "inputs": {"topic": {"from": "inputs.topic"}}}
    ]
    for i in range(1, n):
        steps.append(
            {
                "id": f"s{i}",
                "type": "agent",
                "agent": "a",
                "depends_on": [f"s{i - 1}"],
                "inputs": {
                    "prev": {"from": f"steps.s{i - 1}.output"},
                    "first": {"from": "steps.s0.output#/outline"},
                },
                "retry": {"max_attempts": 2},
            }
        )
    return {"name": "big", "seed": 1, "inputs": {"topic": "t"}, "steps": steps}


def _median_ms(fn: Callable[[], object], runs: int = 30) -> float:
    fn()  # warm caches (validators are built once)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _import_ms(runs: int = 5) -> float:
    code = "import time; t = time.perf_counter(); import fleetforge; print(time.perf_counter() - t)"
    samples = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout) * 1000
        for _ in range(runs)
    ]  # fmt: skip
    return statistics.median(samples)


def run() -> dict[str, float]:
    envelopes = schemas.load("agent_run")["examples"]
    events = _events()
    for event in events:
        schemas.validate("run_event", event)  # the fixtures themselves are valid
    big = spec_with_steps(100)
    jsonschema_rate = _rate(lambda e: schemas.validate("agent_run", e), envelopes)
    limits_rate = _rate(check_json_value, envelopes)
    return {
        "envelopes_per_s_jsonschema": jsonschema_rate,
        "envelopes_per_s_limits_check": limits_rate,
        "limits_check_pct_of_envelope_validation": 100 * jsonschema_rate / limits_rate,
        "envelopes_per_s_pydantic": _rate(parse_envelope, envelopes),
        "events_per_s_jsonschema": _rate(lambda e: schemas.validate("run_event", e), events),
        "events_per_s_pydantic": _rate(parse_event, events),
        "run_spec_100_steps_ms": _median_ms(lambda: validate_run_spec(big)),
        "import_fleetforge_ms": _import_ms(),
    }
