"""The dispatcher: delivers the outbox at least once, retries with exponential backoff and
jitter, turns an alert into a dead letter after ``max_attempts``, and escalates.

Each pass (:meth:`AlertDispatcher.run_once`) reads the due alerts, claims them (a short row in
``alert_claims``, so two dispatchers on one store do not send the same alert at the same time),
delivers them concurrently outside any transaction, then records each outcome as an
``alert_delivered`` or ``alert_failed`` event in one transaction, only if the alert is still
where the pass found it. A dispatcher killed between sending and recording sends again on its
next start: receivers drop the duplicate by its ``webhook-id`` (the alert id), which is the
same on every attempt.

Escalation: an alert whose policy has ``escalate_after_s`` is fired again once (escalation 1)
when that long has passed and the condition still holds (the run still failed or paused, the
step still waiting for approval, the worker still offline, the task still failed).
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import anyio
import httpx

from fleetforge.contracts import FleetAlertEndpoint
from fleetforge.fleet._events import engine_row
from fleetforge.fleet._sql import named_queries
from fleetforge.fleet._state import to_dt
from fleetforge.fleet.alerts.channels import Delivery, Outcome, deliver
from fleetforge.fleet.alerts.config import AlertSettings, load_alert_settings
from fleetforge.fleet.clock import Clock, clock_for
from fleetforge.fleet.store import EventRow, EventStore, Tx
from fleetforge.fleet.store._base import iso
from fleetforge.ids import new_id
from fleetforge.redaction import get_logger

__all__ = ["MIN_PASS_S", "AlertDispatcher"]

#: Shortest time between two passes of an idle dispatcher, seconds.
MIN_PASS_S = 0.25

Q = named_queries("service.sql")
log = get_logger("fleetforge.alerts")

#: What must still hold, per class, for an alert to be escalated.
_PERSISTS = {
    "run_failed": ("run", {"failed"}),
    "budget_exceeded": ("run", {"failed", "paused"}),
    "breakpoint_hit": ("run", {"paused"}),
    "approval_required": ("step", {"ready"}),
    "worker_offline": ("worker", {"offline"}),
    "task_failed": ("task", {"failed"}),
}


class AlertDispatcher:
    """Delivers a store's alert outbox (see the module doc)."""

    def __init__(
        self,
        store: EventStore,
        *,
        settings: AlertSettings | None = None,
        clock: Clock | None = None,
        batch: int = 200,
        concurrency: int = 32,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.store = store
        self.settings = load_alert_settings() if settings is None else settings
        self.clock = clock or clock_for(store)
        self.batch = batch
        self.concurrency = concurrency
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_id('dsp')}"
        self._transport = transport
        self.delivered = 0
        self.failed = 0
        self._settled: set[str] = set()  # escalations that fell due with nothing to escalate

    async def run(self, *, stop: anyio.Event | None = None, idle_s: float = 1.0) -> None:
        """Deliver until ``stop`` is set (or the task is cancelled): a pass, then, when it found
        nothing to do, a wait of up to ``idle_s`` for new events."""
        stop = stop or anyio.Event()
        async with self._client() as client:
            while not stop.is_set():
                started = anyio.current_time()
                handled = await self.run_once(client)
                if handled == 0:
                    with anyio.move_on_after(idle_s):
                        await anyio.to_thread.run_sync(
                            self.store.backend.wait_for_events, idle_s, abandon_on_cancel=True
                        )
                    # a busy fleet commits all the time: look at most every MIN_PASS_S
                    await anyio.sleep(max(0.0, MIN_PASS_S - (anyio.current_time() - started)))

    async def run_once(self, client: httpx.AsyncClient | None = None) -> int:
        """One pass: escalate what is due, deliver what is due; return how many it handled."""
        if client is None:
            async with self._client() as own:
                return await self.run_once(own)
        escalated = await anyio.to_thread.run_sync(self._escalate)
        claimed = await anyio.to_thread.run_sync(self._claim_due)
        if not claimed:
            return escalated
        outcomes: dict[str, Outcome] = {}
        limiter = anyio.Semaphore(self.concurrency)

        async def one(delivery: Delivery) -> None:
            async with limiter:
                outcomes[delivery.alert_id] = await deliver(delivery, client)

        async with anyio.create_task_group() as group:
            for delivery in claimed:
                group.start_soon(one, delivery)
        await anyio.to_thread.run_sync(self._record, claimed, outcomes)
        return escalated + len(claimed)

    def _client(self) -> httpx.AsyncClient:
        timeout = httpx.Timeout(self.settings.dispatch.timeout_s)
        return httpx.AsyncClient(timeout=timeout, transport=self._transport)

    # ── claim, record ─────────────────────────────────────────────────────────────────────────

    def _claim_due(self) -> list[Delivery]:
        now = self.clock.now()
        until = now + timedelta(seconds=2 * self.settings.dispatch.timeout_s + 30)
        with self.store.backend.read() as tx:  # a read first: an idle pass writes nothing
            if not tx.fetchall(Q["alerts_due"], {"now": iso(now), "limit": 1}):
                return []
        with self.store.backend.write() as tx:
            rows = tx.fetchall(Q["alerts_due"], {"now": iso(now), "limit": self.batch})
            claimed = []
            for alert_id, endpoint, payload, attempts, max_attempts in rows:
                params = {"alert_id": alert_id, "owner": self.owner, "until": iso(until),
                          "now": iso(now)}  # fmt: skip
                if tx.fetchone(Q["alert_claim"], params) is None:
                    continue  # another dispatcher is sending it
                claimed.append(
                    Delivery(
                        alert_id,
                        FleetAlertEndpoint.model_validate(tx.load_json(endpoint)),
                        tx.load_json(payload),
                        attempts + 1,
                        int(max_attempts),
                    )
                )
        return claimed

    def _record(self, claimed: Iterable[Delivery], outcomes: dict[str, Outcome]) -> None:
        now = self.clock.now()
        dispatch = self.settings.dispatch
        with self.store.transaction() as unit:
            events: list[EventRow] = []
            for delivery in claimed:
                outcome = outcomes.get(delivery.alert_id, Outcome(False, error="not attempted"))
                state = unit.tx.fetchone(Q["alert_state"], {"alert_id": delivery.alert_id})
                unit.tx.execute(Q["alert_unclaim"], {"alert_id": delivery.alert_id,
                                                     "owner": self.owner})  # fmt: skip
                if state is None or state[0] != "pending" or state[1] != delivery.attempt - 1:
                    continue  # recorded meanwhile (another dispatcher, or a retry by hand)
                run_id = delivery.payload.get("run_id")
                if outcome.ok:
                    self.delivered += 1
                    events.append(engine_row("alert_delivered", run_id, now, {
                        "alert_id": delivery.alert_id, "attempt": delivery.attempt,
                        "status_code": outcome.status_code}))  # fmt: skip
                    continue
                self.failed += 1
                retry_at = None
                if delivery.attempt < delivery.max_attempts:
                    delay = dispatch.delay(delivery.attempt, random.uniform(-1, 1))
                    retry_at = now + timedelta(seconds=delay)
                log.warning("alert %s attempt %d failed: %s%s", delivery.alert_id,
                            delivery.attempt, outcome.error,
                            "" if retry_at else " (dead letter)")  # fmt: skip
                events.append(engine_row("alert_failed", run_id, now, {
                    "alert_id": delivery.alert_id, "attempt": delivery.attempt,
                    "error": outcome.error or "failed", "next_attempt_at": retry_at}))  # fmt: skip
            unit.append_rows(events)

    # ── escalation ────────────────────────────────────────────────────────────────────────────

    def _escalate(self) -> int:
        """Fire once more the alerts whose escalation fell due while their condition holds. An
        alert is looked at once when it falls due: if the condition no longer holds then, it is
        settled (this dispatcher does not look again on every pass)."""
        now = self.clock.now()
        with self.store.backend.read() as tx:
            due = [
                r
                for r in tx.fetchall(Q["alerts_to_escalate"])
                if r[0] not in self._settled and _fired(r[5]) + timedelta(seconds=r[4]) <= now
            ]
            holding = [r for r in due if _persists(tx, r[1], r[2], r[3])]
        self._settled.update(r[0] for r in due if r not in holding)
        if not holding:
            return 0
        with self.store.transaction() as unit:
            events = []
            for alert_id, event_class, subject, run_id, _after, _at in holding:
                state = unit.tx.fetchone(Q["alert_escalated_by"], {"alert_id": alert_id})
                if state is None or state[0] is not None:
                    continue
                events.append(self._escalation(alert_id, event_class, subject, run_id,
                                               unit.tx.load_json(state[1]),
                                               unit.tx.load_json(state[2]), now))  # fmt: skip
            unit.append_rows(events)
        return len(events)

    def _escalation(
        self,
        escalates: str,
        event_class: str,
        subject: str,
        run_id: str | None,
        endpoint: dict[str, Any],
        payload: dict[str, Any],
        now: datetime,
    ) -> EventRow:
        alert_id = new_id("alrt")
        body = payload | {"alert_id": alert_id, "escalation": 1, "escalates": escalates,
                          "at": iso(now)}  # fmt: skip
        return engine_row("alert_fired", run_id, now, {
            "alert_id": alert_id, "policy": payload.get("policy", "run"),
            "event_class": event_class, "subject": subject, "endpoint": endpoint,
            "payload": body, "max_attempts": self.settings.dispatch.max_attempts,
            "escalation": 1, "escalates": escalates, "escalate_after_s": None})  # fmt: skip


def _fired(value: Any) -> datetime:
    at = to_dt(value)
    if at is None:
        raise ValueError("an alert without fired_at")
    return at


def _persists(tx: Tx, event_class: str, subject: str, run_id: str | None) -> bool:
    """Whether the condition an alert reported still holds."""
    rule = _PERSISTS.get(event_class)
    if rule is None:
        return False
    kind, statuses = rule
    if kind == "run":
        row = tx.fetchone(Q["run_status"], {"run_id": run_id})
    elif kind == "worker":
        row = tx.fetchone(Q["worker_status"], {"worker_id": subject})
    elif kind == "task":
        row = tx.fetchone(Q["task_status"], {"task_id": subject})
    else:
        step_id = subject.removeprefix(f"{run_id}.")
        row = tx.fetchone(Q["step_status"], {"run_id": run_id, "step_id": step_id})
    return row is not None and row[0] in statuses
