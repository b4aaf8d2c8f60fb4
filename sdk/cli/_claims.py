"""``fleetforge reserve|release|reservations [check]|lock|checkpoint``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fleetforge.cli._console import err, out, print_json, text
from fleetforge.cli._context import open_fleet
from fleetforge.cli._coord_opts import (
    AsAgent,
    JsonFlag,
    ProjectOpt,
    agent_of,
    project_of,
    project_root,
)
from fleetforge.cli._errors import reporting
from fleetforge.cli._files import read_json
from fleetforge.errors import NotFoundError, UsageError

__all__ = ["checkpoint_app", "lock_app", "release", "reservations_app", "reserve"]

reservations_app = typer.Typer(
    help="File reservations of a project: list them (no subcommand), or check paths.",
    invoke_without_command=True,
)
lock_app = typer.Typer(help="Named locks with fencing tokens.", no_args_is_help=True)
checkpoint_app = typer.Typer(help="Context checkpoints and cursors.", no_args_is_help=True)


def reserve(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(help="Patterns relative to the project root.")],
    shared: Annotated[bool, typer.Option("--shared", help="A shared (read) reservation.")] = False,
    ttl: Annotated[float, typer.Option(help="Seconds until it expires.")] = 3600.0,
    reason: Annotated[str, typer.Option(help="Why, for the other agents.")] = "",
    advisory: Annotated[
        bool, typer.Option("--advisory", help="Grant it despite conflicts (recorded).")
    ] = False,
    renew: Annotated[
        bool, typer.Option("--renew", help="Renew all your reservations instead (PATHS ignored).")
    ] = False,
    agent: AsAgent = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Reserve path patterns before editing them (exit 4 naming the holder on a conflict)."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        key, me = project_of(project), agent_of(agent)
        if renew:
            renewed = fleet.renew_reservations(key, me, ttl_seconds=ttl)
            records = renewed.reservations
            dump = renewed.model_dump_json()
        else:
            got = fleet.reserve_paths(
                key,
                me,
                paths,
                exclusive=not shared,
                ttl_seconds=ttl,
                reason=reason,
                advisory=advisory,
            )
            records, dump = got.granted, got.model_dump_json()
            for c in got.conflicts:
                err.print(text(f"advisory: overlaps {c['pattern']} held by {c['callsign']}"))
    if as_json:
        print_json(dump)
        return
    for r in records:
        out.print(text(f"{r.reservation_id} {r.pattern} until {r.expires_at:%Y-%m-%d %H:%M:%S}"))


def release(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None, typer.Argument(help="Patterns as reserved (default: all of yours).")
    ] = None,
    reservation_id: Annotated[
        list[str] | None, typer.Option("--id", help="A reservation id (repeatable).")
    ] = None,
    agent: AsAgent = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Release your reservations (by pattern, by id, or all)."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        done = fleet.release_reservations(
            project_of(project),
            agent_of(agent),
            reservation_ids=reservation_id,
            paths=paths or None,
        )
    if as_json:
        print_json(done.model_dump_json())
        return
    for r in done.reservations:
        out.print(text(f"released {r.pattern}"))


@reservations_app.callback()
def reservations(
    ctx: typer.Context,
    of: Annotated[str | None, typer.Option("--agent", help="Only this agent's.")] = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """List the project's active reservations."""
    if ctx.invoked_subcommand is not None:
        return
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        found = fleet.list_reservations(project_of(project), agent=of)
    if as_json:
        print_json(found.model_dump_json())
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("pattern", "holder", "kind", "expires", "reason"):
        table.add_column(column, no_wrap=column != "reason")
    for r in found.reservations:
        kind = ("exclusive" if r.exclusive else "shared") + (" advisory" if r.advisory else "")
        table.add_row(
            text(r.pattern),
            text(r.callsign),
            kind,
            r.expires_at.strftime("%Y-%m-%d %H:%M:%S"),
            text(r.reason or "-"),
        )
    out.print(table)


def _hook_paths() -> list[str]:
    """The file paths of a Claude Code PreToolUse event read from stdin."""
    try:
        event = json.loads(sys.stdin.read() or "{}")
    except ValueError:
        raise UsageError("--claude-hook expects the hook's JSON event on stdin") from None
    tool_input: Any = event.get("tool_input") if isinstance(event, dict) else None
    if not isinstance(tool_input, dict):
        return []
    found = [tool_input.get(k) for k in ("file_path", "notebook_path", "path")]
    return [p for p in found if isinstance(p, str) and p]


def _relative(paths: list[str], root: Path) -> list[str]:
    """Paths relative to the project root; paths outside it are not the fleet's business."""
    inside = []
    for raw in paths:
        path = Path(raw)
        full = (path if path.is_absolute() else Path.cwd() / path).resolve()
        try:
            inside.append(full.relative_to(root).as_posix())
        except ValueError:
            continue
    return inside


@reservations_app.command("check")
def check(
    ctx: typer.Context,
    paths: Annotated[list[str] | None, typer.Argument(help="Paths you are about to write.")] = None,
    root: Annotated[
        Path | None, typer.Option(help="Project root (default: the git repository's top).")
    ] = None,
    claude_hook: Annotated[
        bool,
        typer.Option(
            "--claude-hook",
            help="Read a Claude Code PreToolUse event from stdin; "
            "exit 2 (which blocks the tool call) when a path is held.",
        ),
    ] = False,
    agent: AsAgent = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Exit 1 naming the holder when another agent holds one of PATHS exclusively (for a git
    pre-commit hook; with --claude-hook, for a Claude Code PreToolUse hook)."""
    top = (root or project_root()).resolve()
    wanted = _relative(list(paths or []) + (_hook_paths() if claude_hook else []), top)
    if not wanted:
        return
    with reporting(out, err, as_json=as_json):
        try:
            with open_fleet(ctx, existing=True) as fleet:
                found = fleet.check_paths(project_of(project), wanted, agent=agent)
        except NotFoundError as exc:
            if "store" not in exc.context:
                raise
            return  # no fleet store here: nothing is reserved
    if as_json:
        print_json(found.model_dump_json())
    for b in found.blocked:
        err.print(
            text(
                f"{b.path}: reserved by {b.holder} ({b.pattern}, until "
                f"{b.expires_at:%Y-%m-%d %H:%M:%S}Z); message {b.holder} or wait"
            )
        )
    if not found.ok:
        raise typer.Exit(2 if claude_hook else 1)


@lock_app.command("acquire")
def lock_acquire(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The lock.")],
    ttl: Annotated[float, typer.Option(help="Seconds until it expires.")] = 300.0,
    agent: AsAgent = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Take a named lock; print its fencing token (exit 4 naming the holder when held)."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        lock = fleet.acquire_lock(project_of(project), agent_of(agent), name, ttl_seconds=ttl)
    print_json(lock.model_dump_json()) if as_json else out.print(str(lock.fencing_token))


@lock_app.command("renew")
def lock_renew(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The lock.")],
    token: Annotated[int, typer.Option("--fencing-token", help="Your fencing token.")],
    ttl: Annotated[float, typer.Option(help="Seconds from now.")] = 300.0,
    agent: AsAgent = None,
    project: ProjectOpt = None,
) -> None:
    """Extend a lock you hold (exit 4 when your token is stale)."""
    with reporting(out, err), open_fleet(ctx, existing=True) as fleet:
        lock = fleet.renew_lock(project_of(project), agent_of(agent), name, token, ttl_seconds=ttl)
    out.print(text(f"{lock.name} until {lock.expires_at:%Y-%m-%d %H:%M:%S}"))


@lock_app.command("release")
def lock_release(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The lock.")],
    token: Annotated[int, typer.Option("--fencing-token", help="Your fencing token.")],
    agent: AsAgent = None,
    project: ProjectOpt = None,
) -> None:
    """Release a lock you hold (exit 4 when your token is stale)."""
    with reporting(out, err), open_fleet(ctx, existing=True) as fleet:
        lock = fleet.release_lock(project_of(project), agent_of(agent), name, token)
    out.print(text(f"{lock.name} {lock.status}"))


@checkpoint_app.command("save")
def checkpoint_save(
    ctx: typer.Context,
    summary: Annotated[str, typer.Option(help="What has been done ('-': read stdin).")],
    file: Annotated[list[str] | None, typer.Option("--file", help="A file touched.")] = None,
    next_step: Annotated[list[str] | None, typer.Option("--next", help="A next step.")] = None,
    state: Annotated[Path | None, typer.Option(help="A JSON file of structured state.")] = None,
    reason: Annotated[str, typer.Option(help="manual, context_compacted or handoff.")] = "manual",
    agent: AsAgent = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Save a context checkpoint (before a compaction, at a milestone)."""
    with reporting(out, err, as_json=as_json):
        loaded = read_json(str(state)) if state is not None else {}
        if not isinstance(loaded, dict):
            raise UsageError(f"{state}: the state must be a JSON object")
        body = sys.stdin.read() if summary == "-" else summary
        with open_fleet(ctx, existing=True) as fleet:
            saved = fleet.save_checkpoint(
                project_of(project),
                agent_of(agent),
                body,
                state=loaded,
                files=file or [],
                next_steps=next_step or [],
                reason=reason,
            )
    print_json(saved.model_dump_json()) if as_json else out.print(text(saved.checkpoint_id))


@checkpoint_app.command("show")
def checkpoint_show(
    ctx: typer.Context, agent: AsAgent = None, project: ProjectOpt = None, as_json: JsonFlag = False
) -> None:
    """Your latest checkpoint (what to pick up after a restart or a compaction)."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        found = fleet.latest_checkpoint(project_of(project), agent_of(agent))
    if as_json:
        print_json(found.model_dump_json())
        return
    out.print(text(f"{found.checkpoint_id} ({found.reason}, {found.saved_at:%Y-%m-%d %H:%M:%S})"))
    out.print(text(found.summary))
    for f in found.files:
        out.print(text(f"  file: {f}"))
    for n in found.next_steps:
        out.print(text(f"  next: {n}"))


@checkpoint_app.command("cursor")
def checkpoint_cursor(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The cursor.")],
    position: Annotated[str | None, typer.Argument(help="Set it to this.")] = None,
    agent: AsAgent = None,
    project: ProjectOpt = None,
) -> None:
    """Show a named cursor of yours, or set it."""
    with reporting(out, err), open_fleet(ctx, existing=True) as fleet:
        key, me = project_of(project), agent_of(agent)
        found = (
            fleet.move_cursor(key, me, name, position)
            if position is not None
            else fleet.get_cursor(key, me, name)
        )
    out.print(text(found.position or "-"))
