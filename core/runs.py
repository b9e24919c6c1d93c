"""Runs on disk: append-only, resumable, readable by the CLI, the TUI and reports.

A run directory holds
* `run.json` — the full configuration and provenance (written once, atomically);
* `events.jsonl` — typed, versioned events, one JSON object a line, flushed and fsynced as written,
  so a crash loses at most the evaluation in flight; a torn last line is ignored on reading;
* `result.json` — the outcome (written atomically at the end);
* `.lock` — held (flock) by the one process writing the run; it names that process's PID.

Files a run writes are opened without following symbolic links, so a crafted run directory cannot
redirect a write outside it. A write that fails (disk full, read-only) is undone to the last complete
line and reported as a UserError: everything written before it is kept and the run stays resumable.

Events are the typed records of `core/events.py`; this module only stores and reads them.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import tempfile
import time
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path

from .errors import UserError
from .events import Candidate, Event, finite, loads, parse_event, stamp
from .typecheck import has_type, type_name

SCHEMA = 1  # of run.json
#: Fields of run.json every reader relies on, with their types (`objective` is `{"objective": name, ...}`).
RUN_FIELDS = {"model": str, "objective": str, "searcher": str, "k": int}
#: Fields of result.json every reader relies on (others are informative).
RESULT_FIELDS = {
    "removed": list[int],
    "value": float,
    "evaluations": int | None,
    "seconds": float | None,
    "cached_from_memo": int | None,
    "aborted": int | None,
}
FAULT_ENV = "DEPTHPRUNE_FAULT"
_fault_hits: dict[str, int] = {}


def fault_point(name: str, before=None) -> None:
    """Test-only fault injection, inert unless $DEPTHPRUNE_FAULT is set to `<name>:<n>[:<signal>]`:
    the n-th time this process reaches point `name` it calls `before()` (if given) and sends itself
    <signal> (default KILL). Points: `evaluate` (a candidate computed, not yet recorded), `append`
    (before a line is written), `torn-append` (half the line written), `appended` (line fsynced),
    `rename` (a JSON file's temporary copy complete, before the rename)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec or spec.split(":")[0] != name:
        return
    _, n, *sig = spec.split(":")
    _fault_hits[name] = _fault_hits.get(name, 0) + 1
    if _fault_hits[name] == int(n):
        if before is not None:
            before()
        os.kill(os.getpid(), getattr(signal, "SIG" + (sig[0] if sig else "KILL")))


def _write_failed(path: Path, exc: OSError) -> UserError:
    return UserError(f"cannot write {path} ({exc.strerror or exc}); everything written before is kept")


def check_writable(directory: Path, source: str) -> None:
    """Create `directory` if needed and prove a small file can be written and synced there, so a
    read-only or full disk is reported before any work starts."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory, prefix=".write-probe-") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise UserError(
            f"directory {str(directory)!r} (from {source}) is not writable ({exc.strerror or exc})"
        ) from None


def write_json_atomic(path: Path, data: dict, indent: int | None = 2) -> None:
    """Write JSON to a temporary file in the same directory, fsync it, and rename it into place:
    readers see the old file or the new one, never a mix. A failed write leaves the old file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=indent, separators=None if indent else (",", ":"))
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        fault_point("rename")
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _write_failed(path, exc) from None


def append_line(path: Path, line: str) -> None:
    """Append one line (no newline inside) durably: a torn last line left by a crash is cut off
    first, so it never merges with the new one; a failed write (a full disk, an I/O error) is cut
    back to the previous end, so the file never keeps a partial line. Unbuffered: nothing is left
    to flush when the file is closed, so a failure is reported once, as a UserError. Symbolic
    links are not followed."""
    data = (line + "\n").encode()
    fault_point("append")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise _write_failed(path, exc) from None
    size = None
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size:
            begin = max(0, size - 65536)
            tail = os.pread(fd, size - begin, begin)
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                size = begin + cut + 1 if cut >= 0 else (0 if begin == 0 else size)
                os.ftruncate(fd, size)
        end = size
        fault_point("torn-append", lambda: os.pwrite(fd, data[: len(data) // 2], end))
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], end + written)
        os.fsync(fd)
    except OSError as exc:
        if size is not None:
            with suppress(OSError):  # nothing more can be done; the reader ignores a torn last line
                os.ftruncate(fd, size)
        raise _write_failed(path, exc) from None
    finally:
        os.close(fd)
    fault_point("appended")


def complete_lines(path: Path) -> list[str]:
    """The complete lines of an append-only file; whatever follows the last newline is an unfinished
    write and is left out. Read as bytes, so a stray "\r" is no line end."""
    return path.read_bytes().decode(errors="replace").split("\n")[:-1] if path.is_file() else []


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
    def create(cls, runs_dir: Path, config: dict, name: str | None = None) -> Run:
        """A new run directory: `name` when given (a study cell; it must not exist yet), else
        `<time>-<model>-<objective>-<searcher>-k<k>` made unique."""
        if name is not None and (Path(name).name != name or name in ("", ".", "..")):
            raise UserError(f"run name {name!r} must be a plain directory name inside the runs directory")
        check_writable(runs_dir, "--runs-dir")
        when = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        base = (
            name
            or f"{when}-{slug(config['model'])}-{slug(config['objective']['objective'])}-{config['searcher']}-k{config['k']}"
        )
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
    def open(cls, ref: str | Path, runs_dir: Path | None = None, source: str = "RUN") -> Run:
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
            config = loads(meta.read_bytes())
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise UserError(f"{meta}: corrupt run.json (from {source})") from None
        if not isinstance(config, dict) or config.get("schema") != SCHEMA:
            raise UserError(f"{meta}: not a depthprune run (schema {SCHEMA}) (from {source})")
        for key, hint in RUN_FIELDS.items():
            value = config.get(key)
            value = value.get("objective") if key == "objective" and isinstance(value, dict) else value
            if not has_type(value, hint):
                name = "objective.objective" if key == "objective" else key
                raise UserError(f"{meta}: run.json field {name}={value!r} should be {type_name(hint)} (from {source})")
        return cls(path, config)

    def update_config(self, config: dict) -> None:
        """Replace run.json's provenance (atomically; the id and schema stay): a run is created before
        its model loads, and completed once it has."""
        self.config = {"schema": SCHEMA, "id": self.id, **config}
        write_json_atomic(self.path / "run.json", self.config)

    @contextmanager
    def writing(self):
        """Hold the run's write lock for the duration; another process holding it is a UserError naming
        its PID. The lock is an flock, so a killed writer releases it with its last breath."""
        self.refuse_if_linked()
        path = self.path / ".lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise UserError(f"cannot lock run {self.id} ({path}: {exc.strerror or exc})") from None
        try:
            for attempt in range(20):  # a reader's brief shared lock (writer_pid) must not look like a writer
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                    if holder or attempt == 19:
                        raise self._busy(holder or "?") from None
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield self
        finally:
            os.close(fd)

    def refuse_if_linked(self) -> None:
        """A UserError when the run directory is a symbolic link: runs are never written through one
        (it may point outside the runs directory)."""
        if self.path.is_symlink():
            raise UserError(
                f"run {str(self.path)!r} is a symbolic link (to {str(self.path.resolve())!r}); "
                f"runs are never written through links: use the directory itself"
            )

    def _busy(self, holder) -> UserError:
        return UserError(
            f"run {self.id} is being written by process {holder} (lock {self.path / '.lock'}); "
            f"wait for it or stop it first"
        )

    def refuse_if_written(self) -> None:
        """A UserError naming the PID of the process writing this run, if one is (checked before slow work)."""
        holder = self.writer_pid()
        if holder is not None:
            raise self._busy(holder)

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

    def append(self, event: Event) -> Event:
        """Append one event (stamped with the time), fsynced before returning (`append_line`); a
        failed write is a UserError that says how to continue the run."""
        event = stamp(event)
        self._check_events_file()
        try:
            append_line(self.path / "events.jsonl", event.to_json())
        except UserError as exc:
            raise UserError(f"{exc}; continue with: depthprune prune --resume {self.path}") from None
        return event

    def events(self) -> list[Event]:
        """All complete events; a torn last line (crash mid-write) is ignored, a broken or invalid
        line elsewhere is an error naming it."""
        path = self.path / "events.jsonl"
        self._check_events_file()
        return [
            parse_event(line, f"{path}:{lineno}")
            for lineno, line in enumerate(complete_lines(path), start=1)
            if line.strip()
        ]

    def _check_events_file(self) -> None:
        """events.jsonl must be a regular file (or absent): a directory or a symbolic link there is a
        damaged run, which no resume can repair."""
        path = self.path / "events.jsonl"
        if path.is_symlink() or (path.exists() and not path.is_file()):
            what = "a symbolic link" if path.is_symlink() else "not a regular file"
            raise UserError(
                f"{path} is {what}: run {self.id} is damaged and cannot be read or continued; start a new run"
            )

    def memo(self) -> dict[frozenset, float]:
        """{removal set: objective value} of every complete candidate stored in the run."""
        return {frozenset(e.removed): e.value for e in self.events() if isinstance(e, Candidate) and not e.aborted}

    def computed_candidates(self) -> int:
        """Candidates the objective computed (aborted ones included, memo hits not): a run's evaluation count."""
        return sum(1 for e in self.events() if isinstance(e, Candidate) and not e.cached)

    # -- result ----------------------------------------------------------------------------

    def write_result(self, result: dict) -> None:
        write_json_atomic(self.path / "result.json", result)

    def result(self) -> dict | None:
        path = self.path / "result.json"
        if not path.is_file():
            return None
        try:
            result = loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError, RecursionError):
            result = None
        if not isinstance(result, dict) or not isinstance(result.get("removed"), list) or "value" not in result:
            raise UserError(f"{path}: corrupt result.json")
        for key, hint in RESULT_FIELDS.items():
            if not has_type(result.get(key), hint) or not finite(result.get(key)):
                raise UserError(f"{path}: result.json field {key}={result.get(key)!r} should be {type_name(hint)}")
        return result

    @property
    def state(self) -> str:
        """finished | running (a live process holds the lock) | stopped | incomplete (killed; resumable)."""
        if (self.path / "result.json").is_file():
            return "finished"
        if self.writer_pid() is not None:
            return "running"
        events = self.events()
        if events and events[-1].kind == "stopped":
            return "stopped"
        return "incomplete"


def list_runs(runs_dir: Path, unreadable: list[str] | None = None) -> list[Run]:
    """Every readable run under `runs_dir`, oldest first. A run whose run.json, events or result
    cannot be read is left out (one damaged run never hides the others); when `unreadable` is given,
    the reason for each one left out is appended to it (a one-line UserError message)."""
    runs = []
    if runs_dir.is_dir():
        for path in sorted(runs_dir.iterdir()):
            if (path / "run.json").is_file():
                try:
                    run = Run.open(path)
                    run.events()
                    run.result()
                except UserError as exc:
                    if unreadable is not None:
                        unreadable.append(str(exc))
                    continue
                runs.append(run)
    return runs
