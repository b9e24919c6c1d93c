"""`depthprune heal`: recover what block removal loses (linear compensation or LoRA) into a stock checkpoint."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..core.errors import UserError
from ..core.parsing import parse_indices, parse_list
from .common import (
    DataDirOpt,
    DeviceOpt,
    ModelOpt,
    TrustOpt,
    app,
    check_data_dir,
    finished_run,
    load_model_with_status,
    stderr,
    stdout,
)

LOSS_POINTS = 200  # at most this many LoRA losses go into a run as `healing` phase events (its loss curve)


@contextmanager
def _progress():
    """A progress callback (label, done, total, loss=None) drawing Rich bars on stderr, the loss beside its bar."""
    bars: dict[str, int] = {}
    with Progress(
        TextColumn("{task.description:>14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    ) as progress:

        def update(label: str, done: int, total: int, loss: float | None = None):
            if label not in bars:
                bars[label] = progress.add_task(label, total=total, loss="")
            progress.update(bars[label], completed=done, loss="" if loss is None else f"loss {loss:.4f}")

        yield update


def _print_table(record: dict) -> None:
    table = Table(title=f"heal {record['method']}  removed={record['removed']}  {record['seconds']:.1f} s")
    for col in ("task", "metric", "pruned", "healed"):
        table.add_column(col)
    for task, before in record["before"].items():
        after = record["after"].get(task, {})
        metric = "ppl" if "ppl" in before else before.get("primary", "acc")
        table.add_row(task, metric, f"{before[metric]:.4f}", f"{after.get(metric, float('nan')):.4f}")
    stdout.print(table)
    stdout.print(f"checkpoint: {record['out']}  (calibration sha256 {record['data_hash'][:16]})", markup=False)


@app.command("heal")
def heal_cmd(
    method: str = typer.Option(..., "--method", help="linear (training-free, fused) | lora (trained, merged)"),
    run: str | None = typer.Option(None, "--run", help="heal what a finished run found (id, directory or 'latest')"),
    model: str = ModelOpt,
    remove: str = typer.Option("", "--remove", "-r", help="without --run: blocks to remove, original 0-based indices"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="new directory for the healed checkpoint (default with --run: <run>/healed-<method>)"
    ),
    calib: str = typer.Option("demo", "--calib", help="calibration text: demo | lambada | c4 | file.txt"),
    calib_samples: int = typer.Option(64, "--calib-samples", min=1, help="calibration windows"),
    calib_seq_len: int = typer.Option(256, "--calib-seq-len", min=8, help="tokens per calibration window"),
    ridge: float = typer.Option(
        0.1, "--ridge", min=0.0, help="linear: ridge toward T = I, times the mean diagonal of M^T M"
    ),
    skip_positions: int = typer.Option(
        4, "--skip-positions", min=0, help="linear: first positions of each window left out of the fit"
    ),
    rank: int = typer.Option(8, "--rank", min=1, help="lora: adapter rank"),
    alpha: float = typer.Option(16.0, "--alpha", help="lora: scaling numerator (alpha / rank)"),
    targets: str = typer.Option("all-linear", "--targets", help="lora: module names (q_proj,v_proj,...) or all-linear"),
    steps: int = typer.Option(200, "--steps", min=1, help="lora: optimizer steps"),
    lr: float = typer.Option(2e-4, "--lr", help="lora: AdamW learning rate (constant)"),
    save_every: int = typer.Option(50, "--save-every", min=1, help="lora: checkpoint the training state every N steps"),
    distill: bool = typer.Option(
        False, "--distill", help="lora: KL to the dense model's next-token distribution, not next-token loss"
    ),
    seed: int = typer.Option(0, "--seed", help="lora: adapter initialisation and data order"),
    resume: bool = typer.Option(False, "--resume", help="lora: continue from the training state a killed heal left"),
    eval_tasks: str = typer.Option(
        "demo-text", "--eval-tasks", help="held-out tasks scored before and after ('' for none)"
    ),
    eval_limit: int | None = typer.Option(None, "--eval-limit", min=1, help="first N items / windows per eval task"),
    eval_seq_len: int = typer.Option(512, "--eval-seq-len", min=2),
    batch_size: int = typer.Option(
        4, "--batch-size", min=1, help="windows per pass (linear, eval) and per step (lora)"
    ),
    data_dir: Path | None = DataDirOpt,
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir"),
    device: str | None = DeviceOpt,
    trust_remote_code: bool = TrustOpt,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
):
    """Heal a pruned model and write it as a stock, verified checkpoint with before/after metrics.

    linear: per removed segment one least-squares map fused into the MLP output of the block before it
    (ReplaceMe). lora: LoRA adapters trained on calibration text, merged into the weights."""
    from ..core.events import Healed, Phase
    from ..heal.lora import LoraSettings
    from ..heal.pipeline import METHODS, HealRequest, heal

    if method not in METHODS:
        raise UserError(f"unknown heal method {method!r} (from --method); use {' or '.join(METHODS)}")
    source_run, provenance = None, {}
    if run is not None:
        if remove:
            raise UserError("give either --run or --remove, not both")
        source_run, model, remove = finished_run(run, runs_dir, "--run")  # trust comes from the command line only
        out = out or source_run.path / f"healed-{method}"
        provenance = {"run": source_run.id, "objective_value": source_run.result()["value"]}
    elif out is None:
        raise UserError("give --out DIR for the healed checkpoint (or heal a --run)")
    request = HealRequest(
        method=method,
        removed=list(parse_indices(remove, "--run" if run else "--remove")),
        out=out,
        calib=calib,
        calib_samples=calib_samples,
        calib_seq_len=calib_seq_len,
        data_dir=check_data_dir(data_dir),
        ridge=ridge,
        skip_positions=skip_positions,
        resume=resume,
        eval_tasks=parse_list(eval_tasks),
        eval_limit=eval_limit,
        eval_seq_len=eval_seq_len,
        batch_size=batch_size,
        lora=LoraSettings(
            rank=rank,
            alpha=alpha,
            targets=targets,
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            save_every=save_every,
            distill=distill,
            seed=seed,
        ),
    )
    if source_run is not None:
        source_run.refuse_if_written()
    lm = load_model_with_status(model, device, trust_remote_code)
    request.check(lm.n_blocks)

    def work(on_step=None):
        with _progress() as bars:

            def progress(label: str, done: int, total: int, loss: float | None = None) -> None:
                bars(label, done, total, loss)
                if on_step is not None and label == "lora" and loss is not None:
                    on_step(done, total, loss)

            return heal(lm, request, progress=progress, provenance=provenance)

    if source_run is None:
        record = work()
    else:
        every = max(1, request.lora.steps // LOSS_POINTS)

        def on_step(step: int, total: int, loss: float) -> None:
            if step % every == 0 or step == total:
                source_run.append(Phase(phase="healing", done=step, total=total, detail="lora", loss=loss))

        with source_run.writing():
            source_run.append(
                Phase(phase="healing", done=0, total=request.lora.steps if method == "lora" else None, detail=method)
            )
            record = work(on_step)
            source_run.append(
                Healed(
                    method=method,
                    removed=record["removed"],
                    data_hash=record["data_hash"],
                    settings={"calibration": record["calibration"], **record["settings"]},
                    before=record["before"],
                    after=record["after"],
                    losses=record["losses"],
                    out=record["out"],
                    seconds=record["seconds"],
                )
            )
    if as_json:
        print(json.dumps(record))
    else:
        _print_table(record)
