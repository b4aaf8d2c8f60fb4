"""``make screenshots``: the dashboard's run page and runs list as PNGs for the docs.

``python -m tests.ui_screenshots docs/images``: a fresh SQLite fleet with a finished Hello
Fleet run and a few others, served on loopback and photographed by headless Chromium."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.service import FleetService
from fleetforge.fleet.store import open_store
from fleetforge.fleet.tokens import TokenStore
from tests.ui_fleet import hello_fleet, human_run
from tests.ui_server import browser, chromium_missing, serving


def main(out: Path) -> None:
    missing = chromium_missing()
    if missing:
        sys.exit(f"make screenshots: {missing}")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, open_store(f"sqlite:///{tmp}/fleet.db") as store:
        fleet = FleetService(store, artifacts=ArtifactStore(Path(tmp) / "artifacts"))
        token = TokenStore(store).create("docs", ["read", "submit"])[0]
        run = hello_fleet(fleet.sync)
        human_run(fleet.sync)
        hello_fleet(fleet.sync, finish=False)
        with serving(fleet) as base, browser() as chromium:
            page = chromium.new_page(viewport={"width": 1200, "height": 420})
            page.goto(f"{base}/ui/")
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_selector("table.runs")
            page.screenshot(path=str(out / "ui-runs.png"), full_page=True)
            page.goto(f"{base}/ui/runs/{run.run_id}")
            page.wait_for_selector('body[data-live="open"]')
            page.screenshot(path=str(out / "ui-run.png"), full_page=True)
    print(f"saved {out / 'ui-runs.png'} and {out / 'ui-run.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"))
