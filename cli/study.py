"""`depthprune study` and `depthprune report`: grids of searches and their analyses."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import typer

from ..core.parsing import parse_indices, parse_list
from .common import DataDirOpt, DtypeOpt, app, check_data_dir, progress_bars, signals_handled, stderr
from .runs import RunsDirOpt


def _study_overrides(name, models, objectives, searchers, k, seeds, eval_tasks, eval_limit, data_dir) -> dict:
    """Grid flags as a study table (only those given)."""
    from ..objectives import split_objectives

    table = {
        "name": name,
        "models": parse_list(models or ""),
        "objectives": split_objectives(objectives or ""),
        "searchers": parse_list(searchers or ""),
        "k": parse_indices(k or "", "--k"),
        "seeds": parse_indices(seeds or "", "--seeds"),
        "data_dir": data_dir,
    }
    table = {key: v for key, v in table.items() if v}
    evaluation = {"tasks": parse_list(eval_tasks or ""), "limit": eval_limit}
    evaluation = {key: v for key, v in evaluation.items() if v}
    return table | ({"evaluation": evaluation} if evaluation else {})


@app.command("study")
def study_cmd(
    config: Path | None = typer.Option(None, "--config", "-c", help="study TOML file (see docs/reproduction/)"),
    name: str | None = typer.Option(None, "--name", help="study name (overrides the file)"),
    models: str | None = typer.Option(None, "--models", help="comma-separated model specs"),
    objectives: str | None = typer.Option(None, "--objectives", help="e.g. ppl,margin,mix:ppl=0.5,margin=0.5"),
    searchers: str | None = typer.Option(None, "--searchers", help="e.g. oneshot,greedy,beam"),
    k: str | None = typer.Option(None, "--k", help="budgets, e.g. 4,7"),
    seeds: str | None = typer.Option(None, "--seeds", help="e.g. 0,1,2"),
    eval_tasks: str | None = typer.Option(None, "--eval-tasks", help="the evaluation suite"),
    eval_limit: int | None = typer.Option(None, "--eval-limit", min=1, help="first N items / windows per task"),
    data_dir: Path | None = DataDirOpt,
    dtype: str | None = DtypeOpt,
    executor: str | None = typer.Option(None, "--executor", help="local | ray"),
    workers: int | None = typer.Option(None, "--workers", min=1, help="local worker processes"),
    runs_dir: Path = RunsDirOpt,
):
    """Run a grid of searches (every cell a resumable run), evaluate every pruned model on one suite,
    and write the study's report. Running it again continues where it stopped."""
    from ..pipeline.loop import SearchStopped
    from ..study.config import load_study, parse_study
    from ..study.report import write_report
    from ..study.results import collect
    from ..study.runner import run_study, study_dir

    overrides = _study_overrides(
        name,
        models,
        objectives,
        searchers,
        k,
        seeds,
        eval_tasks,
        eval_limit,
        str(check_data_dir(data_dir)) if data_dir else None,
    )
    if dtype:
        overrides["dtype"] = dtype
    if executor or workers:
        overrides["executor"] = {key: v for key, v in {"kind": executor, "workers": workers}.items() if v}
    study = load_study(config, overrides) if config is not None else parse_study(overrides, "flags")
    with progress_bars() as progress, signals_handled(signal.default_int_handler):  # as Ctrl-C
        try:
            summary = run_study(study, runs_dir, progress)
        except SearchStopped as stopped:
            stderr.print(
                f"stopped in {stopped}; everything evaluated is stored. Run the same command to continue.",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(130)
    path = write_report(
        study, collect(study, runs_dir, with_items=True), "md", study_dir(runs_dir, study.name) / "report"
    )
    print(json.dumps(summary | {"report": str(path)}))


@app.command("report")
def report_cmd(
    study: str = typer.Argument(..., help="study name (in RUNS_DIR/studies) or its directory"),
    fmt: str = typer.Option("md", "--format", "-f", help="md | csv | json | html"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="folder for the report and figures (default: the study's report/ folder)"
    ),
    runs_dir: Path = RunsDirOpt,
):
    """Tables, removed-layer masks, rank agreement, spread, cost, overlap and variance shares of a study."""
    from ..study.report import write_report
    from ..study.results import collect, open_study

    config, folder = open_study(study, runs_dir)
    runs_root = folder.parent.parent
    path = write_report(config, collect(config, runs_root, with_items=True), fmt, out or folder / "report")
    if fmt == "md":
        print(path.read_text())
    print(path)
