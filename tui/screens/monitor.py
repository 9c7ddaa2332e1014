"""The monitor: follows one run directory live (or replays a finished one).

A thread worker tails events.jsonl and posts messages; the handlers feed a RunState and set
the widgets' reactives; the widgets render in their watch methods. The event loop never
touches the file system for more than a stat.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from tui.fields import config_problems
from tui.format import WARNING_EVENTS, WARNING_STYLE, event_line
from tui.process import RunProcess, request_stop, resume_command
from tui.rundir import CONFIG, EVENTS, OUTPUT_LOG, looks_dead, read_json, tail_text
from tui.runstate import RunState
from tui.tailer import EventFileReader
from tui.widgets.matrix import MatrixPair
from tui.widgets.ownership import OwnershipView, freeze_layers
from tui.widgets.plots import LinePlot, accuracy_figure, loss_figure
from tui.widgets.problem import ProblemPanel, diagnose
from tui.widgets.progress import ProgressPanel, progress_info
from tui.widgets.rules import RuleScores, rules_info
from tui.widgets.teachers import TeacherScores, behind_message, teachers_info

POLL_S = 0.25
PID_CHECK_EVERY = 8  # polls between liveness checks of a run this TUI did not start
MATRIX_LEGEND = ("Row T[i]t[/i]: after learning task [i]t[/i]; column T[i]j[/i]: accuracy on task "
                 "[i]j[/i]; all: over every task learned so far. TAg: task-agnostic (the run's "
                 "routing rule picks the sub-network), TAw: task-aware (the true task is given).")
TABS = ("losses", "accuracy", "per-task", "ownership", "log")


def display_path(path: Path) -> str:
    """Relative to the working directory when inside it (short, and stable in tests)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path.resolve())


class MonitorScreen(Screen):
    BINDINGS = [
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("o", "show_path", "Run dir"),
        Binding("escape", "back", "Back"),
        Binding("b", "back", "Back", show=False),
        Binding("left_square_bracket", "shift_task(-1)", "◀ task", show=False),
        Binding("right_square_bracket", "shift_task(1)", "task ▶", show=False),
        *(Binding(str(i + 1), f"show_tab('{tab}')", tab, show=False) for i, tab in enumerate(TABS)),
    ]

    class EventsRead(Message):
        def __init__(self, events: list[dict[str, Any]], output_tail: str | None,
                     restarted: bool, notes: list[str] | None = None) -> None:
            super().__init__()
            self.events, self.output_tail, self.restarted = events, output_tail, restarted
            self.notes = notes or []  # lines of events.jsonl that hold no event
            # Set once handled: the worker waits for it before sending more, so a long
            # backlog arrives in slices with key presses and repaints between them.
            self.handled = threading.Event()

    class ConfigRead(Message):
        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__()
            self.config = config

    class NoRunHere(Message):
        """The directory has neither config.json nor events.jsonl (message), or has them
        after all (an empty message)."""

        def __init__(self, message: str, output_tail: str) -> None:
            super().__init__()
            self.message, self.output_tail = message, output_tail

    class ProcessExited(Message):
        def __init__(self, code: int, output_tail: str) -> None:
            super().__init__()
            self.code, self.output_tail = code, output_tail

    class ProcessGone(Message):
        def __init__(self, pid: int, output_tail: str) -> None:
            super().__init__()
            self.pid, self.output_tail = pid, output_tail

    status: reactive[str] = reactive("waiting")
    loss_task: reactive[int | None] = reactive(None)  # None: follow the task being trained

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.key = self.run_dir.resolve()
        self.state = RunState()
        self.exit_code: int | None = None
        self.gone_pid: int | None = None
        self.output_tail = ""
        self.not_a_run = ""  # why the directory is no run, while it is not one

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"run [b]{escape(display_path(self.run_dir))}[/b]", id="run-title")
        yield ProgressPanel()
        yield ProblemPanel(id="problem")
        with TabbedContent(initial="losses"):
            with TabPane("Losses", id="losses"), Horizontal():
                yield LinePlot(id="plot-teacher")
                yield LinePlot(id="plot-distill")
            with TabPane("Accuracy", id="accuracy"), VerticalScroll():
                yield MatrixPair(("TAg accuracy %", "matrix-tag"), ("TAw accuracy %", "matrix-taw"))
                yield Static("", id="final-metrics")
                yield RuleScores()
                yield Static(MATRIX_LEGEND, id="matrix-legend")
            with TabPane("Per task", id="per-task"), Horizontal():
                yield LinePlot(id="plot-accuracy")
                with VerticalScroll(id="teachers-column"):
                    yield TeacherScores()
            with TabPane("Ownership", id="ownership"), VerticalScroll():
                yield OwnershipView()
            with TabPane("Log", id="log"):
                yield RichLog(wrap=True, markup=False, id="event-log")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.run_dir.name
        self._render_state()
        self._tail()

    # The worker (a thread): the only place that reads the run directory.

    @work(thread=True, exclusive=True, group="tail")
    def _tail(self) -> None:
        worker = get_current_worker()
        reader = EventFileReader(self.run_dir / EVENTS)
        open_pid: int | None = None  # pid of a run_started not followed by its final event
        reported: RunProcess | None = None
        config_read, polls, said_not_a_run = False, 0, False
        while not worker.is_cancelled:
            if not config_read and (self.run_dir / CONFIG).exists():
                config_read = True
                self.post_message(self.ConfigRead(read_json(self.run_dir / CONFIG)))
            is_run = (config_read or (self.run_dir / EVENTS).exists()
                      or self.key in self.app.processes)  # type: ignore[attr-defined]
            if is_run == said_not_a_run:  # it changed: say so, or take it back
                said_not_a_run = not is_run
                self.post_message(self.NoRunHere(
                    "" if is_run else not_a_run_message(self.run_dir),
                    "" if is_run else tail_text(self.run_dir / OUTPUT_LOG)))
            events = reader.read_new()
            notes, reader.notes = reader.notes, []
            if events or reader.restarted or notes:
                open_pid = _open_pid(events, open_pid)
                failed = any(e["type"] == "run_failed" and e.get("reason") != "interrupted"
                             for e in events)
                tail = tail_text(self.run_dir / OUTPUT_LOG) if failed else None
                message = self.EventsRead(events, tail, reader.restarted, notes)
                self.post_message(message)
                if reader.has_more:
                    while not message.handled.wait(POLL_S) and not worker.is_cancelled:
                        pass
                    continue
            proc = self.app.processes.get(self.key)  # type: ignore[attr-defined]
            if proc is not None and proc is not reported and proc.poll() is not None:
                late = reader.read_new()  # what it wrote just before exiting
                if late:
                    open_pid = _open_pid(late, open_pid)
                    self.post_message(self.EventsRead(late, None, False))
                reported = proc
                self.post_message(self.ProcessExited(
                    proc.poll(), tail_text(self.run_dir / OUTPUT_LOG)))
            elif (proc is None and open_pid is not None and polls % PID_CHECK_EVERY == 0
                  and looks_dead(self.run_dir, open_pid)):
                self.post_message(self.ProcessGone(open_pid, tail_text(self.run_dir / OUTPUT_LOG)))
                open_pid = None
            polls += 1
            time.sleep(POLL_S)

    # Message handlers: update the state, then the reactives.

    def on_monitor_screen_events_read(self, message: EventsRead) -> None:
        if message.restarted:  # the file was rewritten; config.json is read only once
            self.state = RunState(config_rule=self.state.config_rule,
                                  config_problems=self.state.config_problems)
            self.query_one("#event-log", RichLog).clear()
        log = self.query_one("#event-log", RichLog)
        finished_now = warned = False
        for note in message.notes:
            self.state.note(note)
        for event in message.events:
            if event["type"] == "run_started":
                self.exit_code, self.gone_pid, self.output_tail = None, None, ""
            self.state.apply(event)
            finished_now |= event["type"] == "run_finished"
            warned |= event["type"] == "student_behind"
            try:
                line = event_line(event, self.state.started_at, self.state.routing_rule)
            except Exception as exc:  # noqa: BLE001 - a bad event must never stop the monitor
                self.state.note(f"{event['type']} event not shown ({type(exc).__name__}: {exc})")
                line = None
            if line:
                log.write(Text(line, style=WARNING_STYLE) if event["type"] in WARNING_EVENTS
                          else line)
        if message.output_tail is not None:
            self.output_tail = message.output_tail
        self._render_state()
        if finished_now:
            self.query_one(TabbedContent).active = "accuracy"
        elif warned and self.state.status == "running" and behind_message(self.state):
            # Only while the run goes on: replaying a finished run's backlog would pop up
            # toasts for what the warning panel already shows.
            self.notify(behind_message(self.state), title="Student behind its teacher",
                        severity="warning")
        message.handled.set()

    def on_monitor_screen_config_read(self, message: ConfigRead) -> None:
        self.state.config_problems = tuple(config_problems(message.config))
        config = message.config.get("config")
        if isinstance(config, dict):
            for phase in ("teacher", "distill"):
                epochs = _section(config, phase).get("epochs")
                if isinstance(epochs, int):
                    self.state.planned_epochs.setdefault(phase, epochs)
            tasks = config.get("tasks")
            self.state.tasks = self.state.tasks or (tasks if isinstance(tasks, int) else 0)
            rule = _section(config, "inference").get("routing")
            self.state.config_rule = rule if isinstance(rule, str) and rule else None
        self._render_state()

    def on_monitor_screen_no_run_here(self, message: NoRunHere) -> None:
        self.not_a_run = message.message
        if message.output_tail:
            self.output_tail = message.output_tail
        self._render_state()

    def on_monitor_screen_process_exited(self, message: ProcessExited) -> None:
        self.exit_code, self.output_tail = message.code, message.output_tail
        self.query_one("#event-log", RichLog).write(f"process exited with code {message.code}")
        self._render_state()

    def on_monitor_screen_process_gone(self, message: ProcessGone) -> None:
        self.gone_pid, self.output_tail = message.pid, message.output_tail
        self._render_state()

    def _render_state(self) -> None:
        state = self.state
        self.status = state.status
        self.query_one(ProgressPanel).info = progress_info(state)
        self.query_one(ProblemPanel).problem = diagnose(
            state, self.exit_code, self.gone_pid, self.output_tail, self.not_a_run)
        self.query_one(MatrixPair).set_matrices(
            (state.matrix("tag"), state.per_task("tag")),
            (state.matrix("taw"), state.per_task("taw")))
        self.query_one("#final-metrics", Static).update(_metrics_line(state))
        self.query_one(RuleScores).info = rules_info(state)
        self.query_one(TeacherScores).info = teachers_info(state)
        self._render_losses()
        self.query_one("#plot-accuracy", LinePlot).figure = accuracy_figure(state)
        self.query_one(OwnershipView).layers = freeze_layers(state.ownership)
        info = state.info
        if info:
            self.query_one("#run-title", Static).update(
                f"run [b]{escape(display_path(self.run_dir))}[/b]  ·  " + escape(
                    f"{info.get('backend', '?')} · {info.get('dataset', '?')} · "
                    f"{info.get('variant', '?')} · {info.get('model', '?')}"))

    def _render_losses(self) -> None:
        task = self.loss_task if self.loss_task is not None else self.state.task
        self.query_one("#plot-teacher", LinePlot).figure = loss_figure(self.state, task, "teacher")
        self.query_one("#plot-distill", LinePlot).figure = loss_figure(self.state, task, "distill")

    def watch_loss_task(self) -> None:
        if self.is_mounted:
            self._render_losses()

    def watch_status(self) -> None:
        self.refresh_bindings()

    # Actions.

    def _process(self) -> RunProcess | None:
        return self.app.processes.get(self.key)  # type: ignore[attr-defined]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        proc = self._process()
        live = proc is not None and proc.alive
        if action == "stop":
            return True if live or self.status == "running" else None
        if action == "resume":
            return True if not live and self.status in ("interrupted", "failed") else None
        return True

    def action_stop(self) -> None:
        proc = self._process()
        if proc is not None and proc.alive:
            proc.interrupt()
            self.notify("Stopping: the run saves a checkpoint, then exits.")
        elif self.status == "running":
            request_stop(self.run_dir)
            self.notify("Asked the run to stop (created its STOP file).")

    def action_resume(self) -> None:
        proc = self._process()
        if (proc is not None and proc.alive) or self.status not in ("interrupted", "failed"):
            self.notify("Only a stopped or failed run can be resumed.", severity="warning")
            return
        # A stale STOP is deleted by `mind resume` itself, once it holds the run's lock.
        config = read_json(self.run_dir / CONFIG).get("config")
        backend = config.get("backend") if isinstance(config, dict) else None
        # A module:Class backend is passed again only when it is the one this app was given.
        trusted = backend if backend == self.app.backend else None  # type: ignore[attr-defined]
        try:
            self.app.processes[self.key] = RunProcess.start(  # type: ignore[attr-defined]
                self.run_dir, resume_command(self.run_dir, trusted))
        except OSError as exc:
            self.notify(f"Could not resume: {exc}", severity="error")
            return
        self.exit_code, self.gone_pid = None, None
        self.notify("Resuming from the last checkpoint…")
        self.refresh_bindings()

    def action_show_path(self) -> None:
        path = str(self.run_dir.resolve())
        self.app.copy_to_clipboard(path)
        self.notify(path, title="Run directory (copied)")

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_shift_task(self, step: int) -> None:
        tasks = self.state.loss_tasks()
        if not tasks:
            return
        current = self.loss_task if self.loss_task is not None else self.state.task
        index = tasks.index(current) if current in tasks else len(tasks) - 1
        index = max(0, min(len(tasks) - 1, index + step))
        self.loss_task = None if tasks[index] == self.state.task else tasks[index]


def not_a_run_message(run_dir: Path) -> str:
    return (f"{display_path(run_dir)} is not a run directory: it has no {CONFIG} or {EVENTS} "
            f"(a run started with `mind run --out DIR` writes them; watching for one)")


def _open_pid(events: list[dict[str, Any]], pid: int | None) -> int | None:
    for event in events:
        if event["type"] == "run_started":
            pid = event.get("pid") if isinstance(event.get("pid"), int) else None
        elif event["type"] in ("run_finished", "run_failed"):
            pid = None
    return pid


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    section = config.get(name)
    return section if isinstance(section, dict) else {}


def _metrics_line(state: RunState) -> str:
    metrics = state.latest_metrics
    if not metrics:
        return ""
    label = "final" if state.status == "finished" else f"after task {state.tasks_done}"
    values = "   ".join(f"{name} [b]{100 * metrics[key]:.1f}%[/b]" for key, name in
                       (("tag", "TAg"), ("taw", "TAw"), ("routing", "routing")) if key in metrics)
    if "routing" in metrics:  # TAg and routing depend on the rule: name it
        values += f" ({escape(state.routing_rule)})"
    return f"{label}:  {values}"
