"""``fleetforge top``: its model folded from events, and the Textual app driven headless by its
pilot on both stores (in process) and against a served fleet (--url)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetforge.client import FleetClient
from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.service import FleetService
from fleetforge.fleet.store import EventStore
from fleetforge.fleet.tokens import TokenStore
from fleetforge.top import FleetModel, load_app
from tests.ui_fleet import hello_fleet, human_run, register
from tests.ui_server import serving

pytestmark = pytest.mark.anyio


def test_the_model_follows_a_run(store: EventStore) -> None:
    from fleetforge.fleet.service import SyncFleetService

    service = SyncFleetService(store)
    model = FleetModel()
    run = hello_fleet(service, finish=False)
    model.apply(store.query_rows(limit=10_000))
    line = model.runs[run.run_id]
    assert (line.name, line.status, line.done, len(line.steps)) == ("hello-fleet", "running", 0, 4)
    assert model.queue_depth() == {"planner": 1}
    worker_id = register(service, "plan")
    [entry] = service.lease_task(worker_id)
    assert model.apply(store.query_rows(after=model.cursor, limit=10_000)) >= 1
    assert model.active_tasks() == 1
    assert model.queue_depth() == {}
    assert model.workers[worker_id].status == "busy"
    assert model.workers[worker_id].tasks == {entry.task.task_id}
    assert entry.lease is not None
    service.complete_task(
        entry.task.task_id, entry.lease.fencing_token, {"outline": "o", "sections": []}
    )
    model.apply(store.query_rows(after=model.cursor, limit=10_000))
    assert model.workers[worker_id].status == "idle"
    assert model.runs[run.run_id].done == 1
    assert model.queue_depth() == {"researcher": 1}
    assert sum(model.throughput()) == 1
    again = model.cursor
    assert model.apply(store.query_rows(limit=10_000)) == 0  # old events change nothing
    assert model.cursor == again
    service.register_worker({"worker_id": "other", "trust_level": "privileged", "tools": ["*"]})
    human = human_run(service)
    model.apply(store.query_rows(after=model.cursor, limit=10_000))
    assert [r.run_id for r in model.waiting()] == [human.run_id]
    assert model.runs[human.run_id].waiting_human == ["sign_off"]
    research = register(service, "research")
    [entry] = service.lease_task(research)
    assert entry.lease is not None
    service.fail_task(entry.task.task_id, entry.lease.fencing_token, "transient", "<b>flaky</b>")
    model.apply(store.query_rows(after=model.cursor, limit=10_000))
    [alert] = [a for a in model.alerts if a.type == "task_failed"]
    assert "<b>flaky</b>" in alert.text
    assert alert.run_id == entry.task.run_id


async def _until(pilot: Any, check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    """Let the app work until ``check()`` holds (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def _rows(app: Any) -> list[str]:
    table = app.query_one("#runs")
    return [str(key.value) for key in table.rows]


async def _drive(client: FleetClient, fleet: FleetService) -> None:
    """Open top, watch a run progress live, open it, approve its human step after confirming."""
    service = fleet.sync
    done = hello_fleet(service)
    app = load_app()(client, where="test", wait_seconds=0.2)
    async with app.run_test(size=(160, 48)) as pilot:
        await _until(pilot, lambda: done.run_id in _rows(app), "the finished run")
        assert app.model.runs[done.run_id].done == 4
        human = human_run(service)  # arrives through the event stream
        await _until(pilot, lambda: human.run_id in _rows(app), "the new run")
        await _until(pilot, lambda: app.model.runs[human.run_id].waiting_human == ["sign_off"],
                     "the waiting human step")  # fmt: skip
        assert _rows(app)[0] == human.run_id  # unfinished runs first
        assert "sign_off" in str(app.query_one("#waiting").render())
        app.query_one("#runs").move_cursor(row=0)
        await pilot.press("enter")
        from fleetforge.top._app import ConfirmScreen, RunScreen

        await _until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
        screen = app.screen
        await _until(pilot, lambda: screen.query_one("#attempts").row_count == 1, "the attempt")
        assert "sign_off" in str(screen.query_one("#dag").render())
        await pilot.press("a")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("n")  # no: nothing happens
        await _until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen again")
        assert service.get_run(human.run_id).status == "running"
        await pilot.press("a")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("y")
        await _until(pilot, lambda: app.model.runs[human.run_id].status == "completed", "approval")
        assert service.get_run(human.run_id).status == "completed"
        await pilot.press("escape")
        await pilot.press("c")  # a finished run: nothing to cancel, no question
        assert not isinstance(app.screen, ConfirmScreen)


async def test_top_on_a_local_store(store: EventStore, tmp_path: Path) -> None:
    fleet = FleetService(store, artifacts=ArtifactStore(tmp_path / "artifacts"))
    async with FleetClient.local(store, artifacts=tmp_path / "artifacts") as client:
        await _drive(client, fleet)


@pytest.mark.slow
async def test_top_against_a_served_fleet(store: EventStore, tmp_path: Path) -> None:
    fleet = FleetService(store, artifacts=ArtifactStore(tmp_path / "artifacts"))
    token = TokenStore(store).create("top", ["read", "submit"])[0]
    with serving(fleet) as base:
        async with FleetClient.connect(f"{base}/mcp", token=token) as client:
            await _drive(client, fleet)


def test_top_names_the_extra_when_textual_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from fleetforge.errors import UsageError

    monkeypatch.delitem(sys.modules, "fleetforge.top._app", raising=False)
    monkeypatch.setitem(sys.modules, "textual.app", None)  # import textual.app -> ImportError
    with pytest.raises(UsageError, match=r"fleetforge\[ui\]"):
        load_app()
