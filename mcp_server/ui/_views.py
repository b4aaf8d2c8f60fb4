"""The dashboard's HTML, built with :func:`html.escape` on every piece of stored or user text
(run names, labels, outputs, errors, event data, worker ids): nothing reaches the page as
markup. Pages load one stylesheet and one script from ``/ui/static`` (no CDN, no inline script
or style: the Content-Security-Policy forbids them)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fleetforge import __version__
from fleetforge.fleet.store._base import EventRow
from fleetforge.mcp_server.ui._auth import Viewer
from fleetforge.mcp_server.ui._reads import RunRow, RunView
from fleetforge.mcp_server.ui._svg import dag_svg, duration, escape, gantt_svg
from fleetforge.operations.results import WorkerRecord

__all__ = ["event_json", "login_page", "run_page", "runs_page", "workers_page"]

STATUSES = ("pending", "running", "paused", "completed", "failed", "cancelled")


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    stamp = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f'<time datetime="{escape(value.isoformat())}">{stamp}</time>'


def _json(value: Any, limit: int = 4000) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit} more characters)"
    return f"<pre>{escape(text)}</pre>"


def _page(title: str, body: str, viewer: Viewer | None, *, page: str = "") -> str:
    nav = ""
    if viewer is not None:
        nav = (
            '<nav><a href="/ui/">Runs</a> <a href="/ui/workers">Workers</a>'
            f'<span class="who">{escape(viewer.name)}</span>'
            '<form method="post" action="/ui/logout" class="inline">'
            f'<input type="hidden" name="csrf" value="{escape(viewer.csrf)}">'
            '<button type="submit" class="link">Log out</button></form></nav>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · FleetForge</title>"
        '<link rel="stylesheet" href="/ui/static/app.css">'
        '<script src="/ui/static/app.js" defer></script></head>'
        f'<body data-page="{escape(page)}"><header><a class="brand" href="/ui/">FleetForge</a>'
        f"{nav}</header><main>{body}</main>"
        f'<footer class="muted">fleetforge {escape(__version__)}</footer></body></html>'
    )


def _signature(status: str) -> str:
    if status == "signed":
        return "✓ signed"
    if status == "unsigned":
        return '<span class="muted">unsigned</span>'
    return f'<span class="error" title="{escape(status)}">✗ signature</span>'


def _badge(status: str) -> str:
    return f'<span class="badge st-{escape(status)}">{escape(status)}</span>'


def login_page(error: str | None = None, next_page: str | None = None) -> str:
    action = "/ui/login"
    if next_page and next_page.startswith("/ui/"):
        action += "?" + urlencode({"next": next_page})
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = (
        '<section class="login"><h1>Log in</h1>'
        "<p>Paste a bearer token of this fleet (<code>fleetforge token create NAME --scope "
        "read</code>; approving, resuming and cancelling need <code>submit</code>).</p>"
        f"{problem}"
        f'<form method="post" action="{escape(action)}"><label for="token">Token</label>'
        '<input id="token" name="token" type="password" autocomplete="off" required autofocus>'
        '<button type="submit">Log in</button></form></section>'
    )
    return _page("Log in", body, None, page="login")


def _progress(steps: Mapping[str, int]) -> str:
    total = sum(steps.values())
    done = steps.get("completed", 0) + steps.get("skipped", 0)
    if not total:
        return ""
    return (
        f'<progress max="{total}" value="{done}" title="{done} of {total} steps done"></progress>'
        f' <span class="muted">{done}/{total}</span>'
    )


def runs_page(
    viewer: Viewer,
    runs: Sequence[RunRow],
    next_cursor: str | None,
    *,
    status: str | None,
    name: str | None,
    label: str | None,
) -> str:
    options = "".join(
        f'<option value="{s}"{" selected" if s == status else ""}>{s}</option>' for s in STATUSES
    )
    filters = (
        '<form method="get" action="/ui/" class="filters">'
        '<label>Status <select name="status"><option value="">any</option>'
        f"{options}</select></label>"
        f'<label>Name <input name="name" value="{escape(name or "")}"></label>'
        f'<label>Label <input name="label" placeholder="key=value" value="{escape(label or "")}">'
        '</label><button type="submit">Filter</button></form>'
    )
    rows = []
    for r in runs:
        labels = " ".join(
            f'<span class="label">{escape(k)}={escape(v)}</span>' for k, v in r.labels.items()
        )
        rows.append(
            f'<tr data-run="{escape(r.run_id)}"><td><a href="/ui/runs/{quote(r.run_id)}">'
            f'{escape(r.name)}</a><br><code class="muted">{escape(r.run_id)}</code></td>'
            f"<td>{_badge(r.status)}</td><td>{_progress(r.steps)}</td><td>{labels}</td>"
            f"<td>{_when(r.created_at)}</td></tr>"
        )
    table = (
        '<div class="scroll"><table class="runs"><thead><tr><th>Run</th><th>Status</th>'
        "<th>Steps</th><th>Labels</th><th>Created</th></tr></thead><tbody>"
        + ("".join(rows) or '<tr><td colspan="5" class="muted">No run matches.</td></tr>')
        + "</tbody></table></div>"
    )
    more = ""
    if next_cursor:
        query = {"status": status or "", "name": name or "", "label": label or ""}
        query = {k: v for k, v in query.items() if v} | {"cursor": next_cursor}
        more = f'<p><a class="button" href="/ui/?{escape(urlencode(query))}">Older runs →</a></p>'
    return _page("Runs", f"<h1>Runs</h1>{filters}{table}{more}", viewer, page="runs")


def _action(viewer: Viewer, run_id: str, verb: str, label: str, extra: str = "") -> str:
    if not viewer.allows("submit"):
        return ""
    return (
        f'<form method="post" action="/ui/runs/{quote(run_id)}/{verb}" class="inline" '
        f'data-confirm="{escape(label)}?">'
        f'<input type="hidden" name="csrf" value="{escape(viewer.csrf)}">{extra}'
        f'<button type="submit" class="{verb}">{escape(label)}</button></form>'
    )


def _event_line(row: EventRow) -> str:
    return (
        f'<tr data-seq="{row.seq}"><td>{row.seq}</td>'
        f'<td title="{escape(row.at)}">{escape(row.at[11:23])}</td>'
        f"<td>{escape(row.type)}</td><td><code>{escape(_summary(row.data))}</code></td></tr>"
    )


def _summary(data: Mapping[str, Any]) -> str:
    keys = ("step_id", "task_id", "attempt", "worker_id", "kind", "message", "reason", "by")
    picked = {k: data[k] for k in keys if data.get(k) not in (None, "")}
    if "receipt" in data and isinstance(data["receipt"], Mapping):
        receipt = data["receipt"]
        picked |= {k: receipt.get(k) for k in ("step_id", "attempt", "status")}
    text = " ".join(f"{k}={v}" for k, v in picked.items())
    return text[:300]


def event_json(row: EventRow) -> str:
    """What the live stream sends for an event: the page builds its row with textContent."""
    return json.dumps(
        {"seq": row.seq, "at": row.at, "type": row.type, "summary": _summary(row.data)},
        ensure_ascii=False,
    )


def run_page(viewer: Viewer, view: RunView, now: datetime) -> str:
    run = view.run
    rid = quote(run.run_id)
    actions = []
    final = run.status.value in ("completed", "failed", "cancelled")
    if not final:
        actions.append(_action(viewer, run.run_id, "cancel", "Cancel run"))
    if run.status.value == "paused":
        actions.append(_action(viewer, run.run_id, "resume", "Resume run"))
    labels = " ".join(
        f'<span class="label">{escape(k)}={escape(v)}</span>' for k, v in run.labels.items()
    )
    head = (
        f'<h1>{escape(run.name)} <span id="run-status">{_badge(run.status.value)}</span></h1>'
        f'<p class="muted"><code>{escape(run.run_id)}</code> · seed {run.seed} · created '
        f"{_when(run.created_at)} {labels}</p>"
        + (f'<p class="error">{escape(run.error)}</p>' if run.error else "")
        + f'<div class="actions">{"".join(actions)}</div>'
    )
    waiting = []
    for step in run.steps:
        if step.type == "human" and step.status == "ready" and run.status.value == "running":
            approve = _action(
                viewer,
                run.run_id,
                "approve",
                f"Approve {step.step_id}",
                f'<input type="hidden" name="step_id" value="{escape(step.step_id)}">',
            )
            waiting.append(f"<li>Human step <b>{escape(step.step_id)}</b> waits. {approve}</li>")
    for request in run.waiting_for_input:
        waiting.append(
            f"<li>Task <code>{escape(request.task_id)}</code> ({escape(request.step_id)}) waits "
            f"for input: {escape(request.reason)}</li>"
        )
    for stuck in run.blocked:  # ready steps no live worker may take (Run.blocked)
        waiting.append(
            f'<li class="blocked">Step <b>{escape(stuck.step_id)}</b> is blocked '
            f"(<code>{escape(stuck.code)}</code>): {escape(stuck.message)}</li>"
        )
    blocked = (
        f'<section class="waiting"><h2>Waiting</h2><ul>{"".join(waiting)}</ul></section>'
        if waiting
        else ""
    )
    steps = "".join(
        f'<tr data-step="{escape(s.step_id)}"><td>{escape(s.step_id)}</td>'
        f"<td>{escape(s.type)}</td><td>{_badge(s.status)}</td><td>{s.attempt}</td>"
        f"<td>{escape(duration(s.started_at, s.finished_at))}</td>"
        f"<td>{escape(s.error or '')}</td></tr>"
        for s in run.steps
    )
    receipts = "".join(
        f"<tr><td>{escape(r.step_id)} #{r.attempt}</td><td>{escape(r.worker_id)}</td>"
        f"<td>{_badge(r.status)}</td><td><code>{escape(_score(r.score))}</code></td>"
        f"<td>{'✓ chained' if r.chain_ok else '✗ chain broken'}</td>"
        f"<td>{_signature(r.signature)}</td>"
        f'<td><code title="{escape(r.hash)}">{escape(r.hash[:18])}…</code></td></tr>'
        for r in view.receipts
    )
    artifacts = "".join(
        f'<li><a href="/ui/artifacts/{quote(str(a.get("digest", "")))}" download>'
        f"{escape(str(a.get('name') or a.get('digest', '')))}</a> "
        f'<span class="muted">{escape(str(a.get("media_type", "")))} · '
        f"{escape(str(a.get('size_bytes', '')))} bytes · {escape(r.step_id)}</span></li>"
        for r in view.receipts
        for a in r.artifacts
    )
    events = "".join(_event_line(e) for e in view.events)
    body = (
        f'<div id="run" data-run="{escape(run.run_id)}" data-after="{view.horizon}">{head}'
        f"{blocked}<section><h2>Graph</h2>"
        f'<div id="graph" class="scroll" data-src="/ui/runs/{rid}/graph">{dag_svg(run)}</div>'
        "</section>"
        f'<section><h2>Timeline</h2><div class="scroll">{gantt_svg(view.attempts, now)}</div>'
        "</section>"
        '<section><h2>Steps</h2><div class="scroll"><table><thead><tr><th>Step</th>'
        "<th>Type</th><th>State</th><th>Tries</th><th>Took</th><th>Error</th></tr></thead>"
        f"<tbody>{steps}</tbody></table></div></section>"
        '<section class="io"><div><h2>Inputs</h2>'
        f"{_json(run.spec.inputs)}</div><div><h2>Outputs</h2>{_json(run.outputs)}</div></section>"
        '<section><h2>Receipts</h2><div class="scroll"><table><thead><tr><th>Step</th>'
        "<th>Worker</th><th>Verdict</th><th>Score</th><th>Chain</th><th>Signature</th>"
        "<th>Hash</th></tr></thead>"
        f"<tbody>{receipts or '<tr><td colspan=7 class=muted>None yet.</td></tr>'}</tbody>"
        "</table></div></section>"
        f"<section><h2>Artifacts</h2><ul>{artifacts or '<li class=muted>None.</li>'}</ul>"
        "</section>"
        '<section><h2>Events <span id="live" class="muted">(connecting…)</span></h2>'
        '<div class="scroll"><table id="events"><thead><tr><th>#</th><th>At</th><th>Type</th>'
        f"<th>Data</th></tr></thead><tbody>{events}</tbody></table></div></section></div>"
    )
    return _page(run.name, body, viewer, page="run")


def _score(score: Any) -> str:
    if score is None:
        return ""
    if isinstance(score, Mapping) and "passed" in score:
        return f"passed={score['passed']} " + str(score.get("reason") or "")[:120]
    return json.dumps(score, default=str)[:160]


def workers_page(
    viewer: Viewer,
    workers: Iterable[WorkerRecord],
    holding: Mapping[str, list[tuple[str, str, str]]],
) -> str:
    rows = []
    for w in workers:
        spec = w.spec
        held = ", ".join(
            f'<a href="/ui/runs/{quote(run_id)}">{escape(step_id)}</a>'
            for run_id, _task, step_id in holding.get(spec.worker_id, [])
        )
        rows.append(
            f'<tr data-worker="{escape(spec.worker_id)}"><td>{escape(spec.worker_id)}</td>'
            f"<td>{escape(str(spec.role or ''))}</td><td>{_badge(w.status.value)}</td>"
            f"<td>{held}</td><td>{_when(w.last_seen_at)}</td></tr>"
        )
    table = (
        '<div class="scroll"><table><thead><tr><th>Worker</th><th>Role</th><th>Status</th>'
        "<th>Working on</th><th>Last seen</th></tr></thead><tbody>"
        + ("".join(rows) or '<tr><td colspan="5" class="muted">No worker registered.</td></tr>')
        + "</tbody></table></div>"
    )
    return _page("Workers", f"<h1>Workers</h1>{table}", viewer, page="workers")
