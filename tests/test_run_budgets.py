"""Run-level budgets (issue 23): usage counted as envelopes report it, a run that goes over
fails or pauses, the running attempt's next call is refused, a paused run resumes with a raised
budget, cost from prices.toml, wall time tripped by the sweep; both stores, replay == rows."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import Result
from typer.testing import CliRunner

from fleetforge.cli import app
from fleetforge.contracts import FleetInboxEntry, FleetUsage
from fleetforge.contracts.envelope import EmitEnvelope
from fleetforge.errors import BudgetExceededError, ConflictError, ContractError, LeaseLostError
from fleetforge.fleet.alerts.config import AlertSettings
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.prices import ModelPrice, PriceTable, load_prices
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore, open_store
from fleetforge.validation import validate_run_spec
from fleetforge.worker import TaskRun, Worker

from .test_worker import client_for

PRICES = PriceTable(models={"m-1": ModelPrice(input_per_1k=0.01, output_per_1k=0.03)})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fleet(store: EventStore, clock: ManualClock) -> SyncFleetService:
    service = SyncFleetService(store, clock=clock, prices=PRICES, alerts=AlertSettings())
    service.register_worker({"worker_id": "w1", "trust_level": "privileged", "tools": ["*"]})
    return service


def _spec(budget: dict[str, Any] | None, *steps: str, **fields: Any) -> dict[str, Any]:
    names = steps or ("a",)
    body = [{"id": s, "type": "agent", "agent": "x"} for s in names]
    spec: dict[str, Any] = {"name": "budgeted", "seed": 5, "steps": body, **fields}
    if budget is not None:
        spec["budget"] = budget
    return spec


def _envelope(entry: FleetInboxEntry, seq: int, **usage: Any) -> EmitEnvelope:
    task = entry.task
    return EmitEnvelope(
        run_id=task.run_id,
        step_id=task.step_id,
        task_id=task.task_id,
        adapter={"name": "test", "version": "1"},
        seq=seq,
        at=ManualClock().now(),
        seed=task.seed,
        event="message",
        payload={"text": f"turn {seq}"},
        usage=FleetUsage(**usage) if usage else None,
    )


def _lease(fleet: SyncFleetService) -> FleetInboxEntry:
    [entry] = fleet.lease_task("w1", max_tasks=1)
    return entry


def _token(entry: FleetInboxEntry) -> int:
    assert entry.lease is not None
    return entry.lease.fencing_token


def _types(fleet: SyncFleetService, run_id: str) -> list[str]:
    return [e.type for e in fleet.run_events(run_id, limit=1000)]


def _post(fleet: SyncFleetService, entry: FleetInboxEntry, seq: int, **usage: Any) -> None:
    fleet.post_event(entry.task.task_id, _token(entry), _envelope(entry, seq, **usage))


# ── the run fails ─────────────────────────────────────────────────────────────────────────────


def test_budget_enforced_mid_attempt_fails_the_run(
    fleet: SyncFleetService, store: EventStore
) -> None:
    policy = {"events": ["budget_exceeded"], "endpoints": [{"channel": "log"}]}
    run = fleet.submit_run(_spec({"max_tokens": 1000}, alerts=policy))
    entry = _lease(fleet)
    task_id = entry.task.task_id
    _post(fleet, entry, 0, input_tokens=300, output_tokens=100)
    _post(fleet, entry, 1, input_tokens=500, output_tokens=200)
    live = fleet.get_run(run.run_id)
    assert live.status == "running"
    assert live.budget is not None
    assert (live.budget.tokens, live.budget.running[0].usage.input_tokens) == (700, 500)
    _post(fleet, entry, 2, input_tokens=800, output_tokens=300)  # crosses: 1100 > 1000
    failed = fleet.get_run(run.run_id)
    assert failed.status == "failed"
    assert failed.error == "run budget exceeded: used 1100 tokens, limit 1000 tokens"
    assert failed.budget is not None
    assert (failed.budget.exceeded, failed.budget.tokens) == ("tokens", 1100)
    with pytest.raises(BudgetExceededError, match="token budget") as refused:
        fleet.heartbeat(task_id, _token(entry))
    assert isinstance(refused.value, LeaseLostError)  # the Worker stops as on a lost lease
    assert refused.value.context["budget"] == "tokens"
    with pytest.raises(BudgetExceededError):
        _post(fleet, entry, 3, input_tokens=900)
    types = _types(fleet, run.run_id)
    assert types.count("usage_reported") == 3
    assert types[types.index("budget_exceeded") :][:2] == ["budget_exceeded", "alert_fired"]
    assert "run_failed" in types
    [exceeded] = [e for e in fleet.run_events(run.run_id) if e.type == "budget_exceeded"]
    data = exceeded.data.model_dump()
    assert (data["scope"], data["budget"], data["used"], data["on_exceed"]) == (
        "run", "tokens", 1100.0, "fail")  # fmt: skip
    assert verify(store) == []


def test_the_crossing_envelope_in_a_batch_refuses_the_ones_after_it(
    fleet: SyncFleetService, store: EventStore
) -> None:
    run = fleet.submit_run(_spec({"max_tokens": 100}))
    entry = _lease(fleet)
    token, task_id = _token(entry), entry.task.task_id
    items = [
        {
            "task_id": task_id,
            "fencing_token": token,
            "envelope": _envelope(entry, i, **u).model_dump(mode="json"),
        }
        for i, u in enumerate([{"total_tokens": n} for n in (60, 120, 130)])
    ]
    posted = fleet.post_events(items)
    assert [e is not None for e in posted.events] == [True, True, False]
    [failure] = posted.failures
    assert (failure.index, failure.error["code"]) == (2, "BudgetExceededError")
    assert fleet.get_run(run.run_id).status == "failed"
    result = fleet.heartbeat_many([{"task_id": task_id, "fencing_token": token}])
    assert result.failures[0].error["code"] == "BudgetExceededError"
    assert verify(store) == []


# ── the run pauses, and resumes with a raised budget ─────────────────────────────────────────


def test_a_paused_run_resumes_with_a_raised_budget(
    fleet: SyncFleetService, store: EventStore
) -> None:
    run = fleet.submit_run(_spec({"max_cost_usd": 0.02, "on_exceed": "pause"}, "a", "b"))
    entry = _lease(fleet)
    assert entry.task.step_id == "a"
    _post(fleet, entry, 0, input_tokens=1000, output_tokens=100, model="m-1")  # 0.013 (prices)
    _post(fleet, entry, 1, input_tokens=1500, output_tokens=200, model="m-1")  # 0.021 > 0.02
    paused = fleet.get_run(run.run_id)
    assert paused.status == "paused"
    assert paused.budget is not None
    assert paused.budget.exceeded == "cost"
    assert paused.budget.cost_usd == pytest.approx(0.021)
    with pytest.raises(BudgetExceededError, match="so it pauses"):
        fleet.heartbeat(entry.task.task_id, _token(entry))
    assert fleet.lease_task("w1") == []  # its task is back in the inbox, held
    with pytest.raises(ConflictError, match="raised budget"):
        fleet.resume_run(run.run_id)
    with pytest.raises(ConflictError, match="still over"):
        fleet.resume_run(run.run_id, budget={"max_cost_usd": 0.0201, "on_exceed": "pause"})
    resumed = fleet.resume_run(run.run_id, budget={"max_cost_usd": 1.0, "on_exceed": "pause"})
    assert resumed.status == "running"
    assert resumed.budget is not None
    assert resumed.budget.exceeded is None
    assert resumed.budget.limits is not None
    assert resumed.budget.limits.max_cost_usd == 1.0
    again = _lease(fleet)  # the same attempt, under a new lease: it counts from 0
    assert (again.task.task_id, again.attempt) == (entry.task.task_id, entry.attempt)
    _post(fleet, again, 0, input_tokens=100, model="m-1")
    fleet.complete_task(again.task.task_id, _token(again), "ok",
                        usage={"input_tokens": 100, "model": "m-1"})  # fmt: skip
    last = _lease(fleet)
    fleet.complete_task(last.task.task_id, _token(last), "ok")
    done = fleet.get_run(run.run_id)
    assert done.status == "completed"
    assert done.budget is not None
    assert done.budget.cost_usd == pytest.approx(0.022)
    types = _types(fleet, run.run_id)
    start = types.index("budget_exceeded")
    assert types[start : start + 4] == [
        "budget_exceeded", "task_released", "task_enqueued", "run_paused"]  # fmt: skip
    assert "run_budget_changed" in types
    assert verify(store) == []


def test_wall_time_trips_an_idle_run_in_the_lease_sweep(
    fleet: SyncFleetService, store: EventStore, clock: ManualClock
) -> None:
    run = fleet.submit_run(_spec({"max_wall_s": 60}))
    entry = _lease(fleet)
    clock.advance(30)
    fleet.heartbeat(entry.task.task_id, _token(entry))
    clock.advance(31)
    assert fleet.lease_task("w1") == []  # any call sweeps: the run trips with no report at all
    assert fleet.get_run(run.run_id).status == "failed"
    with pytest.raises(BudgetExceededError, match="wall-time budget"):
        fleet.heartbeat(entry.task.task_id, _token(entry))
    [exceeded] = [e for e in fleet.run_events(run.run_id) if e.type == "budget_exceeded"]
    assert exceeded.data.model_dump()["used"] == pytest.approx(61)
    assert verify(store) == []


# ── usage, cost and receipts ──────────────────────────────────────────────────────────────────


def test_cost_comes_from_the_worker_else_prices_else_unknown(
    fleet: SyncFleetService, store: EventStore
) -> None:
    run = fleet.submit_run(_spec({"max_cost_usd": 10}, "a", "b", "c"))
    for model, cost in (("m-1", None), ("m-1", 0.5), ("unpriced", None)):
        entry = _lease(fleet)
        _post(fleet, entry, 0, input_tokens=2000, output_tokens=1000, model=model, cost_usd=cost)
        fleet.complete_task(entry.task.task_id, _token(entry), "ok")
    reports = [e.data.model_dump() for e in fleet.run_events(run.run_id)
               if e.type == "usage_reported"]  # fmt: skip
    assert [(r["cost_source"], r["usage"]["cost_usd"]) for r in reports] == [
        ("prices", 0.05), ("worker", 0.5), (None, None)]  # fmt: skip
    final = fleet.get_run(run.run_id)
    assert final.budget is not None
    assert (final.budget.tokens, final.budget.cost_usd, final.budget.cost_unknown) == (
        9000, 0.55, 1)  # fmt: skip
    assert verify(store) == []


def test_a_receipt_counts_usage_and_a_repeat_adds_nothing(
    fleet: SyncFleetService, store: EventStore
) -> None:
    run = fleet.submit_run(_spec({"max_tokens": 500}, "a", "b"))
    entry = _lease(fleet)
    _post(fleet, entry, 0, total_tokens=200)
    _post(fleet, entry, 1, total_tokens=150)  # late or repeated: the largest count stands
    fleet.complete_task(entry.task.task_id, _token(entry), "ok", usage={"total_tokens": 200})
    assert _types(fleet, run.run_id).count("usage_reported") == 1
    second = _lease(fleet)
    # only the receipt reports usage: it is counted there, and takes the run over
    fleet.complete_task(second.task.task_id, _token(second), "ok", usage={"total_tokens": 400})
    final = fleet.get_run(run.run_id)
    assert final.status == "completed"  # the last receipt completed it before the check
    assert final.budget is not None
    assert (final.budget.tokens, final.budget.exceeded) == (600, None)
    assert verify(store) == []


def test_a_run_without_a_budget_keeps_live_usage_and_never_trips(
    fleet: SyncFleetService, store: EventStore
) -> None:
    run = fleet.submit_run(_spec(None))
    assert fleet.get_run(run.run_id).budget is None
    entry = _lease(fleet)
    _post(fleet, entry, 0, total_tokens=10**9)
    live = fleet.get_run(run.run_id)
    assert live.status == "running"
    assert live.budget is not None
    assert (live.budget.limits, live.budget.tokens) == (None, 10**9)
    fleet.heartbeat(entry.task.task_id, _token(entry))
    assert verify(store) == []


# ── bad input ─────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("budget", "pointer"),
    [
        ({"max_tokens": -1}, "/budget/max_tokens"),
        ({"max_tokens": 0}, "/budget/max_tokens"),
        ({"max_cost_usd": -0.5}, "/budget/max_cost_usd"),
        ({"max_wall_s": 0}, "/budget/max_wall_s"),
        ({"on_exceed": "explode"}, "/budget/on_exceed"),
    ],
)
def test_a_bad_budget_is_refused_with_its_pointer(budget: dict[str, Any], pointer: str) -> None:
    with pytest.raises(ContractError) as refused:
        validate_run_spec(_spec(budget))
    assert pointer in {d.pointer for d in refused.value.details}


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_nan_and_infinite_limits_are_refused(
    value: float, fleet: SyncFleetService, store: EventStore
) -> None:
    with pytest.raises(ContractError) as refused:
        fleet.submit_run(_spec({"max_cost_usd": value}))
    assert any(d.pointer.startswith("/budget") for d in refused.value.details), refused.value
    assert store.count() == 1  # the worker's registration only: nothing of the run written
    run = fleet.submit_run(_spec({"max_tokens": 1, "on_exceed": "pause"}))
    with pytest.raises(ContractError) as bad:
        fleet.resume_run(run.run_id, budget={"max_wall_s": value})
    assert bad.value.details[0].pointer.startswith("/budget")


def test_resume_refuses_a_bad_budget_and_writes_nothing(fleet: SyncFleetService) -> None:
    run = fleet.submit_run(_spec({"max_tokens": 10, "on_exceed": "pause"}))
    entry = _lease(fleet)
    _post(fleet, entry, 0, total_tokens=11)
    before = len(_types(fleet, run.run_id))
    with pytest.raises(ContractError) as bad:
        fleet.resume_run(run.run_id, budget={"max_tokens": -3})
    assert [d.pointer for d in bad.value.details] == ["/budget/max_tokens"]
    assert len(_types(fleet, run.run_id)) == before


def test_the_price_table_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    assert load_prices(path).models == {}  # no file: no prices
    path.write_text('[models."m-1"]\ninput_per_1k = 0.01\noutput_per_1k = 0.03\n')
    table = load_prices(path)
    assert table.cost(FleetUsage(input_tokens=2000, output_tokens=1000, model="m-1")) == 0.05
    assert table.cost(FleetUsage(input_tokens=2000, model="other")) is None
    # a total alone has no price (input and output are priced apart): unknown, not $0
    assert table.cost(FleetUsage(total_tokens=100_000, model="m-1")) is None
    assert table.cost(FleetUsage(input_tokens=10, output_tokens=10, total_tokens=20,
                                 model="m-1")) == 0.0004  # fmt: skip
    path.write_text(
        '[models."a/b"]\ninput_per_1k = -1\noutput = 2\n[models.c]\ninput_per_1k = "x"\n'
        "output_per_1k = 1\n[extra]\n"
    )
    with pytest.raises(ContractError, match=r"prices\.toml") as bad:
        load_prices(path)
    assert [d.pointer for d in bad.value.details] == [
        "/extra",
        "/models/a~1b/output",
        "/models/a~1b/input_per_1k",
        "/models/a~1b/output_per_1k",
        "/models/c/input_per_1k",
    ]
    path.write_text("[models\n")
    with pytest.raises(ContractError, match="not TOML"):
        load_prices(path)


def test_the_service_reads_prices_toml_from_the_fleet_home(
    store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETFORGE_HOME", str(tmp_path))
    (tmp_path / "prices.toml").write_text('[models.m]\ninput_per_1k = 1\noutput_per_1k = "1"\n')
    with pytest.raises(ContractError) as bad:
        SyncFleetService(store, clock=ManualClock())
    assert [d.pointer for d in bad.value.details] == ["/models/m/output_per_1k"]
    (tmp_path / "prices.toml").write_text("[models.m]\ninput_per_1k = 1\noutput_per_1k = 2\n")
    assert SyncFleetService(store, clock=ManualClock()).prices.models["m"].output_per_1k == 2


# ── the SDK Worker stops the task ─────────────────────────────────────────────────────────────


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["local", "http"])
async def test_the_worker_stops_a_task_whose_run_went_over_budget(
    transport: str, tmp_path: Path
) -> None:
    cancelled = anyio.Event()

    async def handler(task: TaskRun) -> str:
        task.adapter.emit("message", {"turn": 1}, usage={"input_tokens": 600})
        task.adapter.emit("message", {"turn": 2}, usage={"input_tokens": 1200})  # crosses
        for turn in range(3, 1000):  # goes on working until the fleet's refusal stops it
            task.adapter.emit("message", {"turn": turn}, usage={"input_tokens": 1200 + turn})
            try:
                await anyio.sleep(0.05)
            except anyio.get_cancelled_exc_class():
                cancelled.set()
                raise
        return "never"

    async with client_for(transport, tmp_path) as client:
        run = await client.submit_run(_spec({"max_tokens": 1000}))
        worker = Worker(client, handler, worker_id="w", lease_seconds=30, heartbeat_seconds=0.2)
        with anyio.fail_after(20):
            stats = await worker.run(max_tasks=1)
        events = await client.run_events(run.run_id, limit=1000)
        final = await client.get_run(run.run_id)
        with pytest.raises(BudgetExceededError):  # the same class on every transport
            await client.heartbeat(final.steps[0].task_ids[0], 1, worker_id="w")
    assert cancelled.is_set()
    assert (stats.lost, stats.completed) == (1, 0)
    assert final.status == "failed"
    types = [e.type for e in events]
    assert "budget_exceeded" in types
    assert not [t for t in types if t.startswith("receipt_")]


# ── the CLI ───────────────────────────────────────────────────────────────────────────────────


def test_cli_show_prints_the_budget_and_resume_raises_it(store_url: str, tmp_path: Path) -> None:
    def cli(*args: str) -> Result:
        return CliRunner().invoke(app, ["--store", store_url, *args])

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(_spec({"max_tokens": 100, "on_exceed": "pause"})))
    submitted = cli("submit", str(path), "--json")
    assert submitted.exit_code == 0, submitted.output
    run_id = json.loads(submitted.stdout)["run_id"]
    with open_store(store_url) as store:
        fleet = SyncFleetService(store, prices=PRICES)
        fleet.register_worker({"worker_id": "w1"})
        entry = _lease(fleet)
        _post(fleet, entry, 0, input_tokens=60, output_tokens=20, model="m-1")
        running = cli("show", run_id)
        assert "budget: 80 tokens of 100, $0.0012" in running.stdout, running.stdout
        assert f"running {entry.task.task_id} (attempt 1, w1): 80 tokens, $0.0012" in (
            running.stdout
        )
        _post(fleet, entry, 1, input_tokens=90, output_tokens=20, model="m-1")
    shown = cli("show", run_id)
    assert "paused" in shown.stdout
    assert "EXCEEDED (tokens)" in shown.stdout
    refused = cli("resume", run_id)
    assert refused.exit_code == 4
    assert "raised budget" in refused.stderr
    assert cli("resume", run_id, "--budget", '{"max_tokens": -1}').exit_code == 1
    resumed = cli("resume", run_id, "--budget", '{"max_tokens": 1000}', "--json")
    assert resumed.exit_code == 0, resumed.output
    body = json.loads(resumed.stdout)
    assert (body["status"], body["budget"]["limits"]["max_tokens"]) == ("running", 1000)


def test_huge_reports_saturate_the_totals_instead_of_breaking_the_store(
    fleet: SyncFleetService, store: EventStore
) -> None:
    largest = 2**63 - 1
    run = fleet.submit_run(_spec({"max_tokens": 10**18, "max_cost_usd": 1e6}, "a", "b"))
    first, second = fleet.lease_task("w1", max_tasks=2)
    _post(fleet, first, 0, input_tokens=largest, output_tokens=largest, cost_usd=1e308)
    with pytest.raises(BudgetExceededError):
        _post(fleet, second, 0, total_tokens=largest, cost_usd=1e308)
    final = fleet.get_run(run.run_id)
    assert final.status == "failed"
    assert final.budget is not None
    assert (final.budget.tokens, final.budget.exceeded) == (largest, "tokens")
    assert math.isfinite(final.budget.cost_usd)
    assert verify(store) == []
