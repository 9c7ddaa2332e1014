"""Regenerate the README's screenshots of the terminal UI (docs/screenshots/*.png).

    python docs/screenshots/make_screenshots.py [--work DIR]

Needs the `tui` extra and rsvg-convert (Debian/Ubuntu: `apt-get install librsvg2-bin`), no
project dependency. rsvg-convert over cairosvg: it falls back to another font for glyphs the
monospace font lacks (the loss plots' braille dots). The runs on screen are real ones,
made with the `mind` CLI in DIR (default /tmp/mind-screenshots) and reused when already
there: the demo preset (minutes on a CPU), the smoke preset, and the smoke preset with a
distillation learning rate that makes it diverge (the failed run). The app is driven headless
as the snapshot tests in tests/tui drive it (App.run_test at a terminal size); each screen is
saved as Textual's SVG, then converted to PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

if shutil.which("rsvg-convert") is None:
    sys.exit("make_screenshots.py needs rsvg-convert: apt-get install librsvg2-bin")

from textual.widgets import DataTable

from mind_core import rundir
from mind_core.events import read_events
from tui.app import MindApp
from tui.screens.compare import CompareScreen
from tui.screens.launch import LaunchScreen
from tui.screens.monitor import MonitorScreen

HERE = Path(__file__).resolve().parent
MIND = Path(sys.executable).with_name("mind")
# name in the work dir -> `mind run` arguments
RUNS = {
    "demo-torch": [],
    "smoke-torch": ["--preset", "smoke"],
    "smoke-diverged": ["--preset", "smoke", "--set", "distill.lr=1e30"],
}
COPIED = (rundir.CONFIG, rundir.EVENTS, rundir.METRICS, rundir.OUTPUT_LOG)  # no checkpoints


def make_runs(work: Path) -> None:
    """Each run once: a run whose events end in run_finished or run_failed is reused."""
    for name, args in RUNS.items():
        events = work / name / rundir.EVENTS
        last = list(read_events(events))[-1:] if events.exists() else []
        if last and last[0]["type"] in ("run_finished", "run_failed"):
            continue
        shutil.rmtree(work / name, ignore_errors=True)
        print(f"mind run {' '.join(args)} --out {work / name}", flush=True)
        # One thread: light on a shared machine. The diverged run exits non-zero, as it
        # should: its events say why.
        subprocess.run([str(MIND), "run", *args, "--threads", "1", "--quiet",
                        "--out", str(work / name)], check=name != "smoke-diverged")


def stage(scene: Path, work: Path, names: list[str]) -> Path:
    """A fresh working dir whose runs/ holds copies of the named runs: the UI shows the
    relative paths (runs/demo-torch), not where the work dir happens to be."""
    shutil.rmtree(scene, ignore_errors=True)
    (scene / "runs").mkdir(parents=True)
    for name in names:
        (scene / "runs" / name).mkdir(parents=True)
        for file in COPIED:
            if (work / name / file).exists():
                shutil.copy2(work / name / file, scene / "runs" / name / file)
    return scene


def cut_live(run: Path) -> None:
    """Turn a finished copy into a run caught mid-way (task 3, half-way through its
    distillation): its events up to that point, and run_started naming this process, which
    is alive, so the monitor shows it running (elapsed and ETA come from the events' times)."""
    events = list(read_events(run / rundir.EVENTS))
    steps = [i for i, e in enumerate(events) if e["type"] == "progress"
             and e.get("task") == 2 and e.get("phase") == "distill"]
    kept = events[: steps[len(steps) // 2] + 1]
    for event in kept:
        if event["type"] == "run_started":
            event["pid"] = os.getpid()
    (run / rundir.EVENTS).write_text("".join(json.dumps(e) + "\n" for e in kept))
    (run / rundir.METRICS).unlink(missing_ok=True)  # it would tell the end of the story


async def wait_for(pilot, predicate: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the screen did not get ready in time")
        await pilot.pause(0.05)


def monitor(status: str, tab: str) -> Callable[..., Awaitable[None]]:
    async def ready(pilot) -> None:
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, MonitorScreen)
                       and pilot.app.screen.state.status == status)
        await pilot.press(tab)
    return ready


async def launch(pilot) -> None:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, LaunchScreen)
                   and bool(pilot.app.screen.preset_values))


async def runs_list(pilot) -> None:
    await pilot.press("f2")
    await wait_for(pilot, lambda: pilot.app.screen.query(DataTable)
                   and pilot.app.screen.query_one(DataTable).row_count == len(RUNS))


async def compare(pilot) -> None:
    await runs_list(pilot)
    pilot.app.push_screen(CompareScreen(Path("runs/demo-torch"), Path("runs/smoke-torch")))
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, CompareScreen)
                   and pilot.app.screen.query("#compare-table")
                   and "loading" not in str(pilot.app.screen.query_one("#compare-table").content))


async def shoot(app: MindApp, size: tuple[int, int], ready, svg: Path) -> None:
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await pilot.pause(0.5)  # let the last refresh land
        app.save_screenshot(filename=svg.name, path=str(svg.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mind-screenshots"))
    work = parser.parse_args().work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    make_runs(work)
    # (PNG name, runs copied in, attach, terminal size, how to get the screen ready)
    scenes = [
        ("launch_100x30", [], None, (100, 30), launch),
        ("monitor_finished_accuracy_100x30", ["demo-torch"], "demo-torch", (100, 30),
         monitor("finished", "2")),
        ("monitor_live_losses_100x30", ["demo-torch"], "demo-torch", (100, 30),
         monitor("running", "1")),
        ("monitor_live_ownership_100x30", ["demo-torch"], "demo-torch", (100, 30),
         monitor("running", "4")),
        ("runs_100x30", list(RUNS), None, (100, 30), runs_list),
        ("compare_100x30", list(RUNS), None, (100, 30), compare),
        ("monitor_crashed_80x24", ["smoke-diverged"], "smoke-diverged", (80, 24),
         monitor("failed", "1")),
    ]
    home = Path.cwd()
    for name, names, attach, size, ready in scenes:
        scene = stage(work / "scenes" / name, work, names)
        if "live" in name:
            cut_live(scene / "runs" / "demo-torch")
        os.chdir(scene)
        try:
            app = MindApp(runs_dir="runs", attach=f"runs/{attach}" if attach else None)
            svg = scene / f"{name}.svg"
            asyncio.run(shoot(app, size, ready, svg))
        finally:
            os.chdir(home)
        png = HERE / f"{name}.png"
        # Textual's SVG writes spaces as &#160; and rsvg-convert drops them at the ends of a
        # text element (the gaps between styled runs) unless whitespace is preserved.
        text = svg.read_text().replace("<svg ", '<svg xml:space="preserve" ', 1)
        subprocess.run(["rsvg-convert", "-o", str(png)], input=text.encode(), check=True)
        print(f"{png.relative_to(HERE.parents[1])}: {png.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
