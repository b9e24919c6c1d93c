"""What every `depthprune` command shares: the Typer app, the two consoles, common options and helpers."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from ..core.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Study which Transformer blocks of a causal LM can be removed, and why.",
)
# Every string printed may hold user input (a model spec like `tiny:llama:0`, a path with `[...]`):
# the consoles read no markup and no emoji codes, and status lines are `Text`, so all prints are literal.
stderr = Console(stderr=True, markup=False, emoji=False, highlight=False)
stdout = Console(markup=False, emoji=False, highlight=False)

ModelOpt = typer.Option(
    "demo", "--model", "-m", help="demo | gemma3-270m | tiny:<family> | local HF dir | .gguf file | hub id"
)
DataDirOpt = typer.Option(None, "--data-dir", help="folder with the official benchmark files (layout of shared/data)")
DeviceOpt = typer.Option(None, "--device", help="cpu | cuda | cuda:N (default: cuda if available)")
TrustOpt = typer.Option(False, "--trust-remote-code", help="allow model repositories to run their own code")
DtypeOpt = typer.Option(None, "--dtype", help="bfloat16 | float16 | float32 (default: bfloat16 on GPU, float32 on CPU)")
DeviceMapOpt = typer.Option(None, "--device-map", help="auto | JSON {module: cuda:N|cpu|disk} | file.json (accelerate)")
RevisionOpt = typer.Option(None, "--revision", help="hub model: branch, tag or commit to load (recorded as its commit)")


@contextmanager
def progress_bars():
    """A progress callback (label, done, total) drawing Rich bars on stderr."""
    bars: dict[str, int] = {}
    with Progress(
        TextColumn("{task.description:>14}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    ) as progress:

        def update(label: str, done: int, total: int):
            if label not in bars:
                bars[label] = progress.add_task(label, total=total)
            progress.update(bars[label], completed=done)

        yield update


def load_model_with_status(
    model: str,
    device: str | None,
    trust_remote_code: bool,
    *,
    dtype: str | None = None,
    device_map: str | None = None,
    revision: str | None = None,
):
    from ..core.loading import load_model, parse_device_map, parse_dtype

    dtype_, map_ = parse_dtype(dtype), parse_device_map(device_map)
    with stderr.status(Text(f"loading {model} ...")):
        return load_model(
            model, device=device, trust_remote_code=trust_remote_code, dtype=dtype_, device_map=map_, revision=revision
        )


def finished_run(ref: str, runs_dir: Path, source: str):
    """(run, model spec, removed blocks as '3,7,9') of a finished run; 'latest' is the newest in runs_dir."""
    from ..core.runs import Run, list_runs

    if ref == "latest":
        unreadable: list[str] = []
        runs = [r for r in list_runs(runs_dir, unreadable) if r.state == "finished"]
        warn_unreadable(unreadable)
        if not runs:
            raise UserError(f"no finished run in {str(runs_dir)!r} (from {source} latest)")
        run = max(runs, key=lambda r: r.config.get("started", ""))
    else:
        run = Run.open(ref, runs_dir, source)
    result = run.result()
    if result is None:
        raise UserError(
            f"run {run.id} (from {source}) has no result yet; finish it with: depthprune prune --resume {run.id}"
        )
    return run, run.config["model"], ",".join(map(str, result["removed"]))


def warn_unreadable(reasons: list[str]) -> None:
    """One stderr line per run left out of a listing because it cannot be read."""
    for reason in reasons:
        stderr.print(f"warning: skipped an unreadable run: {reason}", soft_wrap=True)


def check_data_dir(data_dir: Path | None) -> Path | None:
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"data directory {str(data_dir)!r} (from --data-dir) not found")
    return data_dir


@contextmanager
def signals_handled(handler):
    """`handler` for SIGTERM and SIGHUP (a closed SSH session) while the block runs; the previous
    handlers come back afterwards."""
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# -- the quality gate (export, speed) ---------------------------------------------------------------

MaxPplOpt = typer.Option(None, "--max-ppl-increase", help="gate: refuse if any gate perplexity rises more than PCT %")
MinAccOpt = typer.Option(
    None, "--min-acc-retained", help="gate: refuse if any gate accuracy keeps less than PCT % of dense"
)
GateTasksOpt = typer.Option("demo-text,demo-mc", "--gate-tasks", help="held-out tasks the gate scores")
GateLimitOpt = typer.Option(None, "--gate-limit", min=1, help="gate: first N items (ppl: first N windows) per task")
GateSeqLenOpt = typer.Option(512, "--gate-seq-len", min=2, help="gate: perplexity window and max input length")
ForceOpt = typer.Option(False, "--force", help="go on when the gate fails (the record says so)")


def gate_or_refuse(
    lm,
    removed,
    max_ppl: float | None,
    min_acc: float | None,
    tasks: str,
    limit: int | None,
    seq_len: int,
    data_dir: Path | None,
    force: bool,
) -> dict | None:
    """The quality gate's report (None when no limit is given); a failed gate is a UserError giving the
    measured numbers unless `force` (then the report says `forced`)."""
    from ..core.gate import check_limits, describe, quality_gate
    from ..core.parsing import parse_list

    names = parse_list(tasks)
    if not check_limits(max_ppl, min_acc, names):
        return None
    with progress_bars() as progress:
        gate = quality_gate(
            lm,
            removed,
            tasks=names,
            max_ppl_increase=max_ppl,
            min_acc_retained=min_acc,
            limit=limit,
            seq_len=seq_len,
            data_dir=check_data_dir(data_dir),
            progress=progress,
        )
    if not gate["passed"] and not force:
        raise UserError(f"quality gate failed, nothing written (pass --force to override): {describe(gate)}")
    gate["forced"] = not gate["passed"]
    stderr.print(
        f"quality gate {'passed' if gate['passed'] else 'FAILED (forced)'}: {describe(gate)}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return gate
