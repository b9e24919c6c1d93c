"""Runs on disk: append-only, resumable, readable by the CLI, the TUI and reports.

A run directory holds
* `run.json` — the full configuration and provenance (written once, atomically);
* `events.jsonl` — typed, versioned events, one JSON object a line, flushed and fsynced as written,
  so a crash loses at most the evaluation in flight; a torn last line is ignored on reading;
* `result.json` — the outcome (written atomically at the end);
* `.lock` — held (flock) by the one process writing the run; it names that process's PID.

Event types: `started`, `evaluation` (a removal set and its objective value), `importance` (the
searcher's per-block scores once it has them), `stopped`, `finished`, and `evaluated` (benchmark
scores of a removal set, appended by `prune --eval-tasks` or `eval --run`).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .errors import UserError

SCHEMA = 1
EVENT_TYPES = ("started", "evaluation", "importance", "stopped", "finished", "evaluated")


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to a temporary file in the same directory, fsync it, and rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[-32:] or "model"


class Run:
    """One search's directory."""

    def __init__(self, path: Path, config: dict):
        self.path, self.config = path, config

    @property
    def id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, runs_dir: Path, config: dict, name: str | None = None) -> "Run":
        """A new run directory: `name` when given (a study cell; it must not exist yet), else
        `<time>-<model>-<objective>-<searcher>-k<k>` made unique."""
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
            probe = runs_dir / f".write-probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"runs directory {str(runs_dir)!r} (from --runs-dir) is not writable ({exc.strerror})") from None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        base = name or f"{stamp}-{slug(config['model'])}-{config['objective']['objective']}-{config['searcher']}-k{config['k']}"
        for n in range(1 if name else 1000):
            path = runs_dir / (base if n == 0 else f"{base}-{n}")
            try:
                path.mkdir()
                break
            except FileExistsError:
                if name:
                    raise UserError(f"run {name!r} already exists in {str(runs_dir)!r}") from None
                continue
        config = {"schema": SCHEMA, "id": path.name, **config}
        write_json_atomic(path / "run.json", config)
        (path / "events.jsonl").touch()
        return cls(path, config)

    @classmethod
    def open(cls, ref: str | Path, runs_dir: Path | None = None, source: str = "RUN") -> "Run":
        """A run by directory path or by id inside `runs_dir`; a UserError for anything else."""
        path = Path(ref)
        if not path.is_dir() and runs_dir is not None and (runs_dir / str(ref)).is_dir():
            path = runs_dir / str(ref)
        if not path.is_dir():
            raise UserError(f"run {str(ref)!r} (from {source}) not found")
        meta = path / "run.json"
        if not meta.is_file():
            raise UserError(f"{str(path)!r} (from {source}) is not a depthprune run directory (no run.json)")
        try:
            config = json.loads(meta.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"{meta}: corrupt run.json (from {source})") from None
        if not isinstance(config, dict) or config.get("schema") != SCHEMA or not isinstance(config.get("objective"), dict):
            raise UserError(f"{meta}: not a depthprune run (schema {SCHEMA}) (from {source})")
        return cls(path, config)

    @contextmanager
    def writing(self):
        """Hold the run's write lock for the duration; another process holding it is a UserError naming
        its PID. The lock is an flock, so a killed writer releases it with its last breath."""
        path = self.path / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            for attempt in range(20):  # a reader's brief shared lock (writer_pid) must not look like a writer
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                    if holder or attempt == 19:
                        raise UserError(f"run {self.id} is being written by process {holder or '?'} (lock {path}); "
                                        f"wait for it or stop it first") from None
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield self
        finally:
            os.close(fd)

    def writer_pid(self) -> int | None:
        """The PID of the process writing this run now, or None when nobody holds the lock."""
        path = self.path / ".lock"
        if not path.is_file():
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        finally:
            os.close(fd)

    # -- events ----------------------------------------------------------------------------

    def append(self, event: dict) -> dict:
        """Append one event (stamped with schema version and time), flushed to disk before returning.
        A torn last line left by a crash is cut off first, so it never merges with the new event."""
        event = {"v": SCHEMA, "t": round(time.time(), 3), **event}
        path = self.path / "events.jsonl"
        with open(path, "ab+") as f:
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(max(0, size - 65536))
                tail = f.read()
                if not tail.endswith(b"\n"):
                    cut = tail.rfind(b"\n")
                    f.truncate(size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= 65536 else size))
            f.write((json.dumps(event) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        return event

    def events(self) -> list[dict]:
        """All complete events; a torn last line (crash mid-write) is ignored, a broken line elsewhere
        is an error naming it."""
        path = self.path / "events.jsonl"
        if not path.is_file():
            return []
        text = path.read_text(errors="replace")
        lines = text.split("\n")[:-1]  # whatever follows the last newline is an unfinished write
        events = []
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{path}:{lineno}: broken event line") from None
            if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES or (
                    event["type"] == "evaluation" and not {"removed", "value", "seconds"} <= event.keys()):
                raise UserError(f"{path}:{lineno}: not a depthprune event")
            events.append(event)
        return events

    def memo(self) -> dict[frozenset, float]:
        """{removal set: objective value} of every evaluation stored in the run."""
        return {frozenset(e["removed"]): e["value"] for e in self.events() if e["type"] == "evaluation"}

    # -- result ----------------------------------------------------------------------------

    def write_result(self, result: dict) -> None:
        write_json_atomic(self.path / "result.json", result)

    def result(self) -> dict | None:
        path = self.path / "result.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            raise UserError(f"{path}: corrupt result.json") from None

    @property
    def state(self) -> str:
        """finished | running (a live process holds the lock) | stopped | incomplete (killed; resumable)."""
        if (self.path / "result.json").is_file():
            return "finished"
        if self.writer_pid() is not None:
            return "running"
        events = self.events()
        if events and events[-1]["type"] == "stopped":
            return "stopped"
        return "incomplete"


def list_runs(runs_dir: Path) -> list[Run]:
    """Every readable run under `runs_dir`, oldest first (unreadable directories are skipped)."""
    runs = []
    if runs_dir.is_dir():
        for path in sorted(runs_dir.iterdir()):
            if (path / "run.json").is_file():
                try:
                    runs.append(Run.open(path))
                except UserError:
                    continue
    return runs
