"""The rows of the Runs table, read in a worker and cached per run by the size and time of its files.

A row holds `core.tables.run_row`'s fields (what `depthprune runs ls` prints) plus:
* `state`: `running` whenever a process holds the run's lock — in any phase, benchmarking after
  the search included — else the stored state;
* `progress`: a running run's phase and candidate count ("searching 12/31", "benchmarking 1/2");
* `cands`: the run's candidate events (memo hits, aborts and the final re-scoring included);
* `memo_hits`: those of them served by the memo (no model time);
* `started`: run.json's start time, as `YYYY-MM-DD HH:MM` (UTC);
* `bench`: the mean primary accuracy over the multiple-choice tasks benchmarked on the result
  (perplexity tasks are not averaged with accuracies), None when none was benchmarked.
"""

from __future__ import annotations

from pathlib import Path

from ..core.events import Event
from ..core.runs import Run, list_runs
from ..core.tables import run_row
from .tail import EventTail
from .viewmodel import RunView, primary_metric


def _stamp(run: Run) -> tuple:
    out = []
    for name in ("events.jsonl", "result.json", "run.json"):
        try:
            st = (run.path / name).stat()
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def bench_average(view: RunView) -> float | None:
    found = view.configurations.get(view.removed)
    accs = [primary_metric(m)[1] for m in (found.tasks.values() if found else []) if "primary" in m]
    return sum(accs) / len(accs) if accs else None


def progress_text(view: RunView, alive: bool) -> str:
    if not alive:
        return ""
    phase = view.phase.phase if view.phase else "starting"
    if phase == "searching" and view.outcome is None:
        done, planned = view.progress()
        return f"searching {done}/{'?' if planned is None else planned}"
    p = view.phase
    return f"{phase} {p.done}/{p.total}" if p and p.total is not None and p.done is not None else phase


class RunsIndex:
    """Rows of every run in a runs directory; a run's row is rebuilt only when its files changed."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = runs_dir
        self.cache: dict[str, tuple[tuple, bool, dict, Run]] = {}

    def rows(self) -> tuple[list[dict], dict[str, Run]]:
        rows, runs = [], {}
        for run in list_runs(self.runs_dir):
            rows.append(self.row(run))
            runs[run.id] = self.cache[run.id][3]
        return rows, runs

    def row(self, run: Run) -> dict:
        """The row of one run, rebuilt only when its files or its writer changed."""
        stamp = _stamp(run)
        alive = run.writer_pid() is not None
        cached = self.cache.get(run.id)
        if cached is None or cached[0] != stamp or cached[1] != alive:
            events: list[Event] = EventTail(run.path / "events.jsonl").read()
            view = RunView(run.config)
            view.fold(events)
            row = run_row(run) | {
                "state": "running" if alive else run.state,
                "progress": progress_text(view, alive),
                "started": (run.config.get("started") or "")[:16].replace("T", " "),
                "bench": bench_average(view),
                "cands": view.done,
                "memo_hits": view.memo_hits,
            }
            cached = self.cache[run.id] = (stamp, alive, row, run)
        return cached[2]
