"""`depthprune runs ls | show | compare`: the run store, read-only."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..core.errors import UserError
from .common import app, warn_unreadable

runs_app = typer.Typer(help="List, show and compare runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
RunsDirOpt = typer.Option(Path("runs"), "--runs-dir")
FormatOpt = typer.Option("md", "--format", "-f", help="md | csv | json")


@runs_app.command("ls")
def runs_ls(runs_dir: Path = RunsDirOpt, fmt: str = FormatOpt):
    """All runs in the runs directory."""
    from ..core.runs import list_runs
    from ..core.tables import render, run_row

    unreadable: list[str] = []
    rows = [run_row(r) for r in list_runs(runs_dir, unreadable)]
    print(render(rows, fmt))
    warn_unreadable(unreadable)


@runs_app.command("show")
def runs_show(run: str = typer.Argument(..., help="run id or directory"), runs_dir: Path = RunsDirOpt):
    """One run: configuration, state, result."""
    from ..core.runs import Run
    from ..core.tables import latest_speed, speed_summary

    r = Run.open(run, runs_dir)
    speed = latest_speed(r)
    print(
        json.dumps(
            {
                "id": r.id,
                "state": r.state,
                "config": r.config,
                "result": r.result(),
                "evaluations": r.computed_candidates(),
                "speed": None
                if speed is None
                else {**speed_summary(speed), "settings": speed.settings, "ratios": speed.ratios, "ideal": speed.ideal},
            },
            indent=2,
        )
    )


@runs_app.command("compare")
def runs_compare(
    runs: list[str] = typer.Argument(..., help="two or more run ids or directories"),
    runs_dir: Path = RunsDirOpt,
    fmt: str = FormatOpt,
):
    """Removed-set overlap (Jaccard), objective values and evaluation counts, relative to the first run."""
    from ..core.runs import Run
    from ..core.tables import compare_rows, render

    if len(runs) < 2:
        raise UserError("runs compare needs at least two runs (from RUN...)")
    print(render(compare_rows([Run.open(r, runs_dir) for r in runs]), fmt))
