import socket

import pytest


def test_non_loopback_connections_fail() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock, pytest.raises(AssertionError, match="tests run offline"):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1: never reachable anyway


def test_loopback_connections_are_allowed() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    with server, socket.create_connection(server.getsockname(), timeout=5):
        pass
