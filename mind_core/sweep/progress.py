"""The sweep's progress line: trials done / running / failed / pending and an ETA from the
durations of the trials finished so far."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO


def eta_seconds(durations: Sequence[float], pending: int, running_elapsed: Sequence[float],
                slots: int) -> float | None:
    """Seconds left: every pending trial takes the mean duration of the finished ones, every
    running one what is left of that mean, spread over `slots` trials at a time (and never
    less than the longest of those). None until a trial has finished."""
    if not durations:
        return None if pending or running_elapsed else 0.0
    mean = sum(durations) / len(durations)
    running_left = [max(mean - elapsed, 0.0) for elapsed in running_elapsed]
    left = running_left + [mean] * pending
    if not left:
        return 0.0
    lanes = max(1, min(slots, len(left)))
    return max(sum(left) / lanes, max(running_left, default=0.0),
               mean if pending else 0.0)


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """One line on a terminal (rewritten in place), else a line each time the counts change."""

    def __init__(self, total: int, stream: TextIO | None = None, quiet: bool = False):
        self.total = total
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_counts: tuple | None = None
        self._last_time = 0.0
        self._width = 0

    def update(self, done: int, skipped: int, running: int, failed: int, pending: int,
               eta: float | None, force: bool = False) -> None:
        counts = (done, skipped, running, failed, pending)
        now = time.monotonic()
        same = counts == self._last_counts
        if self.quiet or (same and (not self.tty or (not force and now - self._last_time < 1))):
            return
        self._last_counts, self._last_time = counts, now
        skip = f" ({skipped} already finished)" if skipped else ""
        line = (f"sweep: {done}/{self.total} done{skip}, {running} running, {failed} failed, "
                f"{pending} pending; ETA {clock(eta)}")
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (the progress line, on a terminal, is redrawn after it)."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
            self._last_counts = None
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
