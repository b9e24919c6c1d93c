"""Incremental reading of a run's `events.jsonl`: only lines completed since the last read.

The writer appends one JSON object a line and fsyncs it; a line without its newline yet is an
unfinished write, so it stays unread (the byte offset stops before it) until it is completed.
The same tail serves a live run, an attached run and the replay of a finished one.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import UserError
from ..core.events import Event, parse_event


class EventTail:
    """Reads the complete events appended to `path` since the previous `read()`."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0  # bytes consumed: always just after a newline
        self.lineno = 0
        self.problems: list[str] = []  # complete lines that are not valid events, as "file:line: why"

    def read(self) -> list[Event]:
        """The events of every complete line since the last call; [] while the file does not exist."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        events = []
        for line in data[:end].split(b"\n"):
            self.lineno += 1
            if not line.strip():
                continue
            try:
                events.append(parse_event(line, f"{self.path}:{self.lineno}"))
            except UserError as exc:
                self.problems.append(f"{exc}, skipped")
        return events
