"""``fleetforge alerts list|test|retry|run``: the alert outbox (list and retry also over --url)."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer
from rich.table import Table

from fleetforge.cli._console import err, out, print_json, text
from fleetforge.cli._context import open_fleet, opened_store
from fleetforge.cli._errors import reporting
from fleetforge.errors import UsageError

__all__ = ["app"]

app = typer.Typer(
    help="The alert outbox: what fired, what was delivered, dead letters; deliver it.",
    no_args_is_help=True,
)


@app.command("list")
def list_alerts(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="Only pending, delivered or dead alerts.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Alerts, newest first: class, subject, channel, status, attempts, last error."""
    if status not in (None, "pending", "delivered", "dead"):
        raise typer.BadParameter("--status is pending, delivered or dead")
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        page = fleet.list_alerts(status=status, limit=limit)
    if as_json:
        print_json(page.model_dump_json())
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("alert", "class", "subject", "channel", "status", "attempts", "error"):
        table.add_column(column, no_wrap=column != "error")
    for r in page.alerts:
        table.add_row(text(r.alert_id), text(r.event_class), text(r.subject), text(r.channel),
                      text(r.status), f"{r.attempts}/{r.max_attempts}",
                      text(r.last_error or "-"))  # fmt: skip
    out.print(table)


@app.command("retry")
def retry(
    ctx: typer.Context,
    alert_ids: Annotated[list[str], typer.Argument(help="Dead (or pending) alerts to send again.")],
) -> None:
    """Send alerts again at the dispatcher's next pass (a dead letter gets one more attempt)."""
    with reporting(out, err), open_fleet(ctx, existing=True) as fleet:
        queued = fleet.retry_alerts(alert_ids).alert_ids
    out.print(text(f"{len(queued)} alert(s) queued: `fleetforge alerts run` delivers them"))


@app.command("test")
def send_test_alert(
    ctx: typer.Context,
    policy: Annotated[
        str | None, typer.Option(help="Only this fleet policy of alerts.toml.")
    ] = None,
) -> None:
    """Send a test alert to every endpoint of the fleet's policies (alerts.toml) now, and say
    what each answered; exit 1 if one failed. Nothing is written to the store."""
    import anyio

    from fleetforge.fleet.alerts.admin import send_test
    from fleetforge.fleet.alerts.config import alerts_path, load_alert_settings

    with reporting(out, err):
        settings = load_alert_settings()
        policies = {k: v for k, v in settings.policies.items() if policy in (None, k)}
        if not policies:
            raise UsageError(f"no fleet alert policy{' ' + policy if policy else ''} in "
                             f"{alerts_path()}")  # fmt: skip
        results = anyio.run(send_test, policies, settings)
    failed = 0
    for name, channel, outcome in results:
        verdict = "ok" if outcome.ok else f"failed: {outcome.error}"
        (out if outcome.ok else err).print(text(f"{name} {channel}: {verdict}"))
        failed += not outcome.ok
    if failed:
        raise typer.Exit(1)


@app.command("run")
def run(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
) -> None:
    """Deliver the outbox until stopped (Ctrl-C or SIGTERM): what `serve`, `work` and `worker`
    also do while they run."""
    import anyio

    from fleetforge.fleet.alerts.dispatcher import AlertDispatcher

    with reporting(out, err), opened_store(ctx, existing=True) as store:
        dispatcher = AlertDispatcher(store)
        err.print(text(f"delivering alerts of {store.url}"))
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(dispatcher.run_once if once else dispatcher.run)
        err.print(f"delivered {dispatcher.delivered}, failed attempts {dispatcher.failed}")
