"""`depthprune eval --harness lm-eval`: lm-evaluation-harness's own tasks and numbers on a pruned model
(core/harness.py); with `--run`, the scores become a `benchmarked` event of the run."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table
from rich.text import Text

from .common import stderr, stdout


def lm_eval_command(
    lm,
    removed,
    tasks: list[str],
    source_run,
    *,
    include_path: Path | None,
    num_fewshot: int | None,
    limit: int | None,
    batch_size: int,
    as_json: bool,
) -> None:
    from ..core.events import Benchmarked, Phase
    from ..core.harness import run_lm_eval
    from ..pipeline.prune import model_settings

    settings = model_settings(lm)  # before the blocks go: the model as loaded
    with stderr.status(f"lm-eval: {', '.join(tasks)} ..."):
        if source_run is None:
            report = run_lm_eval(
                lm,
                removed,
                tasks,
                include_path=include_path,
                num_fewshot=num_fewshot,
                limit=limit,
                batch_size=batch_size,
            )
        else:
            with source_run.writing():
                source_run.append(
                    Phase(phase="benchmarking", done=0, total=len(tasks), detail="lm-eval: " + ", ".join(tasks))
                )
                report = run_lm_eval(
                    lm,
                    removed,
                    tasks,
                    include_path=include_path,
                    num_fewshot=num_fewshot,
                    limit=limit,
                    batch_size=batch_size,
                )
                source_run.append(
                    Benchmarked(
                        removed=report["removed"],
                        tasks=report["tasks"],
                        limit=limit,
                        seq_len=0,
                        seconds=report["seconds"],
                        model=settings,
                        harness=report["harness"],
                    )
                )
    report = {
        "model": lm.spec,
        "model_id": lm.model_id,
        **settings,
        **{k: v for k, v in report.items() if k != "samples"},
    }
    if as_json:
        print(json.dumps(report))
        return
    table = Table(
        title=Text(f"{lm.spec}  removed={list(removed) or 'none'}  lm-eval {report['harness']['version']}  {lm.dtype}")
    )
    for col in ("task", "version", "n-shot", "metric", "value"):
        table.add_column(col)
    for name, metrics in report["tasks"].items():
        for metric, value in metrics.items():
            if metric == "primary" or "_stderr" in metric or not isinstance(value, (int, float)):
                continue
            star = " *" if metric == metrics.get("primary") else ""
            table.add_row(
                Text(name),
                str(report["harness"]["task_versions"].get(name, "")),
                str(report["harness"]["n_shot"].get(name, "")),
                Text(metric + star),
                f"{value:.4f}",
            )
    stdout.print(table)
    stdout.print(f"[dim]* metric shown in reports · {report['seconds']:.1f} s[/dim]")
