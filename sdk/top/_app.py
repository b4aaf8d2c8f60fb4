"""The Textual app of ``fleetforge top``. Imported only when ``top`` runs (the ``ui`` extra).

The app follows the event log through a :class:`~fleetforge.client.FleetClient` (a local store
or a remote ``fleetforge serve``, the same code) and folds it into a :class:`.FleetModel`; each
page of new events redraws what changed. Stored text reaches the screen as ``rich.text.Text``
(never parsed as markup).
"""

from __future__ import annotations

from typing import Any, ClassVar

import anyio
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Header, Label, RichLog, Sparkline, Static

from fleetforge.errors import FleetForgeError
from fleetforge.top._model import FINAL, FleetModel, RunLine

__all__ = ["ConfirmScreen", "RunScreen", "TopApp"]

_MARKS = {"completed": "✔", "failed": "✘", "running": "▶", "ready": "●", "pending": "·",
          "skipped": "↷", "cancelled": "■", "waiting": "⏸"}  # fmt: skip
_COLOURS = {"completed": "green", "failed": "red", "cancelled": "red", "running": "cyan",
            "ready": "yellow", "paused": "yellow", "waiting": "yellow", "pending": "grey50",
            "skipped": "grey50", "idle": "green", "busy": "cyan", "offline": "red"}  # fmt: skip


def _status(value: str) -> Text:
    return Text(value, style=_COLOURS.get(value, ""))


def _bar(run: RunLine, width: int = 12) -> Text:
    total = len(run.steps) or 1
    filled = round(run.done / total * width)
    bar = Text("█" * filled, style=_COLOURS.get(run.status, "")) + Text("░" * (width - filled))
    return bar + Text(f" {run.done}/{len(run.steps)}")


def _run_cells(run: RunLine) -> tuple[Text, ...]:
    flag = Text("needs you", style="bold yellow") if run.waiting_human else Text("")
    return Text(run.run_id), Text(run.name), _status(run.status), _bar(run), flag


def dag_text(run: RunLine) -> Text:
    """The run's steps by depth, one line per level, each with its state mark."""
    level: dict[str, int] = {}
    for _ in range(len(run.depends) + 1):
        for step_id, before in run.depends.items():
            level[step_id] = 1 + max(
                (level.get(d, -1) for d in before if d in run.depends), default=-1
            )
    out = Text()
    for depth in sorted(set(level.values())):
        out.append(f"{depth:>2} ", style="grey50")
        for step_id in [s for s in run.steps if level.get(s) == depth]:
            status = run.steps[step_id]
            out.append(f" {_MARKS.get(status, '?')} ", style=_COLOURS.get(status, ""))
            out.append(step_id)
            if run.depends.get(step_id):
                out.append(" ← " + ", ".join(run.depends[step_id]), style="grey50")
            out.append(f" [{status}]", style=_COLOURS.get(status, ""))
        out.append("\n")
    return out


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no, before an action changes a run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label(Text(self.question))
            with Horizontal():
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class RunScreen(Screen[None]):
    """One run: its DAG with states, every attempt, and its events as they come."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("a", "app.approve", "Approve"),
        Binding("r", "app.resume", "Resume"),
        Binding("c", "app.cancel", "Cancel"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.cursor = 0
        self.open: dict[str, tuple[str, int, str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="dag")
        yield DataTable(id="attempts", cursor_type="row")
        yield RichLog(id="events", max_lines=500)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#attempts", DataTable)
        table.add_columns("step", "try", "worker", "started", "outcome")
        self.title = f"run {self.run_id}"
        self.redraw()
        self.run_worker(self.follow(), exclusive=True, group="run")

    def redraw(self) -> None:
        app = self.app
        assert isinstance(app, TopApp)
        run = app.model.runs.get(self.run_id)
        dags = self.query("#dag")  # none while the screen mounts or after it closed
        if run is not None and dags:
            head = Text(run.name, style="bold") + Text(" ") + _status(run.status) + Text("\n")
            waiting = run.waiting_human
            if waiting:
                head += Text(f"waiting for a person: {', '.join(waiting)}\n", style="yellow")
            dags.first(Static).update(head + dag_text(run))

    async def follow(self) -> None:
        app = self.app
        assert isinstance(app, TopApp)
        table = self.query_one("#attempts", DataTable)
        log = self.query_one("#events", RichLog)
        while True:
            page = await app.client.events_page(
                self.run_id, cursor=str(self.cursor), limit=500, wait_seconds=app.wait_seconds
            )
            for event in page.events:
                self.cursor = event.seq
                data = event.data
                log.write(Text(f"{event.seq:>6} {event.at:%H:%M:%S} {event.type} ")
                          + Text(_brief(data), style="grey50"))  # fmt: skip
                if event.type == "task_leased":
                    key = str(data.get("task_id"))
                    table.add_row(
                        Text(str(data.get("step_id") or key)), str(data.get("attempt", "")),
                        Text(str(data.get("worker_id", ""))), f"{event.at:%H:%M:%S}",
                        _status("running"), key=f"{key}#{data.get('attempt')}",
                    )  # fmt: skip
                    self.open[key] = (key, int(data.get("attempt", 1)), "", event.at)
                elif event.type in ("receipt_recorded", "task_failed", "task_lease_expired",
                                    "task_released", "task_paused"):  # fmt: skip
                    task_id = str((data.get("receipt") or {}).get("task_id") or data.get("task_id"))
                    started = self.open.pop(task_id, None)
                    if started is not None:
                        outcome = str((data.get("receipt") or {}).get("status") or event.type[5:])
                        row = f"{task_id}#{started[1]}"
                        table.update_cell(row, table.ordered_columns[4].key, _status(outcome))
            self.redraw()


def _brief(data: dict[str, Any]) -> str:
    keys = ("step_id", "task_id", "worker_id", "attempt", "kind", "reason", "by")
    picked = [f"{k}={data[k]}" for k in keys if data.get(k) not in (None, "")]
    receipt = data.get("receipt")
    if isinstance(receipt, dict):
        picked.append(f"receipt {receipt.get('step_id')} {receipt.get('status')}")
    return " ".join(picked)[:200]


class TopApp(App[None]):
    """``fleetforge top``."""

    TITLE = "fleetforge top"
    CSS = """
    #main { height: 1fr; }
    #runs { width: 3fr; }
    #side { width: 2fr; }
    #workers { height: 1fr; }
    #queues, #waiting { height: auto; max-height: 8; border: round $primary-darken-2; }
    #throughput { height: 3; border: round $primary-darken-2; }
    #alerts { height: 1fr; border: round $primary-darken-2; }
    #dag { height: auto; max-height: 50%; border: round $primary-darken-2; }
    #attempts { height: 1fr; }
    #events { height: 1fr; border: round $primary-darken-2; }
    #confirm { width: 60; height: auto; padding: 1 2; border: thick $error; background: $panel; }
    ConfirmScreen { align: center middle; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("enter,o", "open_run", "Open run"),
        Binding("a", "approve", "Approve"),
        Binding("r", "resume", "Resume"),
        Binding("c", "cancel", "Cancel"),
    ]

    def __init__(self, client: Any, *, where: str = "", wait_seconds: float = 1.0) -> None:
        super().__init__()
        self.client = client
        self.where = where
        self.wait_seconds = wait_seconds
        self.model = FleetModel()
        self._runs_shown: dict[str, tuple[Any, ...]] = {}
        self.refreshes = 0  # pages of events drawn (tests wait on it)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield DataTable(id="runs", cursor_type="row")
            with Vertical(id="side"):
                yield DataTable(id="workers", cursor_type="none")
                yield Static(id="queues")
                yield Sparkline([0], id="throughput")
                yield Static(id="waiting")
                yield Static(id="alerts")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.where
        self.query_one("#runs", DataTable).add_columns("run", "name", "status", "progress", "")
        self.query_one("#workers", DataTable).add_columns(
            "worker", "role", "status", "tasks", "seen"
        )
        self.run_worker(self.follow(), exclusive=True, group="follow")

    async def follow(self) -> None:
        """Read the log from where the model stands, forever; redraw after each page."""
        caught_up = False
        while True:
            try:
                page = await self.client.events_page(
                    cursor=str(self.model.cursor),
                    limit=5000,
                    wait_seconds=self.wait_seconds if caught_up else 0.0,
                )
            except FleetForgeError as exc:  # e.g. the server restarts: say so, try again
                self.notify(exc.message, title="cannot read the fleet", severity="error")
                await anyio.sleep(2.0)
                continue
            caught_up = page.next_cursor is None
            changed = self.model.apply(page.events)
            if self.refreshes == 0 or (changed and caught_up):
                self.redraw()

    def redraw(self) -> None:
        model = self.model
        runs = self.query_one("#runs", DataTable)
        shown = model.rows(limit=100)
        lines = {
            run.run_id: (run.name, run.status, run.done, len(run.steps), bool(run.waiting_human))
            for run in shown
        }
        if list(lines) == list(self._runs_shown):  # same rows: change only the cells that moved
            columns = [c.key for c in runs.ordered_columns]
            for run in shown:
                if self._runs_shown[run.run_id] != lines[run.run_id]:
                    for column, cell in zip(columns, _run_cells(run), strict=True):
                        runs.update_cell(run.run_id, column, cell)
        else:
            selected = self.selected_run()
            runs.clear()
            for run in shown:
                runs.add_row(*_run_cells(run), key=run.run_id)
            if selected is not None and selected in lines:
                runs.move_cursor(row=runs.get_row_index(selected))
        self._runs_shown = lines
        workers = self.query_one("#workers", DataTable)
        workers.clear()
        for w in sorted(model.workers.values(), key=lambda w: w.worker_id)[:100]:
            seen = f"{w.last_seen:%H:%M:%S}" if w.last_seen else ""
            tasks = f"{len(w.tasks)}: " + ", ".join(sorted(w.tasks)[:2]) if w.tasks else ""
            workers.add_row(
                Text(w.worker_id), Text(w.role or ""), _status(w.status), Text(tasks[:48]), seen
            )
        depth = model.queue_depth()
        queues = (
            Text("queued: ", style="bold")
            + Text("  ".join(f"{role} {n}" for role, n in depth.items()) or "none")
            + Text(f"   active tasks: {model.active_tasks()}")
        )
        self.query_one("#queues", Static).update(queues)
        self.query_one("#throughput", Sparkline).data = [float(n) for n in model.throughput()]
        waiting = model.waiting()
        text = Text("waiting for a person: ", style="bold")
        text += Text(
            ", ".join(f"{r.name} ({', '.join(r.waiting_human)})" for r in waiting) or "none"
        )
        self.query_one("#waiting", Static).update(text)
        alerts = Text("alerts and refusals\n", style="bold")
        for alert in list(model.alerts)[:8]:
            alerts += Text(f"{alert.at:%H:%M:%S} ", style="grey50") + Text(
                alert.text + "\n", style="red"
            )
        self.query_one("#alerts", Static).update(alerts)
        for screen in self.screen_stack:
            if isinstance(screen, RunScreen):
                screen.redraw()
        self.refreshes += 1

    # ── actions ─────────────────────────────────────────────────────────────────────────────

    def selected_run(self) -> str | None:
        if isinstance(self.screen, RunScreen):
            return self.screen.run_id
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # no row under the cursor
            return None
        return None if key.value is None else str(key.value)

    def action_open_run(self) -> None:
        run_id = self.selected_run()
        if run_id is not None and not isinstance(self.screen, RunScreen):
            self.push_screen(RunScreen(run_id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "runs":
            self.action_open_run()

    def _confirm_then(self, question: str, call: Any) -> None:
        async def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                await call()
            except FleetForgeError as exc:
                self.notify(exc.message, title="refused", severity="error")
            else:
                self.notify(question.rstrip("?") + ": done")

        self.push_screen(ConfirmScreen(question), answered)

    def action_approve(self) -> None:
        run_id = self.selected_run()
        run = self.model.runs.get(run_id or "")
        if run is None:
            return
        steps = [s for s in run.waiting_human if run.kinds.get(s) == "human"]
        if not steps:
            self.notify("no human step of this run waits for an approval")
            return
        step_id = steps[0]
        self._confirm_then(
            f"Approve step {step_id} of {run.name}?",
            lambda: self.client.approve_step(run.run_id, step_id),
        )

    def action_resume(self) -> None:
        run = self.model.runs.get(self.selected_run() or "")
        if run is None or run.status != "paused":
            self.notify("only a paused run can be resumed")
            return
        self._confirm_then(f"Resume {run.name}?", lambda: self.client.resume_run(run.run_id))

    def action_cancel(self) -> None:
        run = self.model.runs.get(self.selected_run() or "")
        if run is None or run.status in FINAL:
            self.notify("this run is already over")
            return
        self._confirm_then(
            f"Cancel {run.name}?",
            lambda: self.client.cancel_run(run.run_id, reason="cancelled from fleetforge top"),
        )
