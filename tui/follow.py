"""Following a run from a thread worker: new events, whether a process still writes it, its
run.json when it changes (it is rewritten with full provenance once the model has loaded), its
result.json once the search finished, and the writer's memory from /proc.

`RunFollower.poll()` does one round of file reading (never on the event loop); the screen's worker
calls it every 1/FPS seconds and posts what changed as one `RunUpdate` message.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from textual.message import Message

from ..core.events import Event, Finished, Started
from ..core.runs import Run
from .machine import ProcMemory, proc_memory
from .tail import EventTail

WRITER_CHECK_S = 1.0


@dataclass
class RunUpdate(Message):
    """What changed in a followed run since the previous update (None: unchanged)."""

    events: list[Event] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    writer_pid: int | None = None
    config: dict | None = None
    result: dict | None = None
    proc: ProcMemory | None = None


class RunFollower:
    def __init__(self, run: Run):
        self.run = run
        self.tail = EventTail(run.path / "events.jsonl")
        self.config_mtime = self._mtime("run.json")
        self.result_read = False
        self.finished_seen = False
        self.checked = 0.0
        self.problems_sent = 0

    def _mtime(self, name: str) -> float | None:
        try:
            return (self.run.path / name).stat().st_mtime_ns
        except OSError:
            return None

    def poll(self, force: bool = False) -> RunUpdate | None:
        """One round of reading; None when nothing is new and no periodic check is due."""
        events = self.tail.read()
        if any(isinstance(e, Started) for e in events):  # a resumed session: its own result to come
            self.finished_seen = self.result_read = False
        self.finished_seen = self.finished_seen or any(isinstance(e, Finished) for e in events)
        now = time.monotonic()
        if not events and not force and now - self.checked < WRITER_CHECK_S:
            return None
        self.checked = now
        update = RunUpdate(events=events, problems=self.tail.problems[self.problems_sent :])
        self.problems_sent = len(self.tail.problems)
        update.writer_pid = self.run.writer_pid()
        update.proc = proc_memory(update.writer_pid)
        mtime = self._mtime("run.json")
        if mtime != self.config_mtime:
            self.config_mtime = mtime
            try:
                update.config = json.loads((self.run.path / "run.json").read_text())
            except (OSError, ValueError):
                update.config = None  # mid-rewrite never happens (atomic), but a vanished run may
        if self.finished_seen and not self.result_read:
            update.result = self.run.result()
            self.result_read = update.result is not None
        return update
