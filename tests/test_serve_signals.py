"""``fleetforge serve`` and Ctrl-C: during start-up it stops quietly, no traceback logged."""

from __future__ import annotations

import logging
import os
import signal
import socket
from typing import Any

import pytest

from fleetforge.fleet.service import FleetService
from fleetforge.fleet.store import open_store
from fleetforge.mcp_server import http
from fleetforge.mcp_server.server import ServerOptions

pytestmark = pytest.mark.anyio


async def test_ctrl_c_during_start_up_stops_it_quietly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    listen = http._listen

    def ctrl_c_while_starting(host: str, port: int) -> socket.socket:
        os.kill(os.getpid(), signal.SIGINT)  # the person presses Ctrl-C now
        return listen(host, port)

    monkeypatch.setattr(http, "_listen", ctrl_c_while_starting)
    ready: list[str] = []
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    caplog.set_level(logging.INFO)
    with open_store("sqlite://") as store:
        options = ServerOptions(host="127.0.0.1", port=port)
        await http.serve_http(FleetService(store), options, on_ready=ready.append)
    assert ready == []  # it stopped instead of announcing itself
    errors: list[Any] = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == []
