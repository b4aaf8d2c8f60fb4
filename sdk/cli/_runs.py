"""``fleetforge submit|runs|show|output|cancel|resume|approve|retry``."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from fleetforge.cli._budget import budget_lines
from fleetforge.cli._console import err, json_text, markup_safe, out, print_json, text
from fleetforge.cli._context import Scorers, globals_of, load_scorers, open_fleet
from fleetforge.cli._errors import reporting
from fleetforge.cli._files import read_json
from fleetforge.cli._validate import dag_tree
from fleetforge.contracts.enums import FleetRunStatus
from fleetforge.errors import NotFoundError, StoreError, UsageError

if TYPE_CHECKING:
    from fleetforge.client import SyncFleetClient
    from fleetforge.contracts import InputRequest, Run
    from fleetforge.operations.results import DeadLetter

__all__ = ["approve", "cancel", "output", "resume", "retry", "runs", "show", "submit", "workers"]

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
_FINAL = {"completed", "failed", "cancelled"}


def _print_run(run: Run, as_json: bool) -> None:
    if as_json:
        print_json(_run_json(run))
    else:
        out.print(text(f"{run.run_id} {run.status}"))


def _run_json(run: Run) -> str:
    """The run as JSON; a StoreError (not a crash) for a record no serializer can write."""
    try:
        return run.model_dump_json()
    except (ValueError, RecursionError) as exc:  # PydanticSerializationError is a ValueError
        raise StoreError(
            f"run {run.run_id} holds a value nested too deeply to print as JSON; it was stored "
            "before FleetForge checked JSON values (docs/contracts.md)",
            run_id=run.run_id,
        ) from exc


def _exit_for(run: Run) -> None:
    """A run that ended badly is a failed check: exit 1."""
    if run.status in {FleetRunStatus.FAILED, FleetRunStatus.CANCELLED}:
        raise typer.Exit(1)


def submit(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Run spec (JSON; '-' reads stdin).")],
    idempotency_key: Annotated[
        str | None, typer.Option(help="Submitting again with the same key returns the same run.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run until it ends.")] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after seconds.")] = 0.0,
    as_json: JsonFlag = False,
    scorers: Scorers = None,
) -> None:
    """Validate and submit a run; print its id (with --wait, a progress bar until it ends).

    Exit status with --wait: 0 completed, 1 failed or cancelled. A spec naming a custom scorer
    this process does not know (--scorers, entry points) is refused: the workers and servers
    that judge its receipts need it too.
    """
    with reporting(out, err, as_json=as_json), open_fleet(ctx) as fleet:
        if globals_of(ctx).url is None:  # in process, this process judges the spec's scorers
            load_scorers(scorers)
        run = fleet.submit_run(read_json(file), idempotency_key=idempotency_key)
        if wait:
            run = _wait(fleet, run, timeout, quiet=as_json)
        _print_run(run, as_json)
    if wait:
        _exit_for(run)


def _wait(fleet: SyncFleetClient, run: Run, timeout: float, *, quiet: bool) -> Run:
    deadline = time.monotonic() + timeout if timeout > 0 else None
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
    )
    told: set[tuple[str, datetime]] = set()  # pauses already shown
    with Progress(*columns, console=err, transient=True, disable=quiet) as progress:
        bar = progress.add_task(markup_safe(run.name), total=len(run.steps))
        while run.status not in _FINAL:
            done = sum(s.status in {"completed", "skipped", "failed"} for s in run.steps)
            progress.update(
                bar, completed=done, description=markup_safe(f"{run.name} ({run.status})")
            )
            if not quiet:
                asking = [w for w in run.waiting_for_input if (w.task_id, w.since) not in told]
                _print_questions(run.run_id, asking, progress.console)
                told.update((w.task_id, w.since) for w in asking)
            if deadline is not None and time.monotonic() > deadline:
                raise UsageError(f"run {run.run_id} is still {run.status} after {timeout:g}s")
            time.sleep(0.2)
            run = fleet.get_run(run.run_id)
    return run


def runs(
    ctx: typer.Context,
    status: Annotated[
        FleetRunStatus | None,
        typer.Option(
            metavar="<status>",
            help="Only runs in this status: pending, running, paused, completed, failed or "
            "cancelled.",
        ),
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Continue after this run id.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List runs, newest first."""
    with reporting(out, err, as_json=as_json):
        labels = dict(_pair(item) for item in label or [])
        with open_fleet(ctx, existing=True) as fleet:
            page = fleet.list_runs(status=status, labels=labels, cursor=cursor, limit=limit)
    if as_json:
        body = {
            "runs": [r.model_dump(mode="json") for r in page.runs],
            "next_cursor": page.next_cursor,
        }
        print_json(body)
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("run", "name", "status", "created", "labels"):
        table.add_column(column, no_wrap=True)
    for r in page.runs:
        labels_text = ",".join(f"{k}={v}" for k, v in sorted(r.labels.items()))
        table.add_row(text(r.run_id), text(r.name), text(r.status),
                      r.created_at.strftime("%Y-%m-%d %H:%M:%S"), text(labels_text))  # fmt: skip
    out.print(table)
    if page.next_cursor:
        err.print(text(f"more: --cursor {page.next_cursor}"))


def _pair(item: str, option: str = "--label", shape: str = "KEY=VALUE") -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UsageError(f"{option} wants {shape}, got {item!r}")
    return key, value


def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run.")],
    as_json: JsonFlag = False,
) -> None:
    """A run's status, its steps as a table, and its DAG as a tree with each step's state."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        run = fleet.get_run(run_id)
        if as_json:
            print_json(_run_json(run))
            return
    head = Text.assemble(text(run.name, "bold"), " ", text(run.run_id), " ",
                         text(run.status, "bold"), f" seed {run.seed}")  # fmt: skip
    out.print(head)
    if run.error:
        out.print(text(run.error, "red"))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("step", "type", "status", "attempt", "error"):
        table.add_column(column)
    for step in run.steps:
        table.add_row(text(step.step_id), text(step.type), text(step.status), str(step.attempt),
                      text(step.error or ""))  # fmt: skip
    out.print(table)
    out.print(dag_tree(run.spec, {s.step_id: s.status for s in run.steps}))
    if run.usage.total_tokens or run.usage.cost_usd:
        out.print(f"usage: {run.usage.total_tokens} tokens, ${run.usage.cost_usd or 0:.4f}")
    for line in budget_lines(run):
        out.print(text(line))
    _print_questions(run.run_id, run.waiting_for_input, out)
    for blocked in run.blocked:  # ready, but no live worker may take it
        out.print(text(f"step {blocked.step_id} blocked ({blocked.code}): {blocked.message}"))


def _print_questions(run_id: str, asking: list[InputRequest], console: Console) -> None:
    """What the tasks of a run paused for input ask, and how to answer."""
    for request in asking:
        console.print(text(f"step {request.step_id} waits for input: {request.reason}"))
        if request.waiting_for:
            waiting = json.dumps(request.waiting_for, ensure_ascii=False)
            console.print(text(f"  waiting for: {waiting}"))
    if asking:
        console.print(text(f"answer with: fleetforge resume {run_id} --value JSON"))


def output(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run.")],
    step_id: Annotated[str | None, typer.Argument(help="One step (default: every step).")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Compact JSON on one line (the default is indented).")
    ] = False,
) -> None:
    """Print a run's outputs (or one step's) as JSON."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        run = fleet.get_run(run_id)
        value: Any = run.outputs
        if step_id is not None:
            if step_id not in {s.step_id for s in run.steps}:
                raise NotFoundError(f"run '{run_id}' has no step '{step_id}'")
            if step_id not in run.outputs:
                raise NotFoundError(f"step '{step_id}' has no output yet")
            value = run.outputs[step_id]
        indent = None if as_json else 2
        print(json_text(json.dumps(value, indent=indent, ensure_ascii=False)))


def cancel(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run.")],
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Cancel a run (exit 4 when it already ended)."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        run = fleet.cancel_run(run_id, reason=reason)
        _print_run(run, as_json)


def resume(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The paused run.")],
    value: Annotated[
        str | None,
        typer.Option(
            help="JSON value for a task that paused for input (e.g. '\"yes\"' or "
            "'{\"approved\": true}'); it continues with it."
        ),
    ] = None,
    answer: Annotated[
        list[str] | None,
        typer.Option(
            "--answer",
            help="STEP=JSON (or TASK_ID=JSON): a value for the tasks of one step (repeatable); "
            "the others get --value.",
        ),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            help='A new budget for the whole run, as JSON (e.g. \'{"max_tokens": 200000, '
            '"on_exceed": "pause"}\'); it replaces the old one. A run paused over its '
            "budget needs a raised one."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Resume a paused run: at a breakpoint, where tasks wait for input (--value, --answer), or
    over its budget (--budget)."""
    with reporting(out, err, as_json=as_json):
        new_budget = None if budget is None else _json_option("--budget", budget)
        given = None if value is None else _json_option("--value", value)
        answers = {}
        for item in answer or []:
            key, raw = _pair(item, "--answer", "STEP=JSON or TASK_ID=JSON")
            answers[key] = _json_option(f"--answer {key}", raw)
        with open_fleet(ctx, existing=True) as fleet:
            run = fleet.resume_run(run_id, value=given, values=answers, budget=new_budget)
        _print_run(run, as_json)


def _json_option(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name} is not JSON: {exc} (quote a string: '\"yes\"')") from None


def approve(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run.")],
    step_id: Annotated[str, typer.Argument(help="The human step waiting for approval.")],
    comment: Annotated[str | None, typer.Option(help="Becomes part of the step's output.")] = None,
    by: Annotated[str | None, typer.Option(help="Who approves.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Approve a human step (recorded as approved by --by locally, by the token over --url)."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True, by=by) as fleet:
        run = fleet.approve_step(run_id, step_id, comment=comment)
        _print_run(run, as_json)


def retry(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(help="The run.")] = None,
    step_id: Annotated[str | None, typer.Argument(help="The failed step.")] = None,
    dead_letters: Annotated[
        bool,
        typer.Option(
            "--dead-letters",
            help="Retry every step `fleetforge dead-letters` lists (of RUN, when given), each in "
            "its own transaction; exit 4 if some could not be.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a failed step again, and what depends on it; or a list of them (--dead-letters)."""
    from fleetforge.operations.results import RetriedSteps, StepRef

    if not dead_letters and (run_id is None or step_id is None):
        raise typer.BadParameter("give RUN STEP, or --dead-letters (optionally with RUN)")
    if dead_letters and step_id is not None:
        raise typer.BadParameter("--dead-letters retries what it lists: give no STEP with it")
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        if run_id is not None and step_id is not None:
            _print_run(fleet.retry_step(run_id, step_id), as_json)
            return
        steps = [
            StepRef(run_id=d.run_id, step_id=d.step_id) for d in _all_dead_letters(fleet, run_id)
        ]
        result = fleet.retry_steps(steps) if steps else RetriedSteps(retried=[], failures=[])
    if as_json:
        print_json(result.model_dump_json())
    else:
        for done in result.retried:
            out.print(text(f"retried {done.run_id} {done.step_id}: run {done.run_status}"))
        for failed in result.failures:
            err.print(text(f"not retried {failed.run_id} {failed.step_id}: "
                           f"{failed.error.get('message', '')}"))  # fmt: skip
        if not steps:
            err.print("no dead letters: nothing to retry")
    if result.failures:
        raise typer.Exit(4)


def _all_dead_letters(fleet: SyncFleetClient, run_id: str | None) -> list[DeadLetter]:
    found: list[DeadLetter] = []
    cursor = None
    while True:
        page = fleet.dead_letters(run_id=run_id, cursor=cursor, limit=1000)
        found.extend(page.dead_letters)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def workers(
    ctx: typer.Context,
    as_json: JsonFlag = False,
) -> None:
    """List the registered workers: what each serves, its status and when it was last seen."""
    with reporting(out, err, as_json=as_json), open_fleet(ctx, existing=True) as fleet:
        found = fleet.list_workers()
    if as_json:
        print_json(found.model_dump_json())
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("worker", "role", "status", "trust", "last seen", "tools"):
        table.add_column(column, no_wrap=column != "tools")
    for w in found.workers:
        spec = w.spec
        table.add_row(text(spec.worker_id), text(spec.role or "-"), text(w.status),
                      text(spec.trust_level), w.last_seen_at.strftime("%Y-%m-%d %H:%M:%S"),
                      text(", ".join(spec.tools) or "-"))  # fmt: skip
    out.print(table)
