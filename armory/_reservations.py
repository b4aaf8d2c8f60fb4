"""The workspace pack's reservation guard (issue 22, docs/coordination.md): a write to a path
another agent of the project holds exclusively is refused, naming the holder.

The pack gets the fleet and its identity from its environment: ``FLEETFORGE_AGENT`` (the
callsign it writes as; no guard without it), ``FLEETFORGE_PROJECT`` (default: the workspace
root's folder name), and ``FLEETFORGE_STORE`` (default ``$FLEETFORGE_HOME/fleet.db``) or
``FLEETFORGE_URL`` with ``FLEETFORGE_TOKEN``. The fleet is opened on the first write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mcp.server.fastmcp.exceptions import ToolError

__all__ = ["ReservationGuard"]


class _Opened(NamedTuple):
    check: Callable[[list[str]], Any]
    close: Callable[[], Any]


class ReservationGuard:
    """Checks a workspace write against the project's reservations."""

    def __init__(self, project: str, agent: str, opener: Callable[[], _Opened | None]) -> None:
        self.project = project
        self.agent = agent
        self._opener = opener
        self._opened: _Opened | None = None
        self._tried = False
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str], root: Path) -> ReservationGuard | None:
        """The guard the environment asks for, or None (no ``FLEETFORGE_AGENT``)."""
        agent = environ.get("FLEETFORGE_AGENT")
        if not agent:
            return None
        project = environ.get("FLEETFORGE_PROJECT") or root.resolve().name
        url, token = environ.get("FLEETFORGE_URL"), environ.get("FLEETFORGE_TOKEN")
        store = environ.get("FLEETFORGE_STORE")

        def open_local() -> _Opened | None:
            from fleetforge.errors import NotFoundError
            from fleetforge.fleet.clock import clock_for
            from fleetforge.fleet.coord import Coordination
            from fleetforge.fleet.settings import store_url
            from fleetforge.fleet.store import open_store

            try:
                opened = open_store(store_url(store), create=False)
            except NotFoundError:
                return None  # no fleet store: nothing is reserved
            coord = Coordination(opened, clock_for(opened))
            return _Opened(
                lambda paths: coord.check_paths(project, paths, agent=agent), opened.close
            )

        def open_remote() -> _Opened | None:
            from fleetforge.client import SyncFleetClient

            client = SyncFleetClient.connect(url or "", token=token)
            client.__enter__()
            return _Opened(
                lambda paths: client.check_paths(project, paths, agent=agent),
                lambda: client.__exit__(None, None, None),
            )

        return cls(project, agent, open_remote if url else open_local)

    def check(self, path: str) -> None:
        """Raise ToolError naming the holder when another agent holds ``path`` exclusively."""
        from fleetforge.errors import FleetForgeError

        with self._lock:
            if not self._tried:
                self._opened = self._opener()
                self._tried = True
            opened = self._opened
        if opened is None:
            return
        try:
            found = opened.check([path])
        except FleetForgeError as exc:
            raise ToolError(f"cannot check reservations of {path!r}: {exc.message}") from None
        if not found.ok:
            held = found.blocked[0]
            until = held.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            raise ToolError(
                f"{path!r} is reserved by {held.holder} ({held.pattern}, until {until}) in "
                f"project '{self.project}': message {held.holder} or wait for the release"
            )

    def close(self) -> None:
        """Close the fleet connection opened by the first check, if any."""
        with self._lock:
            opened, self._opened = self._opened, None
        if opened is not None:
            opened.close()
