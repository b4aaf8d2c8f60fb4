"""``SyncFleetClient``: the :class:`FleetClient` API without ``await`` (CLI, scripts, notebooks).

It runs the async client on an event loop in a background thread (anyio's blocking portal)::

    with SyncFleetClient.connect("http://127.0.0.1:8765/mcp", token="ffk_...") as fleet:
        run = fleet.submit_run(spec)

Every method of :class:`FleetClient` is available with the same arguments and results.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Self

from anyio.from_thread import BlockingPortal, start_blocking_portal

from fleetforge.client._client import FleetClient
from fleetforge.errors import UsageError

__all__ = ["SyncFleetClient"]


class SyncFleetClient:
    """A blocking face over a :class:`FleetClient`; use it as a context manager."""

    def __init__(self, client: FleetClient) -> None:
        self.client = client
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._client_cm: AbstractContextManager[FleetClient] | None = None

    @classmethod
    def local(cls, store: Any = None, **options: Any) -> SyncFleetClient:
        return cls(FleetClient.local(store, **options))

    @classmethod
    def stdio(cls, command: Any = None, **options: Any) -> SyncFleetClient:
        return cls(FleetClient.stdio(command, **options))

    @classmethod
    def connect(cls, url: str, **options: Any) -> SyncFleetClient:
        return cls(FleetClient.connect(url, **options))

    def __enter__(self) -> Self:
        self._portal_cm = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        # One task of the portal enters and exits the client: the transports' task groups must
        # be left by the task that entered them (a call per step would enter and exit in two).
        self._client_cm = self._portal.wrap_async_context_manager(self.client)
        try:
            self._client_cm.__enter__()
        except BaseException as exc:
            self._client_cm = None
            self._portal_cm.__exit__(type(exc), exc, exc.__traceback__)
            self._portal = self._portal_cm = None
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        portal, cm, client_cm = self._portal, self._portal_cm, self._client_cm
        self._portal = self._portal_cm = self._client_cm = None
        if portal is not None and cm is not None:
            try:
                if client_cm is not None:
                    client_cm.__exit__(exc_type, exc, tb)
            finally:
                cm.__exit__(exc_type, exc, tb)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)
        if not callable(method) or name.startswith("_"):
            raise AttributeError(name)

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            if self._portal is None:
                raise UsageError("the client is not open: use `with SyncFleetClient...`")
            return self._portal.call(functools.partial(method, *args, **kwargs))

        return call
