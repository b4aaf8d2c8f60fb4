"""Opening a store: what a wrong URL gets, at once, and what is (not) created on disk."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fleetforge.errors import AuthError, NotFoundError, UnavailableError, UsageError
from fleetforge.fleet.settings import store_url
from fleetforge.fleet.store import open_store


def test_a_missing_folder_is_refused_and_not_created(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path / 'nonexistent' / 'dir' / 'f.db'}")
    assert list(tmp_path.iterdir()) == []


def test_the_default_home_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETFORGE_HOME", str(tmp_path / "home" / "fleet"))
    monkeypatch.delenv("FLEETFORGE_STORE", raising=False)
    open_store(store_url()).close()
    assert (tmp_path / "home" / "fleet" / "fleet.db").is_file()


def test_a_store_that_must_exist_is_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with pytest.raises(NotFoundError, match=f"no fleet store at {url}"):
        open_store(url, create=False)
    assert list(tmp_path.iterdir()) == []
    open_store(url).close()
    open_store(url, create=False).close()  # once it exists, it opens


@contextmanager
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers: what a server that hangs looks like."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    kept: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                kept.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=10)
        for conn in [*kept, listener]:
            conn.close()


def test_postgres_that_does_not_answer_is_tried_again_then_unavailable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("psycopg")
    from fleetforge.fleet.store import postgres

    monkeypatch.setattr(postgres, "_PROBE_ATTEMPTS", 2)
    caplog.set_level(logging.WARNING, logger="fleetforge.store")
    with silent_server() as port, pytest.raises(UnavailableError) as caught:
        open_store(f"postgresql://fleet@127.0.0.1:{port}/fleet?connect_timeout=2")
    assert "gave up after 2 tries" in caught.value.message
    assert caught.value.exit_code == 6
    [retry] = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    assert "trying again in 1s (2 of 2)" in retry


def test_postgres_refused_is_unavailable_at_once(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UnavailableError, match="Connection refused"):
        open_store(f"postgresql://fleet@127.0.0.1:{port}/fleet")
    assert not [r for r in caplog.records if "trying again" in r.getMessage()]


def test_postgres_wrong_database_or_role(pg_url: str) -> None:
    base = pg_url.rsplit("/", 1)[0]
    with pytest.raises(NotFoundError, match='database "nowhere" does not exist'):
        open_store(f"{base}/nowhere")
    with pytest.raises(AuthError, match='role "nobody" does not exist'):
        open_store(pg_url.replace("fleetforge@", "nobody@"))
