"""`depthprune`: the headless command line (Typer). Data goes to stdout, progress to stderr.

Any user mistake ends with one line `error: ...` naming the bad value and its source, exit code 2.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .core.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Study which Transformer blocks of a causal LM can be removed, and why.")
stderr = Console(stderr=True)
stdout = Console()

ModelOpt = typer.Option("demo", "--model", "-m", help="demo | tiny:<family> | local HF dir | .gguf file | hub id")
DataDirOpt = typer.Option(None, "--data-dir", help="folder with the official benchmark files (layout of shared/data)")
DeviceOpt = typer.Option(None, "--device", help="cpu | cuda | cuda:N (default: cuda if available)")
TrustOpt = typer.Option(False, "--trust-remote-code", help="allow model repositories to run their own code")


def parse_indices(text: str, source: str) -> list[int]:
    """'3,7,9' -> [3, 7, 9]; empty -> []."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            out.append(int(part))
        except ValueError:
            raise UserError(f"block index {part!r} (from {source}) is not an integer") from None
    return out


def parse_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


@contextmanager
def progress_bars():
    """A progress callback (label, done, total) drawing Rich bars on stderr."""
    bars: dict[str, int] = {}
    with Progress(TextColumn("{task.description:>14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=stderr, transient=True) as progress:
        def update(label: str, done: int, total: int):
            if label not in bars:
                bars[label] = progress.add_task(label, total=total)
            progress.update(bars[label], completed=done)

        yield update


def _load(model: str, device: str | None, trust_remote_code: bool):
    from .core.loading import load_model

    with stderr.status(f"loading {model} ..."):
        return load_model(model, device=device, trust_remote_code=trust_remote_code)


def _check_data_dir(data_dir: Optional[Path]) -> Optional[Path]:
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"data directory {str(data_dir)!r} (from --data-dir) not found")
    return data_dir


@app.command("eval")
def eval_cmd(
    model: str = ModelOpt,
    remove: str = typer.Option("", "--remove", "-r", help="blocks to remove, original 0-based indices: 3,7,9"),
    tasks: str = typer.Option("demo-text,demo-mc", "--tasks", "-t", help="comma-separated benchmark names"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="first N items (ppl: first N windows)"),
    seq_len: int = typer.Option(2048, "--seq-len", min=2, help="perplexity window and max input length"),
    data_dir: Optional[Path] = DataDirOpt,
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    device: Optional[str] = DeviceOpt,
    trust_remote_code: bool = TrustOpt,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
):
    """Evaluate the dense or pruned model on perplexity and zero-shot multiple-choice tasks."""
    from .core.evaluate import evaluate
    from .core.surgery import validate_removed
    from .core.tasks import get_task

    task_names = parse_list(tasks)
    if not task_names:
        raise UserError("no task given (from --tasks)")
    for name in task_names:
        get_task(name)
    removed_raw = parse_indices(remove, "--remove")
    data_dir = _check_data_dir(data_dir)
    lm = _load(model, device, trust_remote_code)
    removed = validate_removed(removed_raw, lm.n_blocks)
    with progress_bars() as progress:
        report = evaluate(lm, task_names, removed, limit=limit, seq_len=seq_len, data_dir=data_dir,
                          batch_size=batch_size, progress=progress)
    if as_json:
        print(json.dumps(report))
        return
    table = Table(title=f"{lm.spec}  removed={list(removed) or 'none'}  seq_len={seq_len}  {lm.dtype}")
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
    stdout.print(f"[dim]* metric used in averages · {report['seconds']:.1f} s[/dim]")


@app.command("export")
def export_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="new directory for the pruned checkpoint"),
    model: str = ModelOpt,
    remove: str = typer.Option(..., "--remove", "-r", help="blocks to remove, original 0-based indices"),
    device: Optional[str] = DeviceOpt,
    trust_remote_code: bool = TrustOpt,
):
    """Write the pruned model as a stock Hugging Face checkpoint (safetensors) and verify it reloads."""
    from .core.surgery import export_pruned

    removed = parse_indices(remove, "--remove")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output directory {str(out)!r} (from --out) exists and is not empty")
    lm = _load(model, device, trust_remote_code)
    with stderr.status("exporting ..."):
        info = export_pruned(lm, removed, out)
    print(json.dumps(info))


def main() -> None:
    """Entry point: Typer without its tracebacks; user errors as one line and exit code 2."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own Rich bars report progress
    try:
        app(standalone_mode=False)
    except UserError as exc:
        stderr.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        stderr.print("interrupted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad option values, unknown options
        if type(exc).__name__ == "NoArgsIsHelpError":  # help was already printed
            sys.exit(0)
        message = " ".join(exc.format_message().split())
        stderr.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
