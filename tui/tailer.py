"""Incremental reading of a growing events.jsonl (the monitor's worker polls this)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui.fields import shown
from tui.rundir import parse_event

CHUNK_BYTES = 1 << 18  # one read at most per call: a long run's backlog arrives in slices


class EventFileReader:
    """Returns the complete lines appended since the last call, parsed.

    A line without its newline yet (the writer is mid-append) waits for the next call. A file
    that shrank (rewritten from scratch) is read again from its start; `restarted` says so.
    A complete line that holds no event is skipped, with a note in `notes` (the caller takes
    them).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._partial = b""
        self.restarted = False
        self.notes: list[str] = []

    def read_new(self) -> list[dict[str, Any]]:
        self.restarted = False
        try:
            with open(self.path, "rb") as f:
                size = f.seek(0, 2)
                if size < self.offset:
                    self.offset, self._partial, self.restarted = 0, b"", True
                f.seek(self.offset)
                data = f.read(CHUNK_BYTES)
        except OSError:
            return []
        self.offset += len(data)
        data = self._partial + data
        complete, newline, self._partial = data.rpartition(b"\n")
        if not newline:
            return []
        events = []
        for line in complete.decode("utf-8", errors="replace").splitlines():
            event = parse_event(line)
            if event is not None:
                events.append(event)
            elif line.strip():
                self.notes.append(f"events.jsonl: a line that holds no event "
                                  f"({shown(line.strip())})")
        return events

    @property
    def has_more(self) -> bool:
        """More bytes are waiting than one chunk delivered."""
        try:
            return self.path.stat().st_size > self.offset
        except OSError:
            return False
