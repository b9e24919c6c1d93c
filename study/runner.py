"""Running a study: every cell is a normal run in the runs directory (resumable; a finished cell is
skipped), then every distinct pruned model — and the dense model — is scored once on the study's
evaluation suite, whatever objective found it.

Study files live in `<runs_dir>/studies/<name>/`: `study.json` (the configuration, rewritten on
every start once every cell's settings have been checked) and `evaluations.jsonl` (append-only: one line per (model, removed set), tagged with
the suite it was scored on). The scores are also appended to each cell's run as `evaluated` events,
so `runs`, the TUI and reports see them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..core.errors import UserError
from ..core.events import Benchmarked
from ..core.items import copy_items, write_items
from ..core.runs import Run, append_line, complete_lines, write_json_atomic
from ..pipeline.prune import PruneConfig, benchmarked, check_seq_len, resolve_protected, resume, start, validate
from ..searchers import Space
from .config import StudyConfig
from .executors import Job, make_executor

Progress = Callable[[str, int, int], None]  # (phase, done, total)


def study_dir(runs_dir: Path, name: str) -> Path:
    return runs_dir / "studies" / name


def suite_key(config: StudyConfig) -> str:
    """Identity of the evaluation suite (tasks, limits, seq_len): scores on another suite are not reused."""
    e = config.evaluation
    return hashlib.sha256(
        json.dumps([sorted(e["tasks"]), e["limit"], e["windows"], e["seq_len"]]).encode()
    ).hexdigest()[:16]


class EvaluationStore:
    """{(model, removed): task metrics} for one suite, backed by an append-only JSON-lines file."""

    def __init__(self, path: Path, suite: str):
        self.path, self.suite = path, suite
        self.scores: dict[tuple[str, tuple[int, ...]], dict] = {}
        for line in complete_lines(path):
            try:
                row = json.loads(line)
                if row["suite"] == suite:
                    self.scores[(row["model"], tuple(row["removed"]))] = row
            except (KeyError, TypeError, ValueError, RecursionError):
                continue  # a damaged line costs a re-evaluation, nothing else

    def add(self, row: dict) -> None:
        """Append `row`; its per-item results (a dict) go to a file of `core.items`, the row names it."""
        if isinstance(row.get("items"), dict):
            row = {**row, "items": write_items(self.path.parent, row["items"])}
        row = {"suite": self.suite, **row}
        append_line(self.path, json.dumps(row))
        self.scores[(row["model"], tuple(row["removed"]))] = row


# -- work units (run in executor workers: plain functions of plain arguments) -------------------

_loaded: dict = {}


def _model(config: PruneConfig):
    """The model for `config`, loaded once per worker process (the last one only: memory)."""
    from ..core.loading import load_model

    key = (config.model, config.device, config.dtype, config.trust_remote_code)
    if key not in _loaded:
        _loaded.clear()
        _loaded[key] = load_model(
            config.model, device=config.device, dtype=config.dtype, trust_remote_code=config.trust_remote_code
        )
    return _loaded[key]


def search_cell(fields: dict, runs_dir: str, name: str) -> dict:
    """Run (or resume) one cell's search (`fields`: its PruneConfig as a dict); returns its result."""
    config = PruneConfig(**fields)
    lm = _model(config)
    path = Path(runs_dir) / name
    if (path / "run.json").is_file():
        _, result = resume(str(path), Path(runs_dir), lm=lm)
    else:
        _, result = start(config, Path(runs_dir), lm=lm, name=name)
    return {"name": name, "removed": result["removed"], "value": result["value"]}


def evaluate_model(fields: dict, removed: list[int], evaluation: dict) -> dict:
    """Score one (model, removed set) on the suite: perplexity tasks on their first `windows`
    windows (default `limit`), multiple-choice tasks on their first `limit` items."""
    from ..core.evaluate import evaluate
    from ..core.tasks import get_task

    config = PruneConfig(**fields)
    tasks: dict[str, dict] = {}
    items: dict[str, dict] = {}
    seconds, report = 0.0, {}
    for kind, limit in (("ppl", evaluation["windows"] or evaluation["limit"]), ("mc", evaluation["limit"])):
        names = [t for t in evaluation["tasks"] if get_task(t).kind == kind]
        if names:
            report = evaluate(
                _model(config),
                names,
                removed,
                limit=limit,
                seq_len=evaluation["seq_len"],
                data_dir=Path(config.data_dir) if config.data_dir else None,
                batch_size=config.batch_size,
            )
            tasks |= report["tasks"]
            items |= report["items"]
            seconds += report["seconds"]
    return {
        "model": config.model,
        "removed": sorted(removed),
        "tasks": {t: tasks[t] for t in evaluation["tasks"]},
        "items": {t: items[t] for t in evaluation["tasks"]},
        "seconds": round(seconds, 3),
        "n_blocks": report["n_blocks"],
    }


SEARCH_KEYS = (
    "model",
    "objective",
    "searcher",
    "k",
    "seed",
    "protect",
    "calib",
    "calib_samples",
    "calib_seq_len",
    "options",
)


def check_cell(config: StudyConfig, cell, path: Path) -> None:
    """A cell's existing run must have been started with the cell's search settings (a changed study
    file under the same name would otherwise mix two grids)."""
    if not (path / "run.json").is_file():
        return
    stored = Run.open(path).config.get("config", {})
    wanted = asdict(config.prune_config(cell))
    for key in SEARCH_KEYS:
        if stored.get(key) != wanted[key]:
            raise UserError(
                f"study {config.name!r}: cell {path.name} was run with {key} = {stored.get(key)!r}, the "
                f"study now asks for {wanted[key]!r}; give the changed study a new name"
            )


def check_study(config: StudyConfig, cells) -> None:
    """Everything a cell could refuse, checked before the first cell runs: each cell's configuration
    (searcher options in their domains, device, ...), and per model every k of the grid, the
    protected blocks and the calibration and evaluation lengths (the model is loaded once for this,
    in this process, where the in-process executor reuses it)."""
    where = f"study {config.name!r}"
    for cell in cells:
        validate(config.prune_config(cell), f"{where} cell {cell.run_name(config.name)}")
    for model in config.models:
        first = next(c for c in cells if c.model == model)
        lm = _model(config.prune_config(first))
        protected = resolve_protected(config.protect, lm.n_blocks, f"{where} protect")
        for k in config.k:
            Space(lm.n_blocks, k, protected, source=f"{where} k = {k} for {model}")
        check_seq_len(lm, config.evaluation["seq_len"], f"{where} [evaluation] seq_len")
        for objective in config.objectives:
            cell = next(c for c in cells if (c.model, c.objective) == (model, objective))
            given = config.calibration.get(objective, {}).get("seq_len")
            if given is not None:
                check_seq_len(lm, given, f"{where} [calibration.{objective}] seq_len")


# -- the study loop ----------------------------------------------------------------------------


def run_study(config: StudyConfig, runs_dir: Path, progress: Progress | None = None) -> dict:
    """Search every pending cell, then evaluate every distinct pruned model; returns counts."""
    tick = progress or (lambda *_: None)
    folder = study_dir(runs_dir, config.name)
    cells = config.cells()
    names = {c: c.run_name(config.name) for c in cells}
    for c in cells:  # a refused rerun changes nothing: study.json is written only after every check
        check_cell(config, c, runs_dir / names[c])
    check_study(config, cells)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "study.json", config.to_dict())
    pending = [c for c in cells if not (runs_dir / names[c] / "result.json").is_file()]
    executor = make_executor(config.executor, config.device)
    try:
        done = len(cells) - len(pending)
        tick("search", done, len(cells))
        jobs: list[Job] = [(search_cell, (asdict(config.prune_config(c)), str(runs_dir), names[c])) for c in pending]
        for _ in executor.run(jobs):
            done += 1
            tick("search", done, len(cells))

        store = EvaluationStore(folder / "evaluations.jsonl", suite_key(config))
        found = {c: (Run.open(runs_dir / names[c]).result() or {})["removed"] for c in cells}
        wanted = {(c.model, ()) for c in cells} | {(c.model, tuple(found[c])) for c in cells}
        todo = sorted(w for w in wanted if w not in store.scores)
        any_cell = {c.model: c for c in cells}
        jobs = [
            (evaluate_model, (asdict(config.prune_config(any_cell[model])), list(removed), config.evaluation))
            for model, removed in todo
        ]
        evaluated = len(wanted) - len(todo)
        tick("evaluate", evaluated, len(wanted))
        for row in executor.run(jobs):
            store.add(row)
            evaluated += 1
            tick("evaluate", evaluated, len(wanted))
    finally:
        executor.close()

    for c in cells:
        row = store.scores[(c.model, tuple(found[c]))]
        run = Run.open(runs_dir / names[c])
        if not benchmarked(run, row["removed"], store.suite):
            with run.writing():
                run.append(
                    Benchmarked(
                        removed=sorted(row["removed"]),
                        tasks=row["tasks"],
                        limit=config.evaluation["limit"],
                        seq_len=config.evaluation["seq_len"],
                        seconds=row["seconds"],
                        suite=store.suite,
                        items=copy_items(folder, row.get("items"), run.path, str(store.path)),
                    )
                )
    return {
        "study": config.name,
        "cells": len(cells),
        "searched": len(pending),
        "models_evaluated": len(wanted),
        "evaluations_run": len(todo),
        "path": str(folder),
    }
