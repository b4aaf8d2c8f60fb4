"""Test-wide settings: a hypothesis profile for CI and a guard against real network access."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Stores and validators are created inside each example, so no deadline: timing belongs in
# benchmarks, not tests. `ci` is loaded by default; HYPOTHESIS_PROFILE=dev runs fewer examples.
settings.register_profile(
    "ci", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=50)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The MCP Inspector check fetches Node packages; `make check-mcp` runs it (and CI, via make test).
collect_ignore = [] if os.environ.get("FLEETFORGE_CHECK_MCP") == "1" else ["test_mcp_inspector.py"]

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check(address: Any) -> None:
    if not isinstance(address, tuple):  # AF_UNIX paths are local by definition
        return
    host = address[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost":
            return
        raise AssertionError(f"test tried to reach {host!r}: tests run offline") from None
    if not ip.is_loopback:
        raise AssertionError(f"test tried to reach {host}: tests run offline")


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``pytest.mark.anyio``) run on asyncio: the MCP SDK's own backend."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _fleet_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Trust is on by default: a fleet signs its receipts with the key in FLEETFORGE_HOME
    (created on first use). Each test gets a home of its own, never the working directory; a
    test that needs another sets FLEETFORGE_HOME itself."""
    monkeypatch.setenv("FLEETFORGE_HOME", str(tmp_path / "fleet-home"))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that opens a socket to a non-loopback address."""

    def connect(self: socket.socket, address: Any) -> None:
        _check(address)
        _real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(address)
        return _real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


# ── stores: one suite, every backend ──────────────────────────────────────────────────────────

import itertools  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from fleetforge.fleet.store import EventStore, open_store  # noqa: E402
from fleetforge.testing.postgres import find_postgres_bin, postgres_server  # noqa: E402

_in_ci = os.environ.get("CI", "").lower() == "true"
_db_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL database where tests may CREATE DATABASE."""
    if os.environ.get("FLEETFORGE_TEST_DATABASE_URL"):
        yield os.environ["FLEETFORGE_TEST_DATABASE_URL"]
        return
    bindir = find_postgres_bin()
    if bindir is None:
        reason = (
            "PostgreSQL server programs not found: apt-get install postgresql, or set "
            "FLEETFORGE_TEST_DATABASE_URL"
        )
        if _in_ci:
            pytest.fail(f"{reason} (with CI=true the PostgreSQL tests must run)")
        pytest.skip(reason)
    with postgres_server(bindir) as url:
        yield url


def _swap_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def _admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> str:
    """A migrated template database; per-test databases are cloned from it."""
    name = f"fleetforge_template_{os.getpid()}"
    _admin(pg_admin_url, f"DROP DATABASE IF EXISTS {name}")
    _admin(pg_admin_url, f"CREATE DATABASE {name}")
    open_store(_swap_db(pg_admin_url, name)).close()
    return name


@pytest.fixture
def pg_url(pg_admin_url: str, pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    name = f"fleetforge_t{os.getpid()}_{next(_db_numbers)}"
    _admin(pg_admin_url, f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    yield _swap_db(pg_admin_url, name)
    _admin(pg_admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[EventStore]:
    """An open, empty store, once per backend."""
    with open_store(store_url) as opened:
        yield opened


# ── spans: one in-memory exporter on the process's tracer provider ────────────────────────────

_SPAN_EXPORTER: Any = None


@pytest.fixture
def spans() -> Iterator[Any]:
    """The spans finished during the test (OpenTelemetry SDK, in memory)."""
    global _SPAN_EXPORTER
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    if _SPAN_EXPORTER is None:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        _SPAN_EXPORTER = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_SPAN_EXPORTER))
    _SPAN_EXPORTER.clear()
    yield _SPAN_EXPORTER
    _SPAN_EXPORTER.clear()
