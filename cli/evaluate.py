"""`depthprune eval`: benchmark scores of the dense or a pruned model."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from ..core.errors import UserError
from ..core.parsing import parse_indices, parse_list
from .common import (
    DataDirOpt,
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    RevisionOpt,
    TrustOpt,
    app,
    check_data_dir,
    finished_run,
    load_model_with_status,
    progress_bars,
    stdout,
)


@app.command("eval")
def eval_cmd(
    model: str = ModelOpt,
    remove: str = typer.Option("", "--remove", "-r", help="blocks to remove, original 0-based indices: 3,7,9"),
    tasks: str = typer.Option("demo-text,demo-mc", "--tasks", "-t", help="comma-separated benchmark names"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="first N items (ppl: first N windows)"),
    seq_len: int | None = typer.Option(
        None,
        "--seq-len",
        help="perplexity window and max input length (default: 2048 or the model's maximum, if smaller)",
    ),
    data_dir: Path | None = DataDirOpt,
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    device: str | None = DeviceOpt,
    dtype: str | None = DtypeOpt,
    device_map: str | None = DeviceMapOpt,
    revision: str | None = RevisionOpt,
    trust_remote_code: bool = TrustOpt,
    run: str | None = typer.Option(
        None, "--run", help="evaluate what a finished run found (id, directory or 'latest')"
    ),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir"),
    healed: str | None = typer.Option(
        None, "--healed", help="with --run: its healed checkpoint (linear | lora) instead"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    harness: str = typer.Option(
        "builtin", "--harness", help="builtin | lm-eval (lm-evaluation-harness's own tasks and numbers)"
    ),
    include_path: Path | None = typer.Option(None, "--include-path", help="lm-eval: an extra folder of task YAMLs"),
    num_fewshot: int | None = typer.Option(None, "--num-fewshot", min=0, help="lm-eval: few-shot examples per task"),
):
    """Evaluate the dense or pruned model on perplexity and zero-shot multiple-choice tasks."""
    from ..core.evaluate import evaluate
    from ..core.surgery import validate_removed
    from ..core.tasks import get_task

    source_run = None
    if run is not None:
        if remove:
            raise UserError("give either --run or --remove, not both")
        source_run, model, remove = finished_run(run, runs_dir, "--run")
        if healed is not None:  # a stock checkpoint with the blocks already removed; its scores are not recorded
            from ..heal.pipeline import healed_checkpoint

            model, remove, source_run = healed_checkpoint(source_run, healed), "", None

    task_names = parse_list(tasks)
    if not task_names:
        raise UserError("no task given (from --tasks)")
    if harness not in ("builtin", "lm-eval"):
        raise UserError(f"unknown harness {harness!r} (from --harness); use builtin or lm-eval")
    if harness == "builtin":
        if include_path is not None or num_fewshot is not None:
            flag = "--include-path" if include_path is not None else "--num-fewshot"
            raise UserError(f"{flag} needs --harness lm-eval")
        for name in task_names:
            get_task(name)
    removed_raw = parse_indices(remove, "--remove")
    data_dir = check_data_dir(data_dir)
    if source_run is not None:  # the run's own model revision and dtype unless given
        revision = revision or source_run.config.get("revision")
        dtype = dtype or source_run.config.get("dtype")
    lm = load_model_with_status(model, device, trust_remote_code, dtype=dtype, device_map=device_map, revision=revision)
    removed = validate_removed(removed_raw, lm.n_blocks)
    from ..pipeline.prune import resolve_seq_len

    seq_len = resolve_seq_len(lm, seq_len, 2048, "--seq-len")
    if harness == "lm-eval":
        from .harness import lm_eval_command

        return lm_eval_command(
            lm,
            removed,
            task_names,
            source_run,
            include_path=include_path,
            num_fewshot=num_fewshot,
            limit=limit,
            batch_size=batch_size,
            as_json=as_json,
        )
    with progress_bars() as progress:
        if source_run is None:
            report = evaluate(
                lm,
                task_names,
                removed,
                limit=limit,
                seq_len=seq_len,
                data_dir=data_dir,
                batch_size=batch_size,
                progress=progress,
            )
        else:  # the scores also become an `evaluated` event of the run
            from ..pipeline.prune import record_benchmark

            with source_run.writing():
                report = record_benchmark(
                    source_run,
                    lm,
                    removed,
                    task_names,
                    limit=limit,
                    seq_len=seq_len,
                    data_dir=str(data_dir) if data_dir else None,
                    batch_size=batch_size,
                    progress=progress,
                )
    if as_json:
        print(json.dumps(report))
        return
    table = Table(title=Text(f"{lm.spec}  removed={list(removed) or 'none'}  seq_len={seq_len}  {lm.dtype}"))
    for col in ("task", "metric", "value", "n"):
        table.add_column(col)
    for name, metrics in report["tasks"].items():
        if "ppl" in metrics:
            table.add_row(name, "ppl", f"{metrics['ppl']:.3f}", f"{metrics['windows']} windows")
        else:
            for m in ("acc", "acc_norm"):
                if m in metrics:
                    star = " *" if m == metrics["primary"] else ""
                    table.add_row(name, m + star, f"{metrics[m]:.4f}", f"{metrics['items']} items")
    stdout.print(table)
    stdout.print(Text(f"* metric used in averages · {report['seconds']:.1f} s", style="dim"))
