"""How an alert travels: ``webhook`` (an HTTP POST signed as the Standard Webhooks spec says),
``slack`` / ``email`` / ``pagerduty`` (an `apprise <https://github.com/caronc/apprise>`_ URL,
the ``alerts`` extra) and ``log`` (a line on the ``fleetforge.alerts`` logger).

An endpoint's URL (``url``, or ``url_ref`` to a secret) and signing secret (``secret_ref``) are
resolved at delivery, never stored resolved; errors say what failed without them.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import httpx

from fleetforge.contracts import FleetAlertEndpoint
from fleetforge.errors import FleetForgeError
from fleetforge.redaction import get_logger, redact

__all__ = ["Delivery", "Outcome", "deliver"]

log = get_logger("fleetforge.alerts")


@dataclass(frozen=True)
class Delivery:
    """One attempt at one alert."""

    alert_id: str
    endpoint: FleetAlertEndpoint
    payload: dict[str, Any]
    attempt: int
    max_attempts: int = 1  # after a failed last attempt the alert is a dead letter


@dataclass(frozen=True)
class Outcome:
    """What an attempt came to."""

    ok: bool
    status_code: int | None = None
    error: str = ""


def _url(endpoint: FleetAlertEndpoint) -> str:
    if endpoint.url_ref is not None:
        return endpoint.url_ref.resolve().get_secret_value()
    if endpoint.url is None:
        raise ValueError(f"a {endpoint.channel} endpoint needs url or url_ref")
    return endpoint.url


async def deliver(delivery: Delivery, client: httpx.AsyncClient) -> Outcome:
    """Make one attempt; never raises for a failed delivery (the outcome says why)."""
    channel = delivery.endpoint.channel
    try:
        if channel == "log":
            log.info("alert %s: %s", delivery.alert_id, json.dumps(delivery.payload))
            return Outcome(True)
        if channel == "webhook":
            return await _webhook(delivery, client)
        return await _apprise(delivery)
    except FleetForgeError as exc:
        return Outcome(False, error=exc.message)
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return Outcome(False, error=redact(f"{type(exc).__name__}: {exc}"[:300]))


async def _webhook(delivery: Delivery, client: httpx.AsyncClient) -> Outcome:
    from standardwebhooks.webhooks import Webhook

    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
    sent_at = datetime.now(UTC)  # the wall clock: receivers check it against theirs
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery.alert_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
    }
    if delivery.endpoint.secret_ref is not None:
        secret = delivery.endpoint.secret_ref.resolve().get_secret_value()
        headers["webhook-signature"] = Webhook(secret).sign(delivery.alert_id, sent_at, body)
    url = _url(delivery.endpoint)
    try:
        response = await client.post(url, content=body.encode(), headers=headers)
    except httpx.HTTPError as exc:
        host = httpx.URL(url).host
        return Outcome(False, error=f"webhook to {host}: {type(exc).__name__}")
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code)
    return Outcome(False, response.status_code, f"webhook answered HTTP {response.status_code}")


async def _apprise(delivery: Delivery) -> Outcome:
    try:
        with warnings.catch_warnings():  # apprise imports the deprecated imghdr (3.11, 3.12)
            warnings.simplefilter("ignore", DeprecationWarning)
            import apprise
    except ImportError:
        return Outcome(False, error=f"the {delivery.endpoint.channel} channel needs apprise: "
                                    "pip install 'fleetforge[alerts]'")  # fmt: skip
    url = _url(delivery.endpoint)
    payload = delivery.payload
    title = f"FleetForge: {payload.get('event_class')} ({payload.get('subject')})"
    body = json.dumps(payload.get("event", {}), indent=2, ensure_ascii=False)

    def send() -> bool:
        with warnings.catch_warnings():  # its plugins load on first use (imghdr again)
            warnings.simplefilter("ignore", DeprecationWarning)
            sender = apprise.Apprise()
            if not sender.add(url):
                raise ValueError(f"not an apprise URL for {delivery.endpoint.channel}")
            return bool(sender.notify(title=title, body=body))

    ok = await anyio.to_thread.run_sync(send)
    return Outcome(ok, error="" if ok else f"{delivery.endpoint.channel}: apprise could not send")
