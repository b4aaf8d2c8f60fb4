"""The web dashboard at /ui, over HTTP (Starlette's test client), on both stores: sign-in,
scopes, CSRF, escaping, filters and paging, the run page, actions, artifacts, the live stream.
The real-browser tests are in test_ui_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from fleetforge.fleet.artifacts import ArtifactStore
from fleetforge.fleet.service import FleetService
from fleetforge.fleet.store import EventStore
from fleetforge.fleet.tokens import TokenStore
from fleetforge.mcp_server.http import http_app
from fleetforge.mcp_server.server import ServerOptions
from fleetforge.mcp_server.ui import UiOptions
from fleetforge.mcp_server.ui._auth import COOKIE
from tests.ui_fleet import hello_fleet, human_run, register, work_one

BASE = "http://127.0.0.1:8765"


@pytest.fixture
def fleet(store: EventStore, tmp_path: Path) -> FleetService:
    return FleetService(store, artifacts=ArtifactStore(tmp_path / "artifacts"))


@pytest.fixture
def tokens(store: EventStore) -> dict[str, str]:
    made = TokenStore(store)
    return {
        name: made.create(name, scopes)[0]
        for name, scopes in (
            ("viewer", ["read"]),
            ("operator", ["read", "submit"]),
            ("w", ["work"]),
        )
    }


@pytest.fixture
def client(fleet: FleetService, tokens: dict[str, str]) -> Iterator[TestClient]:
    app = http_app(fleet, ServerOptions(auth=True))
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        yield c


def login(client: TestClient, token: str) -> None:
    reply = client.post("/ui/login", data={"token": token})
    assert reply.status_code == 303, reply.text
    cookie = reply.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/ui" in cookie


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def test_pages_need_a_login_and_a_wrong_token_is_refused(
    client: TestClient, tokens: dict[str, str]
) -> None:
    reply = client.get("/ui/")
    assert reply.status_code == 303
    assert reply.headers["location"].startswith("/ui/login")
    stream = client.get("/ui/runs/run_x/stream", headers={"accept": "text/event-stream"})
    assert stream.status_code == 401
    refused = client.post("/ui/login", data={"token": "ffk_" + "x" * 43})
    assert refused.status_code == 401
    assert "Unknown or revoked token" in refused.text
    assert "set-cookie" not in refused.headers
    client.cookies.set(COOKIE, "ffk_wrong", domain="127.0.0.1", path="/ui")
    assert client.get("/ui/").status_code == 303
    no_read = client.post("/ui/login", data={"token": tokens["w"]})
    assert no_read.status_code == 403
    assert "read scope" in no_read.text


def test_the_run_page_shows_the_graph_receipts_and_events(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    run = hello_fleet(fleet.sync)
    login(client, tokens["viewer"])
    page = client.get(f"/ui/runs/{run.run_id}")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    html = page.text
    nodes = re.findall(r'<g class="node st-(\w+)" data-step="(\w+)"', html)
    assert nodes == [("completed", s) for s in ("plan", "research", "write", "review")]
    assert (
        html.count('<path class="edge"') == 4
    )  # plan->research, plan->write, research->write, write->review
    assert html.count('class="bar out-accepted"') == 4  # one attempt each, in the Gantt chart
    assert html.count("✓ chained") == 4
    assert "chain broken" not in html
    assert html.count("✓ signed") == 4  # each attestation verifies against the trust store
    assert "receipt_recorded" in html
    assert "run_completed" in html
    assert "event sourcing for agent fleets" in html  # the inputs
    assert "Cancel run" not in html  # final, and a read token anyway
    graph = client.get(f"/ui/runs/{run.run_id}/graph")
    assert graph.headers["content-type"].startswith("image/svg+xml")
    assert 'data-run-status="completed"' in graph.text
    assert client.get("/ui/runs/run_nope").status_code == 404


def test_stored_text_is_escaped(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    evil = "<script>alert(1)</script>"
    run = fleet.sync.submit_run(
        {
            "name": evil,
            "seed": 1,
            "labels": {"x": '"><img src=x onerror=alert(1)>'},
            "inputs": {"q": evil},
            "steps": [{"id": "only", "type": "tool", "tool": "echo"}],
        }
    )
    work_one(fleet.sync, "only", {"answer": evil})
    login(client, tokens["viewer"])
    for path in ("/ui/", f"/ui/runs/{run.run_id}", "/ui/workers"):
        html = client.get(path).text
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(f"/ui/runs/{run.run_id}").text


def test_runs_list_filters_and_pages(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    done = hello_fleet(fleet.sync)
    waiting = human_run(fleet.sync)
    for i in range(5):
        fleet.sync.submit_run(
            {
                "name": f"batch-{i}",
                "seed": 1,
                "labels": {"k": str(i % 2)},
                "steps": [{"id": "s", "type": "tool", "tool": "echo"}],
            }
        )
    login(client, tokens["viewer"])

    def listed(query: str) -> list[str]:
        return re.findall(r'<tr data-run="([^"]+)"', client.get(f"/ui/?{query}").text)

    assert listed("status=completed") == [done.run_id]
    assert listed("name=needs") == [waiting.run_id]
    assert len(listed("label=k%3D1")) == 2
    assert len(listed("label=k%3D0")) == 3
    assert listed("name=%25") == []  # a LIKE wildcard is matched literally
    first = client.get("/ui/?name=batch").text
    assert len(re.findall(r'<tr data-run="', first)) == 5
    everything = []
    cursor = ""
    while True:
        page = client.get(f"/ui/?cursor={cursor}" if cursor else "/ui/?").text
        everything += re.findall(r'<tr data-run="([^"]+)"', page)
        more = re.search(r'cursor=([\w]+)"', page)
        if not more:
            break
        cursor = more.group(1)
    assert len(everything) == 7 == len(set(everything))
    assert client.get("/ui/?status=bogus").status_code == 400
    dotted = fleet.sync.submit_run(
        {
            "name": "dotted",
            "seed": 1,
            "labels": {"app.io/name": 'a "b" %'},
            "steps": [{"id": "s", "type": "tool", "tool": "echo"}],
        }
    )
    assert listed("label=app.io%2Fname%3Da+%22b%22+%25") == [dotted.run_id]
    assert listed("label=app.io%2Fname%3Da") == []


def test_paging_hands_out_a_cursor(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    from fleetforge.mcp_server.ui._reads import runs_page

    made = [
        fleet.sync.submit_run(
            {"name": f"r{i}", "seed": 1, "steps": [{"id": "s", "type": "tool", "tool": "echo"}]}
        ).run_id
        for i in range(5)
    ]
    page, cursor = runs_page(fleet.sync, limit=2)
    assert [r.run_id for r in page] == sorted(made, reverse=True)[:2]
    assert cursor == page[-1].run_id
    rest, end = runs_page(fleet.sync, limit=3, cursor=cursor)
    assert [r.run_id for r in rest] == sorted(made, reverse=True)[2:]
    assert end is None
    assert page[0].steps == {"ready": 1}


def test_approve_needs_submit_scope_and_a_csrf_token(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    run = human_run(fleet.sync)
    url = f"/ui/runs/{run.run_id}"
    login(client, tokens["viewer"])
    page = client.get(url).text
    assert "Approve sign_off" not in page
    token = csrf(page)
    denied = client.post(f"{url}/approve", data={"step_id": "sign_off", "csrf": token})
    assert denied.status_code == 403
    assert "submit scope" in denied.text

    login(client, tokens["operator"])
    page = client.get(url).text
    assert "Approve sign_off" in page
    assert "Human step <b>sign_off</b> waits" in page
    no_csrf = client.post(f"{url}/approve", data={"step_id": "sign_off"})
    wrong = client.post(f"{url}/approve", data={"step_id": "sign_off", "csrf": token})
    assert no_csrf.status_code == 403
    assert wrong.status_code == 403
    assert fleet.sync.get_run(run.run_id).status == "running"
    ok = client.post(f"{url}/approve", data={"step_id": "sign_off", "csrf": csrf(page)})
    assert ok.status_code == 303
    assert ok.headers["location"] == url
    after = fleet.sync.get_run(run.run_id)
    assert after.status == "completed"
    approved = [e for e in fleet.sync.run_events(run.run_id) if e.type == "step_approved"]
    assert approved[0].data.by == "token:operator"
    again = client.post(f"{url}/approve", data={"step_id": "sign_off", "csrf": csrf(page)})
    assert again.status_code == 409


def test_cancel_from_the_page(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    run = hello_fleet(fleet.sync, finish=False)
    login(client, tokens["operator"])
    page = client.get(f"/ui/runs/{run.run_id}").text
    assert 'data-confirm="Cancel run?"' in page
    reply = client.post(f"/ui/runs/{run.run_id}/cancel", data={"csrf": csrf(page)})
    assert reply.status_code == 303
    assert fleet.sync.get_run(run.run_id).status == "cancelled"


def test_artifacts_download_as_attachments(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    run = fleet.sync.submit_run(
        {"name": "files", "seed": 1, "steps": [{"id": "make", "type": "tool", "tool": "echo"}]}
    )
    worker_id = "ui-any"
    fleet.sync.register_worker(
        {"worker_id": worker_id, "trust_level": "privileged", "tools": ["*"]}
    )
    [entry] = fleet.sync.lease_task(worker_id)
    assert entry.lease is not None
    ref = fleet.sync.put_artifact(
        b"<html>hi</html>", media_type="text/html", name="page.html",
        run_id=run.run_id, step_id="make", task_id=entry.task.task_id,
    )  # fmt: skip
    fleet.sync.complete_task(
        entry.task.task_id,
        entry.lease.fencing_token,
        {"ok": True},
        artifacts=[
            {"digest": ref.digest, "media_type": "text/html", "size_bytes": 15, "name": "page.html"}
        ],
    )
    login(client, tokens["viewer"])
    page = client.get(f"/ui/runs/{run.run_id}").text
    link = re.search(r'href="(/ui/artifacts/[^"]+)" download>page.html<', page)
    assert link, page
    got = client.get(link.group(1).replace("%3A", ":"))
    assert got.status_code == 200
    assert got.content == b"<html>hi</html>"
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"].startswith("attachment;")


def test_workers_page_shows_what_each_holds(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    run = hello_fleet(fleet.sync, finish=False)
    fleet.sync.register_worker(
        {"worker_id": "ui-planner", "role": "planner", "trust_level": "privileged", "tools": ["*"]}
    )
    fleet.sync.lease_task("ui-planner")
    login(client, tokens["viewer"])
    html = client.get("/ui/workers").text
    row = re.search(r'<tr data-worker="ui-planner">.*?</tr>', html)
    assert row
    assert f"/ui/runs/{run.run_id}" in row.group(0)
    assert ">plan<" in row.group(0)


def test_the_stream_sends_new_events(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    run = hello_fleet(fleet.sync, finish=False)
    login(client, tokens["viewer"])
    page = client.get(f"/ui/runs/{run.run_id}").text
    after = re.search(r'data-after="(\d+)"', page)
    assert after
    work_one(fleet.sync, "plan")
    seen: list[str] = []
    with client.stream("GET", f"/ui/runs/{run.run_id}/stream?after={after.group(1)}") as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line.startswith("data: "):
                seen.append(line)
            if any('"type": "step_completed"' in s for s in seen):
                break
    assert '"type": "task_leased"' in seen[0]


def test_one_time_login_link(fleet: FleetService) -> None:
    app = http_app(fleet, ServerOptions(auth=False), UiOptions(auth=False, launch_token="once-1"))
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        assert client.get("/ui/").status_code == 303
        assert client.post("/ui/login", data={"token": "once-1"}).status_code == 401
        reply = client.get("/ui/login?once=once-1")
        assert reply.status_code == 303
        assert COOKIE in reply.headers["set-cookie"]
        assert client.get("/ui/").status_code == 200
        client.cookies.clear()
        assert client.get("/ui/login?once=once-1").status_code == 401  # used


def test_other_hosts_and_other_sites_are_refused(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    """A rebound DNS name (Host) and another site's form (Origin) get nothing."""
    run = human_run(fleet.sync)
    login(client, tokens["operator"])
    page = client.get(f"/ui/runs/{run.run_id}").text
    evil = client.get(f"/ui/runs/{run.run_id}", headers={"host": "evil.example:8765"})
    assert evil.status_code == 421
    assert client.get("/ui/login", headers={"host": "evil.example"}).status_code == 421
    form = {"step_id": "sign_off", "csrf": csrf(page)}
    other_site = client.post(
        f"/ui/runs/{run.run_id}/approve", data=form, headers={"origin": "http://evil.example"}
    )
    assert other_site.status_code == 403
    assert fleet.sync.get_run(run.run_id).status == "running"
    login_elsewhere = client.post(
        "/ui/login", data={"token": tokens["viewer"]}, headers={"origin": "http://evil.example"}
    )
    assert login_elsewhere.status_code == 403
    same_site = client.post(f"/ui/runs/{run.run_id}/approve", data=form, headers={"origin": BASE})
    assert same_site.status_code == 303
    assert fleet.sync.get_run(run.run_id).status == "completed"


def test_an_allowed_host_is_answered(fleet: FleetService, tokens: dict[str, str]) -> None:
    options = ServerOptions(auth=True, allowed_hosts=("fleet.example:443",))
    with TestClient(http_app(fleet, options), base_url="https://fleet.example:443") as client:
        reply = client.post("/ui/login", data={"token": tokens["viewer"]}, follow_redirects=False)
        assert reply.status_code == 303
        assert "Secure" in reply.headers["set-cookie"]
        assert client.get("/ui/").status_code == 200


def test_resume_a_run_paused_at_a_breakpoint(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    run = fleet.sync.submit_run(
        {"name": "stops", "seed": 1, "breakpoints": ["second"],
         "steps": [{"id": "first", "type": "tool", "tool": "echo"},
                   {"id": "second", "type": "tool", "tool": "echo", "depends_on": ["first"]}]}
    )  # fmt: skip
    work_one(fleet.sync, "first", {"ok": 1}, run_id=run.run_id)
    assert fleet.sync.get_run(run.run_id).status == "paused"
    login(client, tokens["operator"])
    page = client.get(f"/ui/runs/{run.run_id}").text
    assert 'data-confirm="Resume run?"' in page
    reply = client.post(f"/ui/runs/{run.run_id}/resume", data={"csrf": csrf(page)})
    assert reply.status_code == 303
    assert fleet.sync.get_run(run.run_id).status == "running"
    again = client.post(f"/ui/runs/{run.run_id}/resume", data={"csrf": csrf(page)})
    assert again.status_code == 409
    assert "not paused" in again.text


def test_log_out_ends_a_one_time_session(fleet: FleetService) -> None:
    app = http_app(fleet, ServerOptions(auth=False), UiOptions(auth=False, launch_token="once-2"))
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        client.get("/ui/login?once=once-2")
        session = client.cookies[COOKIE]
        page = client.get("/ui/").text
        assert client.post("/ui/logout", data={}).status_code == 403  # no CSRF token
        reply = client.post("/ui/logout", data={"csrf": csrf(page)})
        assert reply.status_code == 303
        assert reply.headers["location"] == "/ui/login"
        client.cookies.set(COOKIE, session, domain="127.0.0.1", path="/ui")
        assert client.get("/ui/").status_code == 303  # the old cookie is worth nothing now


def test_the_timeline_shows_each_attempt_with_its_outcome(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    run = fleet.sync.submit_run(
        {"name": "flaky", "seed": 1,
         "steps": [{"id": "try", "type": "tool", "tool": "echo",
                    "retry": {"max_attempts": 3, "backoff_s": 0, "retry_on": ["transient"]}}]}
    )  # fmt: skip
    worker_id = register(fleet.sync, "try")
    [first] = fleet.sync.lease_task(worker_id)
    assert first.lease is not None
    assert fleet.sync.fail_task(first.task.task_id, first.lease.fencing_token, "transient", "x")
    work_one(fleet.sync, "try", {"ok": True}, run_id=run.run_id)
    [third] = fleet.sync.lease_task(worker_id) or [None]  # nothing left
    assert third is None
    login(client, tokens["viewer"])
    html = client.get(f"/ui/runs/{run.run_id}").text
    bars = re.findall(r'<g class="bar out-(\w+)" data-step="try"><title>try try (\d)', html)
    assert bars == [("failed", "1"), ("accepted", "2")]
    assert "try 2" in html  # the node says it took two tries


def test_the_run_page_says_why_a_ready_step_waits(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    fleet.sync.register_worker({"worker_id": "low", "trust_level": "sandboxed", "tools": ["*"]})
    run = fleet.sync.submit_run(
        {
            "name": "guarded",
            "seed": 1,
            "security": {"min_trust": "privileged"},
            "steps": [{"id": "secret", "type": "tool", "tool": "echo"}],
        }
    )
    assert fleet.sync.lease_task("low") == []  # too low a trust level: never leased
    login(client, tokens["viewer"])
    html = client.get(f"/ui/runs/{run.run_id}").text
    assert "Step <b>secret</b> is blocked (<code>trust_too_low</code>)" in html


def test_the_run_page_flags_a_receipt_signed_by_an_untrusted_key(
    client: TestClient, fleet: FleetService, tokens: dict[str, str]
) -> None:
    from fleetforge.fleet.settings import fleet_home
    from fleetforge.fleet.trust.keys import TRUST_FILE, TrustStore, keys_dir
    from fleetforge.mcp_server.ui import _reads

    run = hello_fleet(fleet.sync)
    TrustStore().save(keys_dir(fleet_home()) / TRUST_FILE)  # the fleet's key no longer trusted
    _reads._SIGNATURES.clear()
    login(client, tokens["viewer"])
    html = client.get(f"/ui/runs/{run.run_id}").text
    assert html.count("✗ signature") == 4
    assert "trust store does not trust" in html
