"""Running a study: every cell is a normal run in the runs directory (resumable; a finished cell is
skipped), then every distinct pruned model — and the dense model — is scored once on the study's
evaluation suite, whatever objective found it.

Study files live in `<runs_dir>/studies/<name>/`: `study.json` (the configuration, rewritten on
every start once every cell's settings have been checked), `evaluations.jsonl` (append-only: one line
per (model, removed set), tagged with the suite it was scored on) and `workers.jsonl` (append-only:
one line per cell search session, the worker that ran it: process id, host and the GPUs it saw
through CUDA_VISIBLE_DEVICES, None: all). The scores are also appended to each cell's run as
`evaluated` events, so `runs`, the TUI and reports see them.

With `heal = [...]` in the study, every distinct pruned model is then healed by each method (the heal
defaults: `heal.pipeline.HealRequest`, calibrated on the built-in text, which no evaluation task reads)
and scored on the same suite; the healed scores are lines of the same `evaluations.jsonl` tagged with
their method, and each cell's run gets a `healed` event (before: pruned, after: healed, on the suite;
no checkpoint is written). A finished heal is never redone.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import socket
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..core.errors import UserError
from ..core.events import Benchmarked, Healed
from ..core.items import copy_items, write_items
from ..core.runs import Run, append_line, complete_lines, slug, write_json_atomic
from ..pipeline.prune import PruneConfig, benchmarked, check_seq_len, resolve_protected, resume, start, validate
from ..searchers import Space
from .config import HEAL_CALIBRATION, StudyConfig
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
    """For one suite, backed by an append-only JSON-lines file: `scores` {(model, removed): row} of the
    pruned models and `healed` {(model, removed, method): row} of the healed ones (rows with `heal`)."""

    def __init__(self, path: Path, suite: str):
        self.path, self.suite = path, suite
        self.scores: dict[tuple[str, tuple[int, ...]], dict] = {}
        self.healed: dict[tuple[str, tuple[int, ...], str], dict] = {}
        for line in complete_lines(path):
            try:
                row = json.loads(line)
                if row["suite"] == suite:
                    self._keep(row)
            except (KeyError, TypeError, ValueError, RecursionError):
                continue  # a damaged line costs a re-evaluation, nothing else

    def _keep(self, row: dict) -> None:
        key = (row["model"], tuple(row["removed"]))
        if row.get("heal") is None:
            self.scores[key] = row
        else:
            self.healed[(*key, row["heal"]["method"])] = row

    def add(self, row: dict) -> None:
        """Append `row`; its per-item results (a dict) go to a file of `core.items`, the row names it."""
        if isinstance(row.get("items"), dict):
            row = {**row, "items": write_items(self.path.parent, row["items"])}
        row = {"suite": self.suite, **row}
        append_line(self.path, json.dumps(row))
        self._keep(row)


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


def search_cell(fields: dict, runs_dir: str, name: str, folder: str) -> dict:
    """Run (or resume) one cell's search (`fields`: its PruneConfig as a dict), first noting in the
    study `folder`'s workers.jsonl which worker runs it; returns its result."""
    config = PruneConfig(**fields)
    worker = {"cell": name, "pid": os.getpid(), "host": socket.gethostname()}
    append_line(Path(folder) / "workers.jsonl", json.dumps(worker | {"gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}))
    lm = _model(config)
    path = Path(runs_dir) / name
    if (path / "run.json").is_file():
        _, result = resume(str(path), Path(runs_dir), lm=lm)
    else:
        _, result = start(config, Path(runs_dir), lm=lm, name=name)
    return {"name": name, "removed": result["removed"], "value": result["value"]}


def _suite(lm, config: PruneConfig, removed: list[int], evaluation: dict) -> dict:
    """Score `lm` with `removed` skipped on the suite: perplexity tasks on their first `windows`
    windows (default `limit`), multiple-choice tasks on their first `limit` items."""
    from ..core.evaluate import evaluate
    from ..core.tasks import get_task

    tasks: dict[str, dict] = {}
    items: dict[str, dict] = {}
    seconds, report = 0.0, {}
    for kind, limit in (("ppl", evaluation["windows"] or evaluation["limit"]), ("mc", evaluation["limit"])):
        names = [t for t in evaluation["tasks"] if get_task(t).kind == kind]
        if names:
            report = evaluate(
                lm,
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


def evaluate_model(fields: dict, removed: list[int], evaluation: dict) -> dict:
    """Score one (model, removed set) on the suite (`fields`: a PruneConfig of the model, as a dict)."""
    config = PruneConfig(**fields)
    return _suite(_model(config), config, removed, evaluation)


def heal_model(fields: dict, removed: list[int], method: str, evaluation: dict, state: str, options: dict) -> dict:
    """Heal one (model, removed set) by `method` with the heal defaults changed by `options` (the
    study's [heal_options.<method>]), calibration disjoint from the suite's tasks, on a fresh copy of
    the model (healing changes its weights in place), and score it on the suite; the row carries the
    heal's record and `options`. `state`: beside it a LoRA heal keeps its training state, continued
    when a killed study runs again."""
    import shutil

    from ..core.loading import load_model
    from ..heal.lora import LoraSettings
    from ..heal.pipeline import HealRequest, apply, calibrate

    config = PruneConfig(**fields)
    calibration = {key: v for key, v in options.items() if key in HEAL_CALIBRATION}
    settings = {key: v for key, v in options.items() if key not in HEAL_CALIBRATION}
    request = HealRequest(
        method=method,
        removed=list(removed),
        out=Path(state),
        data_dir=Path(config.data_dir) if config.data_dir else None,
        resume=method == "lora",
        eval_tasks=list(evaluation["tasks"]),
        batch_size=config.batch_size,
        **calibration,
        **(settings if method == "linear" else {"lora": LoraSettings(**settings)}),
    )
    _loaded.clear()  # the healed copy replaces the cached model in memory
    lm = load_model(config.model, device=config.device, dtype=config.dtype, trust_remote_code=config.trust_remote_code)
    kept, calib = calibrate(lm, request)
    done = apply(lm, request, kept, calib)
    row = _suite(lm, config, list(kept), evaluation)
    shutil.rmtree(request.state_dir, ignore_errors=True)
    return row | {
        "heal": {
            "method": method,
            "options": options,
            "data_hash": calib.sha256,
            "calibration": calib.describe(),
            **done,
        },
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


def check_heal_options(config: StudyConfig, store: EvaluationStore) -> None:
    """Every stored heal by a method the study asks for must have been made with the study's options
    for that method (rows from before heal options were made with the defaults: {})."""
    for (model, removed, method), row in store.healed.items():
        stored, wanted = row["heal"].get("options", {}), config.heal_options.get(method, {})
        if method in config.heal and stored != wanted:
            raise UserError(
                f"study {config.name!r}: {model} with {list(removed)} removed was healed by {method} with "
                f"[heal_options.{method}] {stored!r}, the study now asks for {wanted!r}; give the changed study "
                f"a new name"
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
        if config.heal:
            check_heal(config, lm, protected, where)


def check_heal(config: StudyConfig, lm, protected: frozenset[int], where: str) -> None:
    """The heal rules that need only the model and the grid, checked before the first cell: the
    calibration length, `linear`'s family rule and block 0 protected (every removed set of the grid
    then has a block before each segment), `lora`'s peft. (`linear`'s exactness probe of the actual
    blocks, which refuses e.g. post-norm OPT, runs with each fit.)"""
    from ..heal.linear import family_refusal
    from ..heal.pipeline import HealRequest

    key = f"{where} heal = {config.heal!r}"
    check_seq_len(lm, HealRequest.calib_seq_len, f"{key} (the heal calibration length)")
    if "linear" in config.heal:
        refusal = family_refusal(lm.family)
        if refusal:
            raise UserError(
                f"{key}: linear healing cannot be fused exactly into {lm.family.model_type} (model "
                f"{lm.spec!r}): {refusal}; heal it with lora or leave it out of the study"
            )
        if 0 not in protected:
            raise UserError(
                f"{key}: linear healing fuses into the block before each removed segment and block 0 "
                f"has none; add protect = [0] to the study"
            )
    if "lora" in config.heal and importlib.util.find_spec("peft") is None:
        raise UserError(f"{key}: lora healing needs peft: pip install 'depthprune[heal]'")


# -- the study loop ----------------------------------------------------------------------------


def _record_benchmark(config: StudyConfig, store: EvaluationStore, path: Path, model: str, removed: list[int]) -> None:
    """Append the suite's scores of `removed` to the cell's run as a `benchmarked` event (once)."""
    row = store.scores[(model, tuple(removed))]
    run = Run.open(path)
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
                    items=copy_items(store.path.parent, row.get("items"), run.path, str(store.path)),
                )
            )


def _record_heal(store: EvaluationStore, path: Path, model: str, removed: list[int], method: str) -> None:
    """Append the heal of `removed` by `method` to the cell's run as a `healed` event (once per suite):
    before = the pruned model's suite scores, after = the healed model's; no checkpoint (`out` None)."""
    row = store.healed[(model, tuple(removed), method)]
    run = Run.open(path)
    if any(
        isinstance(e, Healed)
        and (e.method, e.removed, e.settings.get("suite")) == (method, row["removed"], store.suite)
        for e in run.events()
    ):
        return
    heal = row["heal"]
    with run.writing():
        run.append(
            Healed(
                method=method,
                removed=row["removed"],
                data_hash=heal["data_hash"],
                settings={"suite": store.suite, "calibration": heal["calibration"], **heal["settings"]},
                before=store.scores[(model, tuple(removed))]["tasks"],
                after=row["tasks"],
                losses=heal["losses"],
                seconds=heal["seconds"],
            )
        )


def run_study(config: StudyConfig, runs_dir: Path, progress: Progress | None = None) -> dict:
    """Search every pending cell, then evaluate every distinct pruned model; returns counts."""
    tick = progress or (lambda *_: None)
    folder = study_dir(runs_dir, config.name)
    cells = config.cells()
    names = {c: c.run_name(config.name) for c in cells}
    for c in cells:  # a refused rerun changes nothing: study.json is written only after every check
        check_cell(config, c, runs_dir / names[c])
    check_study(config, cells)
    check_heal_options(config, EvaluationStore(folder / "evaluations.jsonl", suite_key(config)))
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "study.json", config.to_dict())
    pending = [c for c in cells if not (runs_dir / names[c] / "result.json").is_file()]
    executor = make_executor(config.executor, config.device)
    try:
        done = len(cells) - len(pending)
        tick("search", done, len(cells))
        jobs: list[Job] = [
            (search_cell, (asdict(config.prune_config(c)), str(runs_dir), names[c], str(folder))) for c in pending
        ]
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
        for c in cells:
            _record_benchmark(config, store, runs_dir / names[c], c.model, found[c])

        heals = sorted({(c.model, tuple(found[c]), method) for c in cells for method in config.heal})
        heal_todo = [h for h in heals if h not in store.healed]
        jobs = [
            (
                heal_model,
                (
                    asdict(config.prune_config(any_cell[model])),
                    list(removed),
                    method,
                    config.evaluation,
                    str(folder / "heal-state" / f"{slug(model)}-{'_'.join(map(str, removed))}-{method}"),
                    config.heal_options.get(method, {}),
                ),
            )
            for model, removed, method in heal_todo
        ]
        healed = len(heals) - len(heal_todo)
        if heals:
            tick("heal", healed, len(heals))
        for row in executor.run(jobs):
            store.add(row)
            healed += 1
            tick("heal", healed, len(heals))
        with contextlib.suppress(OSError):  # when empty: only LoRA heals keep a state, each removing its own
            (folder / "heal-state").rmdir()
    finally:
        executor.close()
    for c in cells:
        for method in config.heal:
            _record_heal(store, runs_dir / names[c], c.model, found[c], method)
    return {
        "study": config.name,
        "cells": len(cells),
        "searched": len(pending),
        "models_evaluated": len(wanted),
        "evaluations_run": len(todo),
        "heals": len(heals),
        "heals_run": len(heal_todo),
        "path": str(folder),
    }
