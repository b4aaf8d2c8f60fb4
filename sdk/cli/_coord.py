"""``fleetforge agents`` and ``fleetforge mail send|inbox|read|thread|search``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fleetforge.cli._console import err, out, print_json, text
from fleetforge.cli._context import open_fleet
from fleetforge.cli._coord_opts import AsAgent, JsonFlag, ProjectOpt, agent_of, project_of
from fleetforge.cli._errors import reporting
from fleetforge.errors import UsageError

if TYPE_CHECKING:
    from fleetforge.operations.coord_results import MessageRecord

__all__ = ["agents_app", "mail_app"]

agents_app = typer.Typer(
    help="Agents of a project: list them (no subcommand), register, deregister.",
    invoke_without_command=True,
)
mail_app = typer.Typer(help="Messages between agents.", no_args_is_help=True)


@agents_app.callback()
def agents(ctx: typer.Context, project: ProjectOpt = None, as_json: JsonFlag = False) -> None:
    """List the agents of the project: callsign, status, program, task, last seen."""
    if ctx.invoked_subcommand is not None:
        return
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        found = fleet.list_agents(project_of(project))
    if as_json:
        print_json(found.model_dump_json())
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("callsign", "status", "program", "model", "last seen", "task"):
        table.add_column(column, no_wrap=column != "task")
    for a in found.agents:
        table.add_row(
            text(a.callsign),
            text(a.status),
            text(a.program or "-"),
            text(a.model or "-"),
            a.last_seen_at.strftime("%Y-%m-%d %H:%M:%S"),
            text(a.task or "-"),
        )
    out.print(table)


@agents_app.command("register")
def register(
    ctx: typer.Context,
    callsign: Annotated[
        str | None, typer.Option(help="Callsign to take (default: a generated one).")
    ] = None,
    program: Annotated[str, typer.Option(help="Program you run in.")] = "",
    model: Annotated[str, typer.Option(help="Model you run on.")] = "",
    task: Annotated[str, typer.Option(help="What you are working on.")] = "",
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Register an agent in the project; print its callsign."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx) as fleet:
        agent = fleet.register_agent(
            project_of(project), callsign=callsign, program=program, model=model, task=task
        )
    if as_json:
        print_json(agent.model_dump_json())
    else:
        out.print(text(agent.callsign))


@agents_app.command("deregister")
def deregister(ctx: typer.Context, agent: AsAgent = None, project: ProjectOpt = None) -> None:
    """Leave the project."""
    with reporting(out, err), open_fleet(ctx, existing=True) as fleet:
        gone = fleet.deregister_agent(project_of(project), agent_of(agent))
    out.print(text(f"{gone.callsign} {gone.status}"))


def _print_messages(messages: list[MessageRecord]) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("id", "", "from", "importance", "sent", "subject"):
        table.add_column(column, no_wrap=column != "subject")
    for m in messages:
        state = "ack" if m.acked_at else ("read" if m.read_at else "new")
        table.add_row(
            text(m.message_id),
            text(state),
            text(m.sender),
            text(m.importance),
            m.sent_at.strftime("%Y-%m-%d %H:%M:%S"),
            text(m.subject),
        )
    out.print(table)


@mail_app.command("send")
def send(
    ctx: typer.Context,
    to: Annotated[
        list[str], typer.Option("--to", help="Recipient callsign (repeatable; '*': all).")
    ],
    subject: Annotated[str, typer.Option(help="Subject line.")],
    body: Annotated[str | None, typer.Option(help="Markdown body ('-': read stdin).")] = None,
    body_file: Annotated[Path | None, typer.Option(help="Read the body from a file.")] = None,
    importance: Annotated[str, typer.Option(help="low, normal, high or urgent.")] = "normal",
    ack: Annotated[bool, typer.Option("--ack", help="Ask for an acknowledgement.")] = False,
    reply_to: Annotated[str | None, typer.Option(help="Message id this answers.")] = None,
    ttl: Annotated[float | None, typer.Option(help="Leaves inboxes after SECONDS.")] = None,
    inbox: Annotated[
        int, typer.Option(help="Also show up to N messages of your inbox, read in the same call.")
    ] = 0,
    agent: AsAgent = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Send a message to agents of the project."""
    with reporting(out, err, as_json=as_json):
        if body_file is not None:
            try:
                content = body_file.read_text("utf-8")
            except OSError as exc:
                raise UsageError(f"cannot read {body_file}: {exc.strerror}") from None
        elif body == "-":
            content = sys.stdin.read()
        else:
            content = body or ""
        with open_fleet(ctx, existing=True) as fleet:
            sent = fleet.send_message(
                project_of(project),
                agent_of(agent),
                to,
                subject,
                content,
                importance=importance,
                ack_required=ack,
                reply_to=reply_to,
                ttl_seconds=ttl,
                inbox=inbox,
            )
    if as_json:
        print_json(sent.model_dump_json())
    else:
        out.print(text(sent.message_id))
        if sent.inbox is not None:
            _print_messages(sent.inbox.messages)


@mail_app.command("inbox")
def inbox(
    ctx: typer.Context,
    unread: Annotated[bool, typer.Option("--unread", help="Only unread messages.")] = False,
    since: Annotated[str | None, typer.Option(help="Only messages newer than this id.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    agent: AsAgent = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Your inbox: unread first, then newest first."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        page = fleet.fetch_inbox(
            project_of(project), agent_of(agent), unread_only=unread, since=since, limit=limit
        )
    if as_json:
        print_json(page.model_dump_json())
    else:
        _print_messages(page.messages)


@mail_app.command("read")
def read(
    ctx: typer.Context,
    message_ids: Annotated[list[str], typer.Argument(help="Messages to show and mark read.")],
    ack: Annotated[bool, typer.Option("--ack", help="Acknowledge them too.")] = False,
    agent: AsAgent = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Show messages of your inbox and mark them read (or acknowledged)."""
    key, me = project_of(project), agent_of(agent)
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        fleet.mark_messages(key, me, message_ids, acknowledge=ack)
        shown = [fleet.get_thread(key, me, mid).messages for mid in message_ids]
    wanted = set(message_ids)
    found = [m for thread in shown for m in thread if m.message_id in wanted]
    if as_json:
        print_json("[" + ",".join(m.model_dump_json() for m in found) + "]")
        return
    for m in found:
        out.print(text(f"{m.message_id}  from {m.sender}  [{m.importance}]  {m.subject}"))
        out.print(text(m.body))
        out.print()


@mail_app.command("thread")
def thread(
    ctx: typer.Context,
    thread_id: Annotated[str, typer.Argument(help="A thread id or any message id in it.")],
    agent: AsAgent = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """A thread's messages, oldest first."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        found = fleet.get_thread(project_of(project), agent_of(agent), thread_id)
    if as_json:
        print_json(found.model_dump_json())
        return
    for m in found.messages:
        out.print(
            text(f"── {m.sender} → {', '.join(m.to)}  {m.sent_at:%Y-%m-%d %H:%M}  {m.subject}")
        )
        out.print(text(m.body))


@mail_app.command("search")
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="Words that must all occur.")],
    limit: Annotated[int, typer.Option(help="At most this many.")] = 20,
    agent: AsAgent = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Full-text search in the messages you sent or received."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        found = fleet.search_messages(project_of(project), agent_of(agent), query, limit=limit)
    if as_json:
        print_json(found.model_dump_json())
    else:
        _print_messages(found.messages)
