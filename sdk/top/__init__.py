"""``fleetforge top``: a live terminal view of the fleet (Textual, the ``ui`` extra).

:class:`FleetModel` (plain Python) folds the event log into what the view draws; the Textual
app (:mod:`._app`) is imported only by :func:`load_app`, which says which extra to install when
Textual is missing.
"""

from __future__ import annotations

from typing import Any

from fleetforge.errors import UsageError
from fleetforge.top._model import Alert, FleetModel, RunLine, WorkerLine

__all__ = ["Alert", "FleetModel", "RunLine", "WorkerLine", "load_app"]


def load_app() -> Any:
    """The ``TopApp`` class; UsageError naming the ``ui`` extra when Textual is not installed."""
    try:
        from fleetforge.top._app import TopApp
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] in ("textual", "rich"):
            raise UsageError("fleetforge top needs Textual: pip install 'fleetforge[ui]'") from None
        raise
    return TopApp
