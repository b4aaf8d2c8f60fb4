"""Fleet-level alert settings: ``$FLEETFORGE_HOME/alerts.toml``.

.. code-block:: toml

    [dispatch]              # how the outbox is delivered (all optional)
    max_attempts = 8        # deliveries before an alert is a dead letter
    backoff_s = 2.0         # delay before the second attempt; doubles per attempt
    max_backoff_s = 600.0   # ... up to this
    jitter = 0.2            # +-20% of each delay, at random
    timeout_s = 10.0        # one HTTP delivery

    [policies.oncall]       # a fleet policy: applies to the events of every run and worker
    events = ["worker_offline", "run_failed"]
    min_interval_s = 300
    escalate_after_s = 900
    endpoints = [
        { channel = "webhook", url = "https://hooks.example/fleet",
          secret_ref = { ref = "env://FLEET_WEBHOOK_SECRET" } },
    ]

A run's own policy (the run spec's ``alerts``) applies to that run's events besides these.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleetforge.contracts import FleetAlertPolicy
from fleetforge.errors import ContractError, ErrorDetail
from fleetforge.fleet.settings import fleet_home, read_toml
from fleetforge.validation import pydantic_details

__all__ = ["AlertSettings", "DispatchSettings", "alerts_path", "load_alert_settings"]


@dataclass(frozen=True)
class DispatchSettings:
    """How the outbox is delivered."""

    max_attempts: int = 8
    backoff_s: float = 2.0
    max_backoff_s: float = 600.0
    jitter: float = 0.2
    timeout_s: float = 10.0

    def delay(self, attempt: int, unit: float) -> float:
        """Seconds before the attempt after ``attempt`` (1-based), given ``unit`` in [-1, 1]."""
        base: float = min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1))
        return max(0.0, base * (1 + self.jitter * unit))


@dataclass(frozen=True)
class AlertSettings:
    """Fleet policies by name, and the dispatch settings."""

    policies: Mapping[str, FleetAlertPolicy] = field(default_factory=dict)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)


def alerts_path(environ: Mapping[str, str] | None = None) -> Path:
    """``FLEETFORGE_ALERTS`` if set, else ``$FLEETFORGE_HOME/alerts.toml``."""
    env = os.environ if environ is None else environ
    if env.get("FLEETFORGE_ALERTS"):
        return Path(env["FLEETFORGE_ALERTS"])
    return fleet_home(env) / "alerts.toml"


def load_alert_settings(path: Path | None = None) -> AlertSettings:
    """The settings in ``path`` (default :func:`alerts_path`); none when there is no file."""
    path = alerts_path() if path is None else path
    document = read_toml(path)
    if document is None:
        return AlertSettings()
    return parse_alert_settings(document, source=str(path))


def parse_alert_settings(document: Mapping[str, Any], *, source: str) -> AlertSettings:
    """Settings from a parsed document; ContractError with a pointer for each problem."""
    unknown = set(document) - {"dispatch", "policies"}
    if unknown:
        raise ContractError(
            f"{source}: unknown section(s) {', '.join(sorted(unknown))}",
            details=[ErrorDetail(f"/{name}", "unknown section") for name in sorted(unknown)],
        )
    dispatch = document.get("dispatch", {})
    fields = set(DispatchSettings.__dataclass_fields__)
    bad = [k for k, v in dispatch.items() if k not in fields or not isinstance(v, int | float)]
    if bad or not isinstance(dispatch, dict):
        raise ContractError(
            f"{source}: [dispatch] takes numbers for {', '.join(sorted(fields))}",
            details=[ErrorDetail(f"/dispatch/{k}", "unknown or not a number") for k in bad],
        )
    settings = DispatchSettings(**dispatch)
    if settings.max_attempts < 1 or settings.backoff_s < 0 or not 0 <= settings.jitter <= 1:
        raise ContractError(f"{source}: [dispatch] needs max_attempts >= 1, backoff_s >= 0 "
                            "and jitter between 0 and 1")  # fmt: skip
    policies: dict[str, FleetAlertPolicy] = {}
    for name, body in (document.get("policies") or {}).items():
        try:
            policies[name] = FleetAlertPolicy.model_validate(body)
        except ValidationError as exc:
            details = pydantic_details(exc, prefix=f"/policies/{name}")
            message = f"{source}: policy '{name}' is not valid"
            raise ContractError(message, details=details) from None
    return AlertSettings(policies=policies, dispatch=settings)
