"""Runs execute in a separate process: launching one, finding its run directory, stopping it.

The child (`python -m depthprune.cli prune ...`) starts in its own session with stdin from
/dev/null and stdout/stderr in `<runs_dir>/.tui-logs/`, so it survives the TUI quitting and the
terminal hanging up. Its run directory is the one whose run.json names the child's PID. Stopping
is SIGTERM to the process holding the run's write lock: the search stops between two candidates
and marks the run stopped (resumable).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.runs import Run, list_runs

LOG_DIR = ".tui-logs"


@dataclass
class Launch:
    """A child process started for a search, and where its output goes."""

    process: subprocess.Popen
    log: Path
    runs_dir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def run(self) -> Run | None:
        """The run directory the child created, once its run.json exists."""
        for run in reversed(list_runs(self.runs_dir)):
            if run.config.get("pid") == self.pid:
                return run
        return None

    def failure(self) -> str | None:
        """Why the child ended before creating a run: its last `error:` line (else its last line);
        None while it runs or when it succeeded."""
        code = self.process.poll()
        if code is None or code == 0:
            return None
        lines = [line.strip() for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        return (errors or lines or [f"exited with status {code}"])[-1]


def launch(argv: list[str], runs_dir: Path) -> Launch:
    """Start `argv` detached (own session, no terminal), output to a log file under the runs directory."""
    logs = runs_dir / LOG_DIR
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return Launch(process, log, runs_dir)


def stop(run: Run) -> int | None:
    """Ask the process writing `run` to stop (SIGTERM); its PID, or None when nobody writes it."""
    pid = run.writer_pid()
    if pid is None or pid <= 0:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    return pid
