"""A fleet server that cannot be reached is an UnavailableError, for the SDK as for the CLI.

The servers here are loopback sockets that behave like the failures: nothing listening
(refused), listening but silent (a timeout), closing each connection at once (a reset), or
answering a fixed HTTP status.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from fleetforge.client import FleetClient, SyncFleetClient
from fleetforge.client._unavailable import classify
from fleetforge.errors import AuthError, UnavailableError

pytestmark = pytest.mark.anyio


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fake_server(behaviour: str) -> Iterator[str]:
    """A loopback server that is ``silent``, ``closes`` at once, or answers ``HTTP <code>``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    kept: list[socket.socket] = []
    stop = threading.Event()

    listener.settimeout(0.05)  # accept() wakes up to see stop

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            if behaviour == "silent":
                kept.append(conn)
            elif behaviour == "closes":
                conn.close()
            else:
                conn.recv(65536)
                status = behaviour.removeprefix("HTTP ")
                conn.sendall(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()
        for conn in kept:
            conn.close()


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]


async def test_a_refused_connection_fails_at_once(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{closed_port()}/mcp"
    with pytest.raises(UnavailableError, match="connection refused") as caught:
        async with FleetClient.connect(url):
            pass
    assert caught.value.exit_code == 6
    assert caught.value.context["url"] == url
    assert retries(caplog) == []


def test_the_sync_client_raises_the_same(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{closed_port()}/mcp"
    with pytest.raises(UnavailableError, match="connection refused"), SyncFleetClient.connect(url):
        pass
    assert retries(caplog) == []


@pytest.mark.parametrize(
    ("behaviour", "says"),
    [("silent", "did not answer in time"), ("closes", "lost the connection"),
     ("HTTP 503", "unavailable \\(HTTP 503\\)")],
)  # fmt: skip
async def test_timeouts_and_resets_are_tried_again_then_raised(
    behaviour: str, says: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fleetforge.client")
    with fake_server(behaviour) as url, pytest.raises(UnavailableError, match=says) as caught:
        async with FleetClient.connect(url, connect_timeout=0.5, attempts=2):
            pass
    assert "gave up after 2 tries" in caught.value.message
    assert len(retries(caplog)) == 1  # the visible wait before the second try


@pytest.mark.parametrize(
    ("status", "error", "says"),
    [("401", AuthError, "refused the token"), ("404", UnavailableError, "no fleet server")],
)
async def test_a_refused_token_and_a_wrong_path_are_not_retried(
    status: str, error: type[Exception], says: str, caplog: pytest.LogCaptureFixture
) -> None:
    with fake_server(f"HTTP {status}") as url, pytest.raises(error, match=says):
        async with FleetClient.connect(url, token="ffk_" + "t" * 40):
            pass
    assert retries(caplog) == []


def test_an_unknown_host_is_permanent() -> None:
    # what httpx raises when the name does not resolve (built here: the suite stays offline)
    failed = httpx.ConnectError("[Errno -2] Name or service not known")
    failed.__cause__ = socket.gaierror(-2, "Name or service not known")
    error, transient = classify(ExceptionGroup("task group", [failed]), "http://fleet.invalid/mcp")
    assert isinstance(error, UnavailableError)
    assert "unknown host 'fleet.invalid'" in error.message
    assert not transient
