"""What a failed connection to a fleet server means, and whether trying again can help.

Permanent (raised at once): the connection was refused, the host name does not resolve, the
token was refused (HTTP 401), the URL is not a fleet server (HTTP 404). Transient (tried again
a few times, with a visible wait): a timeout, a connection reset or closed early, HTTP 502, 503
or 504 from a proxy in front of a restarting server.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

from fleetforge.errors import AuthError, FleetForgeError, UnavailableError, UsageError
from fleetforge.redaction import mask_url

__all__ = ["Failure", "classify"]

Failure = tuple[FleetForgeError, bool]  # the error to raise, and whether a retry may help

_TRANSIENT_STATUS = {502, 503, 504}


def classify(exc: BaseException, url: str) -> Failure | None:
    """The error a failed connection to ``url`` is (None: not a connection failure)."""
    import httpx

    where = mask_url(url)
    for leaf in _leaves(exc):
        if isinstance(leaf, FleetForgeError):
            return leaf, False
        if isinstance(leaf, httpx.HTTPStatusError):
            return _status(leaf.response.status_code, where)
        if "Session terminated" in str(leaf):  # the MCP client's word for an HTTP 404
            return _status(404, where)
        for cause in _chain(leaf):
            if isinstance(cause, socket.gaierror):
                host = httpx.URL(url).host
                return UnavailableError(
                    f"cannot reach the fleet server at {where}: unknown host {host!r} (check "
                    "the host name in --url)",
                    url=where,
                ), False
            if isinstance(cause, ConnectionRefusedError):
                return UnavailableError(
                    f"cannot reach the fleet server at {where}: connection refused (is "
                    "'fleetforge serve' running there? check the host and port in --url)",
                    url=where,
                ), False
        if isinstance(leaf, httpx.TimeoutException | TimeoutError):
            return UnavailableError(
                f"the fleet server at {where} did not answer in time", url=where
            ), True
        if isinstance(leaf, httpx.TransportError | ConnectionError):
            return UnavailableError(
                f"lost the connection to the fleet server at {where} "
                f"({_text(leaf) or type(leaf).__name__})",
                url=where,
            ), True
    return None


def _status(status: int, where: str) -> Failure:
    if status == 401:
        return AuthError(
            f"the fleet server at {where} refused the token (HTTP 401): check --token or "
            "$FLEETFORGE_TOKEN ('fleetforge token list' on the server shows the tokens)",
            url=where,
        ), False
    if status == 404:
        return UnavailableError(
            f"no fleet server at {where} (HTTP 404): the MCP endpoint is the server's /mcp "
            "path (or the server restarted and ended this session)",
            url=where,
        ), False
    if status == 421:
        return UsageError(
            f"the fleet server at {where} refused this host name (HTTP 421): start it with "
            "'fleetforge serve --allowed-host HOST:PORT'",
            url=where,
        ), False
    if status in _TRANSIENT_STATUS:
        return UnavailableError(
            f"the fleet server at {where} is unavailable (HTTP {status})", url=where
        ), True
    return FleetForgeError(f"the fleet server at {where} answered HTTP {status}"), False


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _text(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else ""
