"""The dashboard in a real browser (headless Chromium through Playwright), on both stores: log
in, see Hello Fleet's four steps completed in the graph, see events arrive live while a worker
works, approve a human step, and a wrong token refused. Without Chromium these skip (saying
why), except with CI=true, where they must run (make test installs it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.service import FleetService
from fleetforge.fleet.store import EventStore
from fleetforge.fleet.tokens import TokenStore
from tests.ui_fleet import hello_fleet, human_run, register
from tests.ui_server import browser, chromium_missing, serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    missing = chromium_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the browser tests cannot run: {missing}")
        pytest.skip(f"browser tests need Chromium: {missing}")
    with browser() as launched:
        yield launched


@pytest.fixture
def fleet(store: EventStore, tmp_path: Path) -> FleetService:
    return FleetService(store, artifacts=ArtifactStore(tmp_path / "artifacts"))


@pytest.fixture
def operator(store: EventStore) -> str:
    return TokenStore(store).create("operator", ["read", "submit"])[0]


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context()
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def log_in(page: Any, base: str, token: str) -> None:
    page.goto(f"{base}/ui/")
    page.fill("#token", token)
    page.click("button[type=submit]")


def test_log_in_and_see_hello_fleet_completed(
    fleet: FleetService, operator: str, page: Any
) -> None:
    from playwright.sync_api import expect

    run = hello_fleet(fleet.sync)
    with serving(fleet) as base:
        log_in(page, base, operator)
        expect(page.locator(f'tr[data-run="{run.run_id}"]')).to_contain_text("hello-fleet")
        page.click(f'tr[data-run="{run.run_id}"] a')
        expect(page.locator("#graph g.node")).to_have_count(4)
        expect(page.locator('#graph g.node[data-status="completed"]')).to_have_count(4)
        expect(page.locator("#run-status")).to_have_text("completed")
        expect(page.locator("svg.gantt g.bar")).to_have_count(4)
        page.set_viewport_size({"width": 390, "height": 844})  # a phone: no sideways scrolling
        wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, f"the run page is {wide}px wider than a phone's screen"
        cookie = next(c for c in page.context.cookies() if c["name"] == "fleetforge_ui")
        assert cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"


def test_events_arrive_live_while_a_worker_works(
    fleet: FleetService, operator: str, page: Any
) -> None:
    from playwright.sync_api import expect

    run = hello_fleet(fleet.sync, finish=False)
    with serving(fleet) as base:
        log_in(page, base, operator)
        page.goto(f"{base}/ui/runs/{run.run_id}")
        expect(page.locator("body")).to_have_attribute("data-live", "open")
        expect(page.locator("#events")).not_to_contain_text("task_leased")
        worker_id = register(fleet.sync, "plan")
        [entry] = fleet.sync.lease_task(worker_id, lease_seconds=60)  # the worker starts
        assert entry.lease is not None
        expect(page.locator("#events tr", has_text="task_leased")).to_have_count(1)
        expect(page.locator('#graph g.node[data-step="plan"]')).to_have_attribute(
            "data-status", "running"
        )
        fleet.sync.complete_task(
            entry.task.task_id,
            entry.lease.fencing_token,
            {"outline": "o", "sections": ["a"]},
        )
        expect(page.locator("#events tr", has_text="receipt_recorded")).to_have_count(1)
        expect(page.locator('#graph g.node[data-step="plan"]')).to_have_attribute(
            "data-status", "completed"
        )


def test_approve_a_human_step_from_the_page(fleet: FleetService, operator: str, page: Any) -> None:
    from playwright.sync_api import expect

    run = human_run(fleet.sync)
    with serving(fleet) as base:
        log_in(page, base, operator)
        page.goto(f"{base}/ui/runs/{run.run_id}")
        questions: list[str] = []

        def answer(dialog: Any) -> None:
            questions.append(dialog.message)
            dialog.accept()

        page.on("dialog", answer)
        page.click("button.approve")
        expect(page.locator('#graph g.node[data-step="sign_off"]')).to_have_attribute(
            "data-status", "completed"
        )
        expect(page.locator("#run-status")).to_have_text("completed")
        assert questions == ["Approve sign_off?"]
    assert fleet.sync.get_run(run.run_id).status == "completed"


def test_a_wrong_token_is_refused(fleet: FleetService, operator: str, page: Any) -> None:
    from playwright.sync_api import expect

    with serving(fleet) as base:
        log_in(page, base, "ffk_" + "n" * 43)
        expect(page.locator(".error")).to_have_text("Unknown or revoked token.")
        assert not [c for c in page.context.cookies() if c["name"] == "fleetforge_ui"]
        page.goto(f"{base}/ui/")
        expect(page.locator("h1")).to_have_text("Log in")


def test_fleetforge_ui_prints_a_one_time_link(tmp_path: Path, page: Any) -> None:
    """``fleetforge ui`` on a local store: the printed link logs in once."""
    from playwright.sync_api import expect

    store_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    command = [sys.executable, "-m", "fleetforge", "--store", store_url, "ui", "--port", "0",
               "--no-open"]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            link = proc.stdout.readline().strip()  # printed once the server listens
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/ui/login\?once=[\w-]+", link), link
            page.goto(link)
            expect(page.locator("h1")).to_have_text("Runs")
            fresh = page.context.browser.new_context()
            try:
                other = fresh.new_page()
                other.goto(link)
                expect(other.locator(".error")).to_contain_text("used already")
            finally:
                fresh.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
