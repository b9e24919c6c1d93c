"""What the Studies and Study screens show about the studies of a runs directory (plain Python, no Textual).

Definitions:
* a *study* is a folder `<runs_dir>/studies/<name>/` holding `study.json` (see `study.runner`);
* a *cell*'s state is its run's `Run.state` (finished | running | stopped | incomplete), *not started*
  while its run directory does not exist, *unreadable* when its run files are corrupt;
* the *models needed* are those `run_study` evaluates, as far as known so far: the dense model of every
  grid model plus the removed set of every finished cell, distinct per (model, removed set); the
  *models evaluated* are those of them scored in the study's evaluation store on its current suite;
* the *report* is `study.report.build` over `study.results.collect` (nothing is recomputed here); it
  exists once some cell has its evaluation scores;
* a cell's *progress*: while its run is written, the phase and, searching, candidates done/planned
  (`runs_index.progress_text`); else the candidates it scored and the memo hits among them; its *worker*: the process writing it
  (the latest line of the study's workers.jsonl for the cell, else run.json's pid), with the device
  from run.json and, where the worker saw only some GPUs, which (CUDA_VISIBLE_DEVICES).
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..core.runs import Run, complete_lines
from ..study.config import Cell, StudyConfig
from ..study.report import build
from ..study.results import collect, open_study
from ..study.runner import EvaluationStore, study_dir, suite_key
from .runs_index import RunsIndex

STATES = ("finished", "running", "stopped", "incomplete", "not started", "unreadable")
METRICS = {"acc_avg": "acc avg", "ppl_avg": "ppl avg"}  # column labels of the report's averages


def list_studies(runs_dir: Path) -> list[str]:
    """Names of the studies in `runs_dir`, sorted."""
    folder = runs_dir / "studies"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "study.json").is_file())


@dataclass(frozen=True)
class Progress:
    """How far a study's grid is: cells per state (every state of `STATES`, in order) and models."""

    cells: dict[str, int]
    models_evaluated: int
    models_needed: int

    @property
    def total(self) -> int:
        return sum(self.cells.values())

    def unfinished(self) -> list[str]:
        """The cells not finished, by state, states with no cells left out: ["1 running", "3 not started"]."""
        return [f"{n} {state}" for state, n in self.cells.items() if n and state != "finished"]

    def others_text(self) -> str:
        return " · ".join(self.unfinished()) or "—"

    def models_text(self) -> str:
        return f"{self.models_evaluated}/{self.models_needed}"

    def line(self) -> str:
        """One line, e.g. "cells 11/16 finished · 1 stopped · 3 not started · models evaluated 9/10"."""
        return " · ".join(
            [
                f"cells {self.cells['finished']}/{self.total} finished",
                *self.unfinished(),
                f"models evaluated {self.models_text()}",
            ]
        )


def _cell_state(path: Path) -> tuple[str, tuple[int, ...] | None]:
    """(state, removed set once finished) of the cell whose run directory is `path`."""
    if not (path / "run.json").is_file():
        return "not started", None
    try:
        run = Run.open(path)
        state = run.state
        return state, tuple(run.result()["removed"]) if state == "finished" else None
    except UserError:
        return "unreadable", None


def progress(config: StudyConfig, runs_dir: Path) -> Progress:
    """The grid's progress on disk now."""
    cells = dict.fromkeys(STATES, 0)
    needed = {(model, ()) for model in config.models}
    for cell in config.cells():
        state, removed = _cell_state(runs_dir / cell.run_name(config.name))
        cells[state] += 1
        if removed is not None:
            needed.add((cell.model, removed))
    store = EvaluationStore(study_dir(runs_dir, config.name) / "evaluations.jsonl", suite_key(config))
    return Progress(cells, len(needed & store.scores.keys()), len(needed))


@dataclass(frozen=True)
class StudyView:
    """One study as shown: its progress, its report (None before any scores) and why a part is missing."""

    name: str
    progress: Progress | None
    report: dict | None
    problem: str | None = None

    @property
    def groups(self) -> list[dict]:
        """The report's (model, k) groups that have tables, in report order."""
        return [g for g in (self.report or {}).get("groups", []) if g["tables"]]


def load(name: str, runs_dir: Path, with_report: bool = True) -> StudyView:
    """The study `name` as it is on disk now (its report only `with_report`); unreadable files become
    `problem`, never an exception."""
    try:
        config, _ = open_study(name, runs_dir)
    except UserError as exc:
        return StudyView(name, None, None, str(exc))
    grid = progress(config, runs_dir)
    if not with_report:
        return StudyView(name, grid, None)
    try:
        data = collect(config, runs_dir)
    except UserError as exc:
        return StudyView(name, grid, None, str(exc))
    return StudyView(name, grid, build(config, data) if data["rows"] else None)


@dataclass(frozen=True)
class CellRow:
    """One cell as the Study screen's cells table shows it (`run`: its run directory's name)."""

    cell: Cell
    run: str
    state: str
    progress: str = ""
    worker: str = ""

    def label(self, models: int) -> str:
        """ "ppl greedy k2 s0" (the model first when the study has several); "(baseline)" marked."""
        c = self.cell
        name = f"{c.searcher}{' (baseline)' if c.baseline else ''}"
        return f"{c.model + ' ' if models > 1 else ''}{c.objective} {name} k{c.k} s{c.seed}"


def workers(folder: Path) -> dict[str, dict]:
    """{cell run name: its latest workers.jsonl line}; damaged lines are skipped."""
    out = {}
    for line in complete_lines(folder / "workers.jsonl"):
        try:
            row = json.loads(line)
            out[row["cell"]] = row
        except (KeyError, TypeError, ValueError, RecursionError):
            continue
    return out


def worker_text(run: Run, noted: dict | None, alive: bool) -> str:
    """ "pid 4242 · cuda:0 (GPU 3) · host" while it runs; where it ran (the device) once not."""
    device = run.config.get("device") or ""
    gpus = (noted or {}).get("gpus")
    if device.startswith("cuda") and gpus:
        device += f" (GPU {gpus})"
    if not alive:
        return device
    host = (noted or {}).get("host")
    parts = [f"pid {(noted or {}).get('pid') or run.config.get('pid')}", device or "loading"]
    return " · ".join(parts + ([host] if host and host != socket.gethostname() else []))


def scored_text(candidates: int, memo_hits: int) -> str:
    """ "137 candidates · 41 memo hits": the Live screen's counts (the cost table's evaluations are the difference)."""
    text = f"{candidates} candidate{'' if candidates == 1 else 's'}"
    return text + (f" · {memo_hits} memo hit{'' if memo_hits == 1 else 's'}" if memo_hits else "")


def cell_rows(config: StudyConfig, runs_dir: Path, index: RunsIndex) -> list[CellRow]:
    """Every cell of the grid, in the grid's order, as it is on disk now (`index` caches the runs)."""
    noted = workers(study_dir(runs_dir, config.name))
    rows = []
    for cell in config.cells():
        name = cell.run_name(config.name)
        if not (runs_dir / name / "run.json").is_file():
            rows.append(CellRow(cell, name, "not started"))
            continue
        try:
            run = Run.open(runs_dir / name)
            row = index.row(run)
        except UserError:
            rows.append(CellRow(cell, name, "unreadable"))
            continue
        alive = row["state"] == "running"
        progress = row["progress"] if alive else scored_text(row["cands"], row["memo_hits"])
        rows.append(CellRow(cell, name, row["state"], progress, worker_text(run, noted.get(name), alive)))
    return rows


# -- cells of the Study screen's tables ------------------------------------------------------


def number(value) -> str:
    """A table cell: "—" for a missing value, 5 significant digits for a float."""
    if value is None:
        return "—"
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def results_table(group: dict, objective: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the Table 1/2 of `objective` in `group`: dense first, then searchers and baselines;
    per task its primary metric (accuracy %, perplexity), the averages and the objective value."""
    rows = group["tables"][objective]
    columns = [c for c in rows[0] if c not in ("searcher", "removed")]
    header = ["searcher", "removed"] + [METRICS.get(c, c) for c in columns]
    return header, [
        [r["searcher"], ",".join(map(str, r["removed"])) or "—"] + [number(r.get(c)) for c in columns] for r in rows
    ]


def cost_table(group: dict, objective: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the search cost of `objective`'s cells: wall seconds, evaluations, block-forwards."""
    rows = [c for c in group["cost"] if c["objective"] == objective]
    return (
        ["searcher", "seconds", "evaluations", "block-forwards"],
        [[c["searcher"], number(c["seconds"]), number(c["evaluations"]), number(c["block_forwards"])] for c in rows],
    )


def agreement_lines(group: dict, objective: str) -> list[str]:
    """Rank agreement (ρ, τ) and spread (σ²) across the searchers of `objective`, and the Jaccard means."""
    agreement = group["rank_agreement"][objective]
    if agreement["spearman"] is None:
        lines = [f"perplexity rank vs accuracy rank: — ({agreement['n']} models; needs ≥ 3 with differing scores)"]
    else:
        lines = [
            (
                f"perplexity rank vs accuracy rank ({agreement['n']} models): Spearman ρ {agreement['spearman']:+.3f}"
                f" · Kendall τ {agreement['kendall']:+.3f}"
            )
        ]
    for metric, spread in group["spread"][objective].items():
        lines.append(
            f"spread of {METRICS[metric]} across {spread['n']} searchers: σ² {number(spread['var'])} · "
            f"range {number(spread['range'])} · mean {number(spread['mean'])}"
        )
    jaccard = group["jaccard"]
    lines.append(
        f"Jaccard of removed sets: within an objective {number(jaccard['within_objective'])} · "
        f"across objectives {number(jaccard['across_objectives'])}"
    )
    return lines
