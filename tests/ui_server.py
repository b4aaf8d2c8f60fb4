"""Servers and a browser for the dashboard tests and ``make screenshots``: the ASGI app of
``fleetforge serve`` in a thread (uvicorn, a free loopback port), and the system's Chromium
driven by Playwright (``playwright install`` downloads browsers, which cannot work offline)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from fleetforge.fleet.service import FleetService
from fleetforge.mcp_server.http import http_app
from fleetforge.mcp_server.server import ServerOptions
from fleetforge.mcp_server.ui import UiOptions

CHROMIUM = Path(os.environ.get("FLEETFORGE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # as root, Chromium refuses to start with its sandbox
    "--disable-gpu",
    "--disable-background-networking",  # a closed network: no update or safe-browsing calls
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.is_file():
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium chromium-driver)"
    return None


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium (a Playwright Browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def serving(
    fleet: FleetService, *, auth: bool = True, launch_token: str | None = None
) -> Iterator[str]:
    """The server's app on a free loopback port, in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    options = ServerOptions(auth=auth, port=port)
    ui = UiOptions(auth=auth, launch_token=launch_token)
    server = uvicorn.Server(
        uvicorn.Config(http_app(fleet, options, ui), log_level="warning", lifespan="on")
    )
    ui.stopping = lambda: server.should_exit
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # uvicorn's readiness flag
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the dashboard server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
