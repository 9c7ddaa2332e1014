"""Plain-terminal reporting for the `mind` command: a run's event observer, download progress."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

from mind_core.eta import RunEta
from mind_core.routing import PAPER_RULE
from mind_core.rundir import CHECKPOINT_DIR, CONFIG, ERROR_LOG, EVENTS, METRICS
from mind_core.schedule import classes_text


def pct(value: float) -> str:
    return f"{100 * value:5.1f}%"


def plural(count: int, noun: str) -> str:
    """"1 epoch", "2 epochs": a count with its noun (a regular plural in -s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def fmt_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"



class ConsoleReporter:
    """Prints one line per step and epoch; on a terminal, a live progress line too."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        self.stream = stream or sys.stdout  # looked up now: tests swap sys.stdout per test
        self.quiet = quiet
        self.live = self.stream.isatty()
        self.tasks = 0
        self.started = time.time()
        self._line_open = False
        self.eta = RunEta()

    def _print(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\r\033[K")
            self._line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: dict[str, Any]) -> None:
        self.eta(event)
        handler = getattr(self, f"on_{event['type']}", None)
        if handler and not (self.quiet and event["type"] != "run_failed"):
            handler(event)

    def on_run_started(self, e):
        self.tasks = e["tasks"]
        self.started = time.time()
        verb = "Resuming" if e.get("resumed") else "MIND run"
        self._print(f"{verb} {e['name']}: backend {e['backend']}{device_text(e)}, dataset "
                    f"{e['dataset']}, model {e['model']}, {plural(e['tasks'], 'task')}, "
                    f"variant {e['variant']}")

    def on_task_started(self, e):
        # The dataset's own class ids (and names), not the relabelled ids the core works in:
        # those are the ones a person can look up (older events have no `classes`).
        classes = e.get("classes")
        shown = f"  (classes {classes_text(classes, e.get('class_names'))})" if classes else ""
        self._print(f"Task {e['task'] + 1}/{e['tasks']}{shown}")

    def on_progress(self, e):
        if not self.live:
            return
        self.stream.write(f"\r\033[K  {e['phase']:<8} epoch {e['epoch'] + 1}/{e['epochs']}  "
                          f"batch {e['batch']}/{e['batches']}  loss {e['loss']:.4f}  "
                          f"{eta_text(e['eta_s'], self.eta.remaining())}")
        self.stream.flush()
        self._line_open = True

    def on_epoch_ended(self, e):
        # A phase without a distillation term (the teacher; beta 0) has distill null.
        extra = f"  distill {e['distill']:.4f}" if e.get("distill") is not None else ""
        self._print(f"  {e['phase']:<8} epoch {e['epoch'] + 1}/{e['epochs']}  "
                    f"loss {e['loss']:.4f}  ce {e['ce']:.4f}{extra}  acc {pct(e['accuracy'])}  "
                    f"{e['images_per_s']:.0f} img/s")

    def on_allocated(self, e):
        layers = e["layers"].values()
        total = sum(layer["total"] for layer in layers)
        owned = sum(layer["owned"][e["task"]] for layer in layers)
        free = sum(layer["free"] for layer in layers)
        self._print(f"  allocate task {e['task'] + 1} owns {pct(owned / total)} of the weights, "
                    f"{pct(free / total)} still free")

    def on_evaluated(self, e):
        self._print(f"  after task {e['task'] + 1}: TAg {pct(e['tag'])}  TAw {pct(e['taw'])}  "
                    f"routing {pct(e['routing'])}")

    def on_student_behind(self, e):
        self._print(f"  warning: task {e['task'] + 1}'s student ended at {pct(e['student'])}, "
                    f"more than {100 * e['gap']:.0f} points below its teacher "
                    f"({pct(e['teacher'])})")

    def on_run_finished(self, e):
        self._print(f"Finished in {fmt_duration(time.time() - self.started)}.")

    def on_run_failed(self, e):
        self._print(f"Run stopped ({e['reason']}): {e['message']}")


def device_text(e: dict[str, Any]) -> str:
    """The device, precision and thread pools of a run_started event, as ' on cpu in bf16,
    threads 4 intra-op / 4 inter-op' (empty for what an older run's events lack): results on
    CPU depend on all three."""
    text = f" on {e['device']}" if e.get("device") else ""
    text += f" in {e['precision']}" if e.get("precision") else ""
    threads = e.get("threads") or {}
    pools = " / ".join(f"{n} {pool.replace('_', '-')}" for pool, n in threads.items())
    return text + (f", threads {pools}" if pools else "")


def eta_text(phase_s: float, run_s: float | None) -> str:
    """The phase's ETA and the whole run's ("?" until every kind of phase has been timed)."""
    run = "?" if run_s is None else fmt_duration(run_s)
    return f"ETA phase {fmt_duration(phase_s)}, run {run}"


# What the headline numbers mean, under them: the terms are the paper's, not a newcomer's.
MEANING = ("  TAg: accuracy when the task is not given (the routing rule picks the sub-network "
           "that answers);",
           "  TAw: accuracy when it is given; routing: how often the rule picked the right task.")

# The files a run leaves, in the order worth reading them; ones a run has not written are left
# out of the listing.
RUN_FILES = (
    (METRICS, "the results: these numbers and more, after every task, under every routing rule"),
    (CONFIG, "every setting, the seed and the versions (`mind run --from DIR` reruns them)"),
    (EVENTS, "the run as it happened, one JSON line an event (`mind-tui --attach DIR`)"),
    (CHECKPOINT_DIR + "/", "each task's weights (`mind eval DIR`, `mind predict DIR IMAGES`)"),
    (ERROR_LOG, "the traceback of a failed attempt"),
    ("report/", "plots and tables written by `mind report DIR`"),
)


def run_summary(metrics: dict[str, Any], run_dir: Path, quiet: bool = False) -> str:
    """What a finished `mind run` or `mind resume` prints last; quiet: the headline and where
    the run is, nothing more."""
    if quiet:
        return f"{metrics_table(metrics, quiet=True)}\nRun directory: {run_dir}"
    return f"\n{metrics_table(metrics)}\n\n{run_dir_listing(run_dir)}"


def run_dir_listing(run_dir: Path) -> str:
    """Where the run is and what each of its files holds."""
    lines = [f"Run directory: {run_dir}"]
    for name, what in RUN_FILES:
        if (Path(run_dir) / name.rstrip("/")).exists():
            lines.append(f"  {name:<14} {what}")
    lines.append(f"Plots and CSV tables: mind report {run_dir}")
    return "\n".join(lines)


def headline(metrics: dict[str, Any]) -> str:
    """The final numbers in one line, the one `--quiet` prints."""
    final = metrics["final"]
    rule = metrics.get("routing_rule", PAPER_RULE)
    return (f"TAg {pct(final['tag'])}   TAw {pct(final['taw'])}   routing "
            f"{pct(final['routing'])} ({rule}){_beside(metrics, rule)}")


def _beside(metrics: dict[str, Any], rule: str) -> str:
    """TAg under the paper's rule beside another rule's (the comparison the docs make), or
    under entropy, the paper's alternative, beside the paper's own."""
    final = metrics["final"]
    paper = (final.get("rules") or {}).get(PAPER_RULE)
    if rule != PAPER_RULE and paper:
        return f"   (paper's rule {PAPER_RULE}: TAg {pct(paper['tag'])})"
    return f"   (entropy rule: TAg {pct(final['tag_entropy'])})"


def metrics_table(metrics: dict[str, Any], quiet: bool = False) -> str:
    """The final summary: headline numbers and what they mean, then the accuracy matrices;
    quiet: the headline line (and any student-behind warning) only."""
    lines = [headline(metrics)]
    if not quiet:
        lines += [f"forgetting TAg {pct(metrics['forgetting']['tag']['average'])}   "
                  f"BWT TAg {100 * metrics['bwt']['tag']:+.1f}", *MEANING]
    for behind in metrics.get("students_behind", []):
        lines.append(f"warning: task {behind['task'] + 1}'s student ended at "
                     f"{pct(behind['student'])}, its teacher reached {pct(behind['teacher'])}")
    if quiet:
        return "\n".join(lines)
    n = len(metrics["acc_matrix_tag"])
    for kind, name in (("tag", "TAg"), ("taw", "TAw")):
        lines.append("")
        lines.append(f"Accuracy matrix ({name}): row = after task, column = task")
        lines.append("       " + "".join(f"  T{j + 1:<4}" for j in range(n)))
        for t, row in enumerate(metrics[f"acc_matrix_{kind}"]):
            lines.append(f"  T{t + 1:<3} " + "".join(f"{100 * a:6.1f} " for a in row))
    return "\n".join(lines)


def rules_table(metrics: dict[str, Any]) -> str:
    """Every routing rule scored on the same checkpoints after the last task."""
    final, chosen = metrics["final"], metrics.get("routing_rule", "")
    lines = [f"{'rule':<13} {'routing':>8} {'TAg':>7} {'TAw':>7}"]
    for name, values in final["rules"].items():
        mark = "  (the run's rule)" if name == chosen else ""
        lines.append(f"{name:<13} {pct(values['routing']):>8} {pct(values['tag']):>7} "
                     f"{pct(final['taw']):>7}{mark}")
    return "\n".join(lines)


class DownloadProgress:
    """Download progress on stderr: a live line on a terminal, else a line every 10 %."""

    def __init__(self, name: str, stream: TextIO | None = None, clock=time.monotonic) -> None:
        self.name = name
        self.stream = stream or sys.stderr
        self.clock = clock
        self.live = self.stream.isatty()
        self.last_time = float("-inf")  # the first call prints
        self.last_step = -1
        self.line_open = False

    def __call__(self, done: int, total: int | None) -> None:
        mb = f"{done / 2**20:,.0f} MB"
        if total:
            step = done * 10 // total
            text = f"{self.name}: {mb} of {total / 2**20:,.0f} MB ({100 * done // total}%)"
        else:
            step = done // (100 * 2**20)  # unknown size: a line per 100 MB
            text = f"{self.name}: {mb}"
        if self.live:
            now = self.clock()
            if now - self.last_time >= 0.5 or done == total:
                self.last_time = now
                print(f"\r{text}", end="", file=self.stream, flush=True)
                self.line_open = True
        elif step != self.last_step:
            self.last_step = step
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """End the live line, so that what is printed next starts on its own line."""
        if self.line_open:
            print(file=self.stream, flush=True)
            self.line_open = False
