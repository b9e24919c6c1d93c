"""Runs execute in a separate process: launching one, finding its run directory, stopping it;
resuming, evaluating and exporting a run are child processes the same way (`*_argv`).

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
import sys
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
    label: str = ""  # what the child does, for the jobs pane ("search", "evaluate RUN", ...)
    run_id: str | None = None  # the run it works on, when known at launch

    def status(self) -> str:
        """running | done | failed (exit status)."""
        code = self.process.poll()
        return "running" if code is None else "done" if code == 0 else f"failed ({code})"

    def last_line(self) -> str:
        """The last non-empty line of the child's output (its error, or what it printed last)."""
        try:
            lines = [line.strip() for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return ""
        return lines[-1] if lines else ""

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


def launch(argv: list[str], runs_dir: Path, label: str = "", run_id: str | None = None) -> Launch:
    """Start `argv` detached (own session, no terminal), output to a log file under the runs directory."""
    logs = runs_dir / LOG_DIR
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Launch(process, log, runs_dir, label, run_id)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "depthprune.cli", *args]


def resume_argv(run: Run, runs_dir: Path) -> list[str]:
    return cli("prune", "--resume", str(run.path), "--runs-dir", str(runs_dir))


def eval_argv(run: Run, runs_dir: Path, tasks: str, limit: str, seq_len: str, data_dir: str) -> list[str]:
    """`depthprune eval --run RUN`: the scores become a `benchmarked` event of the run."""
    argv = cli("eval", "--run", str(run.path), "--runs-dir", str(runs_dir), "--tasks", tasks)
    for flag, value in (("--limit", limit), ("--seq-len", seq_len), ("--data-dir", data_dir)):
        if value.strip():
            argv += [flag, value.strip()]
    return argv


def export_argv(run: Run, runs_dir: Path, out: str) -> list[str]:
    return cli("export", str(run.path), "--runs-dir", str(runs_dir), "--out", out)


def heal_argv(run: Run, runs_dir: Path, values: dict[str, str]) -> list[str]:
    """`depthprune heal --run RUN`: the healed checkpoint goes to <run>/healed-<method>, its before/after
    metrics and losses become a `healed` event of the run. `values`: method, steps, tasks, limit, data_dir."""
    argv = cli("heal", "--run", str(run.path), "--runs-dir", str(runs_dir), "--method", values["method"].strip())
    argv += ["--eval-tasks", values["tasks"].strip()]
    for flag, key in (("--steps", "steps"), ("--eval-limit", "limit"), ("--data-dir", "data_dir")):
        if values[key].strip() and not (key == "steps" and values["method"].strip() != "lora"):
            argv += [flag, values[key].strip()]
    return argv


def stop(run: Run, sig: int = signal.SIGTERM) -> int | None:
    """Send `sig` to the process writing `run`; its PID, or None when nobody writes it."""
    pid = run.writer_pid()
    if pid is None or pid <= 0:
        return None
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return None
    return pid
