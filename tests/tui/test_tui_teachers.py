"""Each task's teacher accuracy beside its student's, and the warning for a student behind.

Recorded finished-3tasks scored its teachers: the third task's student ended at 84.5%, 11.5
points below its teacher (96.0%), so the run wrote a student_behind event after evaluating it.
interrupted-4tasks, and finished-3tasks stripped by `before_teachers`, are runs made before
teachers were scored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs

from mind_core.metrics import STUDENT_GAP as CORE_GAP
from mind_core.metrics import Evaluation, summary
from tests.tui.tui_helpers import (
    DATA,
    before_teachers,
    drive,
    plain,
    recorded_variant,
    rendered,
    replay,
    wait_for,
)
from tui.app import MindApp
from tui.format import event_line
from tui.rundir import run_events
from tui.runstate import STUDENT_GAP, RunState, TeacherRow
from tui.screens.monitor import MonitorScreen
from tui.widgets.problem import ProblemPanel, diagnose
from tui.widgets.teachers import TeacherScores, behind_message, teachers_info, teachers_table

RUN = DATA / "finished-3tasks"
WARNING = "Task 3's student ended 11.5 points below its teacher (84.5% vs 96.0%)."
LOG_WARNING = ("warning: task 3's student ended at 84.5%, more than 10 points below its "
               "teacher (96.0%)")


def text(renderable) -> str:
    return rendered(renderable, width=60)


def test_the_recorded_run_shows_each_teacher_beside_its_student():
    state = replay(RUN)
    assert state.teacher_rows() == (TeacherRow(0, 0.98, 0.97, False),
                                    TeacherRow(1, 0.975, 0.96, False),
                                    TeacherRow(2, 0.96, 0.845, True))
    assert [row.task for row in state.students_behind()] == [2]
    lines = text(teachers_table(teachers_info(state))).splitlines()
    assert lines[:3] == ["Teacher vs student", "TAw % right after each task",
                         "   task  teacher  student    gap"]
    assert lines[3:6] == ["      1     98.0     97.0   -1.0", "      2     97.5     96.0   -1.5",
                          "⚠     3     96.0     84.5  -11.5"]
    assert lines[6] == "⚠ over 10 points below teacher"
    assert behind_message(state) == WARNING
    problem = diagnose(state, None, None, "")
    assert problem is not None and (problem.severity, problem.message) == ("notice", WARNING)


def test_the_table_agrees_with_metrics_json_and_the_core():
    """The fixture is what mind_core.metrics.summary makes of its own evaluated events, and
    the TUI reads the same teachers, students and verdicts from the events alone."""
    metrics = json.loads((RUN / "metrics.json").read_text())
    events = run_events(RUN)
    evaluated = [e for e in events if e["type"] == "evaluated"]
    fields = {f.name for f in attrs.fields(Evaluation)}
    core = summary([Evaluation(**{k: v for k, v in e.items() if k in fields}, confusion=[])
                    for e in evaluated])
    for key in ("teacher_taw", "student_taw", "students_behind", "taw", "acc_matrix_taw"):
        assert core[key] == metrics[key], key
    rows = replay(RUN).teacher_rows()
    assert [row.teacher for row in rows] == metrics["teacher_taw"]
    assert [row.student for row in rows] == metrics["student_taw"]
    assert [{"task": r.task, "teacher": r.teacher, "student": r.student}
            for r in rows if r.behind] == metrics["students_behind"]
    (warned,) = [e for e in events if e["type"] == "student_behind"]
    assert events[events.index(warned) - 1] is evaluated[-1]  # right after its evaluation
    assert {k: warned[k] for k in ("task", "teacher", "student")} == metrics["students_behind"][0]
    assert warned["gap"] == STUDENT_GAP == CORE_GAP


def test_the_log_says_it_in_the_consoles_words():
    (warned,) = [e for e in run_events(RUN) if e["type"] == "student_behind"]
    assert event_line(warned, warned["time"] - 19) == "   0:19  " + LOG_WARNING
    assert "task ?'s student ended at –%, more than ? points" in event_line(
        {"type": "student_behind", "task": "x", "gap": "ten"}, None)


def test_runs_made_before_teachers_were_scored_show_students_only(tmp_path: Path):
    for run in (DATA / "interrupted-4tasks",
                recorded_variant("finished-3tasks", tmp_path / "old", before_teachers)):
        state = replay(run)
        rows = state.teacher_rows()
        assert rows and all(r.teacher is None and r.gap is None and not r.behind for r in rows)
        assert all(r.student is not None for r in rows)
        shown = text(teachers_table(teachers_info(state)))
        assert "teachers not scored" in shown and "⚠" not in shown
        assert behind_message(state) == ""
    assert diagnose(state, None, None, "") is None  # the old finished run: nothing to say
    assert "no task evaluated yet" in text(teachers_table(teachers_info(RunState())))


def test_malformed_teacher_fields_do_not_break_the_state_or_the_table():
    state = RunState()
    evaluated = {"type": "evaluated", "time": 1.0, "per_task_taw": [0.9]}
    for bad in ("high", True, float("nan"), None, [0.9], {"t": 1}):
        state.apply({**evaluated, "task": 0, "teacher_taw": bad})
        assert state.teacher_rows() == (TeacherRow(0, None, 0.9, False),)
    for task in ("x", True, -1, None, 1.0):  # a warning about no known task is not placed
        state.apply({"type": "student_behind", "task": task, "teacher": 1.0, "student": 0.1})
    assert state.students_behind() == ()
    # The student from the matrix when per_task_taw is unreadable; none when neither is.
    state.apply({**evaluated, "task": 1, "teacher_taw": 0.99, "per_task_taw": "x",
                 "acc_matrix_taw": [[0.9], [0.8, 0.7]]})
    state.apply({**evaluated, "task": 2, "teacher_taw": 0.5, "per_task_taw": [1, 2],
                 "acc_matrix_taw": [[0.9], [0.8]]})
    assert state.teacher_rows()[1:] == (TeacherRow(1, 0.99, 0.7, True),  # from its numbers
                                        TeacherRow(2, 0.5, None, False))
    # A warning whose task's numbers are unreadable still marks it, in its own numbers.
    state.apply({"type": "student_behind", "task": 2, "teacher": "x", "gap": "big"})
    assert state.teacher_rows()[2] == TeacherRow(2, 0.5, None, True)
    assert state.student_gap == STUDENT_GAP
    assert behind_message(state) == ("2 students ended more than 10 points below their "
                                     "teachers (tasks 2, 3).")
    shown = text(teachers_table(teachers_info(state)))
    assert "⚠     3     50.0        –      –" in shown and "over 10 points" in shown
    only = RunState()
    only.apply({"type": "evaluated", "task": 0})
    only.apply({"type": "student_behind", "task": 0, "gap": 0.2})
    assert behind_message(only) == "Task 1's student ended more than 20 points below its teacher."


def test_a_resumed_run_evaluating_again_replaces_the_old_verdict():
    state = replay(RUN)
    again = next(e for e in run_events(RUN) if e["type"] == "evaluated" and e["task"] == 2)
    state.apply({**again, "per_task_taw": [0.96, 0.955, 0.95]})
    assert state.students_behind() == () and behind_message(state) == ""


def test_a_failed_run_with_a_student_behind_reports_both(tmp_path: Path):
    state = replay(RUN)
    state.apply({"type": "run_failed", "reason": "error", "message": "disk full"})
    problem = diagnose(state, None, None, "tail")
    assert problem is not None and problem.severity == "error"
    assert (problem.message, problem.warning) == ("Run failed: disk full", WARNING)


def monitor(app: MindApp) -> MonitorScreen:
    assert isinstance(app.screen, MonitorScreen)
    return app.screen


def log_lines(screen: MonitorScreen) -> list:
    return list(screen.query_one("#event-log").lines)


def test_the_monitor_warns_and_shows_the_table(runs_dir: Path, catalog):
    app = MindApp(runs_dir=runs_dir, attach=runs_dir / "finished-3tasks", catalog=catalog)

    async def scenario(pilot):
        await wait_for(pilot, lambda: monitor(app).state.status == "finished")
        screen = monitor(app)
        panel = screen.query_one(ProblemPanel)
        assert panel.display and panel.has_class("-notice") and plain(panel) == WARNING
        await pilot.press("3")
        table = plain(screen.query_one(TeacherScores))
        assert "⚠     3     96.0     84.5  -11.5" in table
        assert "      1     98.0     97.0   -1.0" in table
        assert screen.query_one(TeacherScores).region.width > 0  # on screen beside the plot
        await pilot.press("5")
        await wait_for(pilot, lambda: log_lines(screen))
        lines = log_lines(screen)
        assert " ".join(LOG_WARNING.split()) in " ".join(" ".join(s.text for s in lines).split())
        (line,) = [s for s in lines if "warning:" in s.text]  # its first line, if it wraps
        assert line.text.strip().startswith("0:19  warning: task 3's student ended at 84.5%")
        styles = [seg.style for seg in line if seg.text.strip()]
        assert all(s is not None and s.bold and s.color.name == "yellow" for s in styles)
        plain_line = next(s for s in log_lines(screen) if "evaluated" in s.text)
        assert not any(seg.style and seg.style.bold for seg in plain_line)

    drive(app, scenario)


def test_an_old_run_shows_no_warning(tmp_path: Path, catalog):
    run = recorded_variant("finished-3tasks", tmp_path / "old", before_teachers)
    app = MindApp(runs_dir=tmp_path, attach=run, catalog=catalog)

    async def scenario(pilot):
        await wait_for(pilot, lambda: monitor(app).state.status == "finished")
        screen = monitor(app)
        assert not screen.query_one(ProblemPanel).display
        await pilot.press("3")
        table = plain(screen.query_one(TeacherScores))
        assert "      3        –     84.5    –" in table and "teachers not scored" in table

    drive(app, scenario, size=(80, 24))


def test_a_live_run_notifies_when_a_student_falls_behind(tmp_path: Path, catalog):
    run = tmp_path / "live"
    run.mkdir()
    events = run_events(RUN)
    events[0] = {**events[0], "pid": os.getpid()}  # a live process: not reported as dead
    cut = next(i for i, e in enumerate(events) if e["type"] == "student_behind") + 1
    app = MindApp(runs_dir=tmp_path, attach=run, catalog=catalog)
    notes: list[tuple[str, str]] = []
    notify = app.notify

    def recording_notify(message, **kw):  # the screen's notify calls the app's
        notes.append((message, kw.get("severity")))
        return notify(message, **kw)

    app.notify = recording_notify  # type: ignore[method-assign]

    def append(batch):
        with open(run / "events.jsonl", "a") as f:
            f.writelines(json.dumps(e) + "\n" for e in batch)

    async def scenario(pilot):
        append(events[:cut - 2])  # up to task 3's evaluation: nothing to say yet
        await wait_for(pilot, lambda: monitor(app).state.tasks_done == 2)
        assert not monitor(app).query_one(ProblemPanel).display and notes == []
        append(events[cut - 2:cut])
        await wait_for(pilot, lambda: monitor(app).query_one(ProblemPanel).display)
        assert monitor(app).state.status == "running"
        assert notes == [(WARNING, "warning")]
        append(events[cut:])
        await wait_for(pilot, lambda: monitor(app).state.status == "finished")
        assert plain(monitor(app).query_one(ProblemPanel)) == WARNING and len(notes) == 1

    drive(app, scenario)
