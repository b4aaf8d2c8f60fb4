"""Test-wide settings: a hypothesis profile for CI and a guard against real network access."""

from __future__ import annotations

import ipaddress
import os
import socket
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
