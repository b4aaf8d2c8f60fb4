"""Alerts that reach people (issue 23): an outbox written with the event it reports, delivered
at least once to a Standard Webhooks receiver with backoff, deduplicated, escalated, dead
letters; on both stores."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
from standardwebhooks.webhooks import Webhook

from fleetforge.contracts import FleetAlertPolicy, FleetReceipt
from fleetforge.errors import ContractError
from fleetforge.fleet.alerts.admin import list_alerts, retry_alerts
from fleetforge.fleet.alerts.config import AlertSettings, DispatchSettings, parse_alert_settings
from fleetforge.fleet.alerts.dispatcher import AlertDispatcher
from fleetforge.fleet.clock import ManualClock
from fleetforge.fleet.replay import verify
from fleetforge.fleet.service import SyncFleetService
from fleetforge.fleet.store import EventStore

SECRET = "whsec_" + base64.b64encode(b"alert-signing-sentinel-0123").decode()
FLEETFORGE = str(Path(sys.executable).with_name("fleetforge"))


class Receiver:
    """A loopback webhook receiver: fails the first ``fail`` deliveries with HTTP 500 (or holds
    them until released), verifies each signature, and accepts each webhook-id once."""

    def __init__(self, fail: int = 0, hold: bool = False) -> None:
        self.fail = fail
        self.hold = hold
        self.requests: list[dict[str, Any]] = []
        self.accepted: dict[str, dict[str, Any]] = {}
        self.holding = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    receiver.requests.append({"headers": headers, "body": body})
                    number = len(receiver.requests)
                if receiver.hold and number == 1:
                    receiver.holding.set()
                    receiver.release.wait(30)
                    return  # the sender is gone: no answer
                status = 500 if number <= receiver.fail else 200
                if status == 200:
                    if "webhook-id" in headers:
                        payload = Webhook(SECRET).verify(body, headers)  # raises if forged
                    else:  # apprise (slack, email, pagerduty through apprise URLs)
                        payload = json.loads(body)
                        headers["webhook-id"] = str(number)
                    with receiver.lock:
                        receiver.accepted.setdefault(headers["webhook-id"], payload)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("FLEETFORGE_HOME", str(tmp_path / "home"))


def endpoint(url: str) -> dict[str, Any]:
    return {"channel": "webhook", "url": url, "secret_ref": {"ref": "env://HOOK_SECRET"}}


def failing_run(url: str, events: list[str], **policy: Any) -> dict[str, Any]:
    return {
        "name": "alerting",
        "seed": 1,
        "alerts": {"events": events, "endpoints": [endpoint(url)], **policy},
        "steps": [
            {
                "id": "a",
                "type": "tool",
                "tool": "t",
                "retry": {"max_attempts": 3, "backoff_s": 0, "jitter": 0},
            },
        ],
    }


def service(store: EventStore, clock: ManualClock, **settings: Any) -> SyncFleetService:
    fleet = SyncFleetService(store, clock=clock, alerts=AlertSettings(**settings))
    fleet.register_worker({"worker_id": "w1", "tools": ["*"]})
    return fleet


def fail_once(fleet: SyncFleetService, kind: str = "transient") -> bool:
    [entry] = fleet.lease_task("w1")
    assert entry.lease is not None
    return fleet.fail_task(entry.task.task_id, entry.lease.fencing_token, kind, "boom")


def dispatcher(store: EventStore, clock: ManualClock, **dispatch: Any) -> AlertDispatcher:
    settings = AlertSettings(dispatch=DispatchSettings(**{"jitter": 0, **dispatch}))
    return AlertDispatcher(store, settings=settings, clock=clock)


def types_of(store: EventStore) -> list[str]:
    return [r.type for r in store.query_rows(limit=100_000)]


def test_a_failed_run_alerts_once_after_two_failed_deliveries_with_a_valid_signature(
    store: EventStore, clock: ManualClock
) -> None:
    fleet = service(store, clock)
    with Receiver(fail=2) as hook:
        fleet.submit_run(failing_run(hook.url, ["run_failed"]))
        while fail_once(fleet, "agent_error"):
            pass
        types = types_of(store)
        # the outbox row is written in the transaction of the event it reports
        assert types[types.index("run_failed") + 1] == "alert_fired"
        assert hook.requests == []  # the write path did not wait on the network
        send = dispatcher(store, clock, backoff_s=10, max_attempts=5)
        assert anyio.run(send.run_once) == 1  # 500
        assert anyio.run(send.run_once) == 0  # not due before its backoff
        clock.advance(10)
        assert anyio.run(send.run_once) == 1  # 500 again
        clock.advance(19)
        assert anyio.run(send.run_once) == 0  # 20 s after the second attempt, not 10
        clock.advance(1)
        assert anyio.run(send.run_once) == 1  # delivered
    assert len(hook.requests) == 3
    assert len({r["headers"]["webhook-id"] for r in hook.requests}) == 1  # one idempotency key
    [payload] = hook.accepted.values()
    assert (payload["event_class"], payload["policy"]) == ("run_failed", "run")
    assert payload["event"]["type"] == "run_failed"
    failed = [r for r in store.query_rows(limit=1000) if r.type == "alert_failed"]
    assert [f.data["attempt"] for f in failed] == [1, 2]
    gaps = [
        (failed[0].data["next_attempt_at"], failed[0].at),
        (failed[1].data["next_attempt_at"], failed[1].at),
    ]
    assert [_seconds(a) - _seconds(b) for a, b in gaps] == [10.0, 20.0]
    [row] = list_alerts(store)
    assert (row["status"], row["attempts"]) == ("delivered", 3)
    assert SECRET not in json.dumps([r.to_json() for r in store.query_rows(limit=1000)])
    assert verify(store) == []


def test_alerts_are_deduplicated_per_policy_and_subject_within_min_interval(
    store: EventStore, clock: ManualClock
) -> None:
    fleet = service(store, clock)
    spec = failing_run("http://127.0.0.1:9/none", ["task_failed"], min_interval_s=60)
    fleet.submit_run(spec)
    assert fail_once(fleet)  # alert
    clock.advance(30)
    assert fail_once(fleet)  # same task within 60 s: quiet
    clock.advance(31)
    assert not fail_once(fleet)  # 61 s after the first: alerts again
    assert types_of(store).count("alert_fired") == 2
    assert verify(store) == []


def test_fleet_policies_escalate_while_the_condition_holds(
    store: EventStore, clock: ManualClock
) -> None:
    policy = FleetAlertPolicy.model_validate(
        {"events": ["worker_offline"], "endpoints": [{"channel": "log"}], "escalate_after_s": 30}
    )
    fleet = service(store, clock, policies={"oncall": policy})
    fleet.register_worker({"worker_id": "w2"})
    clock.advance(120)
    fleet.worker_heartbeat("w1")
    assert fleet.mark_offline_workers(after_seconds=60) == ["w2"]
    send = dispatcher(store, clock)
    assert anyio.run(send.run_once) == 1  # delivered to the log
    clock.advance(31)
    assert anyio.run(send.run_once) == 2  # escalated, and that one delivered
    clock.advance(100)
    assert anyio.run(send.run_once) == 0  # escalated once only
    rows = list_alerts(store)
    assert [(r["escalation"], r["status"], r["subject"]) for r in rows] == [
        (1, "delivered", "w2"),
        (0, "delivered", "w2"),
    ]
    assert rows[0]["policy"] == "fleet:oncall"
    assert verify(store) == []


def test_a_dead_letter_after_max_attempts_can_be_sent_again(
    store: EventStore, clock: ManualClock
) -> None:
    fleet = service(store, clock, dispatch=DispatchSettings(max_attempts=2))  # recorded per alert
    with Receiver(fail=100) as hook:
        fleet.submit_run(failing_run(hook.url, ["task_failed"]))
        fail_once(fleet)
        send = dispatcher(store, clock, backoff_s=1)
        anyio.run(send.run_once)
        clock.advance(1)
        anyio.run(send.run_once)
        [row] = list_alerts(store)
        assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("dead", 2, None)
        assert row["last_error"] == "webhook answered HTTP 500"
        assert retry_alerts(store, ["alrt_nope"], by="test") == (["alrt_nope"], [])
        assert retry_alerts(store, [row["alert_id"]], by="test", clock=clock) == (
            [], [row["alert_id"]])  # fmt: skip
        assert list_alerts(store)[0]["status"] == "pending"
        hook.fail = 0
        anyio.run(send.run_once)
    assert list_alerts(store)[0]["status"] == "delivered"
    assert verify(store) == []


def test_a_human_step_waiting_alerts_through_an_apprise_url(
    store: EventStore, clock: ManualClock
) -> None:
    fleet = service(store, clock)
    with Receiver() as hook:
        url = hook.url.replace("http://", "json://")  # apprise's JSON service, on loopback
        spec = {
            "name": "approve-me",
            "seed": 1,
            "alerts": {"events": ["approval_required"],
                       "endpoints": [{"channel": "slack", "url": url}]},
            "steps": [{"id": "a", "type": "tool", "tool": "t"},
                      {"id": "ok", "type": "human", "prompt": "Ship it?", "depends_on": ["a"]}],
        }  # fmt: skip
        run = fleet.submit_run(spec)
        assert types_of(store).count("alert_fired") == 0  # step a is not a human step
        [entry] = fleet.lease_task("w1")
        fleet.post_receipt(FleetReceipt.success(entry, "done"))
        assert anyio.run(dispatcher(store, clock).run_once) == 1
    [body] = hook.accepted.values()
    assert body["title"] == f"FleetForge: approval_required ({run.run_id}.ok)"
    assert list_alerts(store)[0]["status"] == "delivered"
    assert verify(store) == []


def test_alert_settings_errors_name_the_field() -> None:
    with pytest.raises(ContractError) as caught:
        parse_alert_settings({"policies": {"x": {"events": ["nope"], "endpoints": []}}},
                             source="alerts.toml")  # fmt: skip
    pointers = [d.pointer for d in caught.value.details]
    assert "/policies/x/events/0" in pointers
    assert "/policies/x/endpoints" in pointers
    with pytest.raises(ContractError, match="unknown section"):
        parse_alert_settings({"polices": {}}, source="alerts.toml")
    with pytest.raises(ContractError, match=r"\[dispatch\]"):
        parse_alert_settings({"dispatch": {"max_attempts": "many"}}, source="alerts.toml")


def test_a_dispatcher_killed_mid_delivery_delivers_at_least_once_on_restart(
    store_url: str, store: EventStore, tmp_path: Path
) -> None:
    fleet = SyncFleetService(store, alerts=AlertSettings())
    fleet.register_worker({"worker_id": "w1", "tools": ["*"]})
    env = os.environ | {"FLEETFORGE_STORE": store_url, "FLEETFORGE_HOME": str(tmp_path / "h")}
    with Receiver(hold=True) as hook:
        fleet.submit_run(failing_run(hook.url, ["task_failed"]))
        fail_once(fleet)
        first = subprocess.Popen([FLEETFORGE, "alerts", "run"], env=env,
                                 stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            assert hook.holding.wait(60), "the dispatcher never called"
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        assert list_alerts(store)[0]["status"] == "pending"
        second = subprocess.run([FLEETFORGE, "alerts", "run", "--once"], env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        # the killed dispatcher's claim has not run out yet: nothing sent before it does
        assert second.returncode == 0, second.stderr
        with store.backend.write() as tx:
            tx.execute("DELETE FROM alert_claims")  # as if its claim ran out
        third = subprocess.run([FLEETFORGE, "alerts", "run", "--once"], env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert third.returncode == 0, third.stderr
    assert len(hook.requests) == 2  # sent twice (at least once) ...
    assert len(hook.accepted) == 1  # ... accepted once, by its webhook-id
    assert list_alerts(store)[0]["status"] == "delivered"
    assert verify(store) == []


def _seconds(text: str) -> float:
    from fleetforge.fleet._state import to_dt

    at = to_dt(text)
    assert at is not None
    return at.timestamp()


def test_the_outbox_is_listed_and_retried_over_http_by_scope(
    store: EventStore, clock: ManualClock, tmp_path: Path
) -> None:
    """list_alerts and retry_alerts are operations: a read token lists, only admin retries,
    and the serve's own dispatcher delivers what was retried."""
    import time

    from fleetforge.client import SyncFleetClient
    from fleetforge.errors import ForbiddenError, NotFoundError
    from fleetforge.fleet.tokens import TokenStore

    from .test_mcp_transports import fleet_env, http_server

    fleet = service(store, clock, dispatch=DispatchSettings(max_attempts=1))
    tokens = TokenStore(store)
    reader, _ = tokens.create("reader", ["read"])
    admin, _ = tokens.create("admin", ["admin"])
    with Receiver(fail=100) as hook:
        fleet.submit_run(failing_run(hook.url, ["task_failed"]))
        fail_once(fleet)
        anyio.run(dispatcher(store, clock).run_once)
        [row] = list_alerts(store)
        assert row["status"] == "dead"
        with http_server(fleet_env(tmp_path, store.url)) as url:
            with SyncFleetClient.connect(url, token=reader) as fleet_:
                [alert] = fleet_.list_alerts(status="dead").alerts
                assert (alert.alert_id, alert.attempts, alert.last_error) == (
                    row["alert_id"], 1, "webhook answered HTTP 500")  # fmt: skip
                assert fleet_.list_alerts(status="delivered").alerts == []
                with pytest.raises(ForbiddenError):
                    fleet_.retry_alerts([alert.alert_id])
            with SyncFleetClient.connect(url, token=admin) as fleet_:
                with pytest.raises(NotFoundError, match="alrt_nope") as missing:
                    fleet_.retry_alerts([alert.alert_id, "alrt_nope"])
                assert [d.pointer for d in missing.value.details] == ["/alert_ids/1"]
                with pytest.raises(ContractError) as nul:  # the same on both stores
                    fleet_.retry_alerts([alert.alert_id, "alrt_\x00"])
                assert [d.pointer for d in nul.value.details] == ["/alert_ids/1"]
                assert list_alerts(store)[0]["status"] == "dead"  # all or nothing
                hook.fail = 0
                assert fleet_.retry_alerts([alert.alert_id]).alert_ids == [alert.alert_id]
            deadline = time.monotonic() + 20  # the serve's dispatcher sends it again
            while list_alerts(store)[0]["status"] != "delivered":
                assert time.monotonic() < deadline, list_alerts(store)
                time.sleep(0.05)
    assert len(hook.accepted) == 1
    assert verify(store) == []
