"""`depthprune speed`: measured inference speed of the dense vs the physically pruned model."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from ..core.errors import UserError
from ..core.parsing import parse_indices, parse_list
from .common import (
    DataDirOpt,
    DeviceOpt,
    ForceOpt,
    GateLimitOpt,
    GateSeqLenOpt,
    GateTasksOpt,
    MaxPplOpt,
    MinAccOpt,
    ModelOpt,
    TrustOpt,
    app,
    finished_run,
    gate_or_refuse,
    load_model_with_status,
    progress_bars,
    stdout,
)
from .runs import RunsDirOpt


def parse_batches(text: str) -> list[int]:
    """'1,8' -> [1, 8]; a UserError naming --batch for anything that is not a positive integer."""
    sizes = []
    for part in parse_list(text):
        try:
            sizes.append(int(part))
        except ValueError:
            raise UserError(f"batch size {part!r} (from --batch) is not an integer") from None
    return sizes


@app.command("speed")
def speed_cmd(
    model: str = ModelOpt,
    remove: str = typer.Option("", "--remove", "-r", help="blocks to remove, original 0-based indices: 3,7,9"),
    run: str | None = typer.Option(None, "--run", help="measure what a finished run found (and record it there)"),
    runs_dir: Path = RunsDirOpt,
    prompt_len: int = typer.Option(512, "--prompt-len", help="prompt tokens per row"),
    gen_len: int = typer.Option(128, "--gen-len", help="generated tokens per row (greedy, exactly this many)"),
    batch: str = typer.Option("1,8", "--batch", help="comma-separated batch sizes"),
    repeats: int = typer.Option(5, "--repeats", help="measurements per model and batch size (after one warm-up)"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads (default: all cores torch uses)"),
    device: str | None = DeviceOpt,
    trust_remote_code: bool = TrustOpt,
    max_ppl: float | None = MaxPplOpt,
    min_acc: float | None = MinAccOpt,
    gate_tasks: str = GateTasksOpt,
    gate_limit: int | None = GateLimitOpt,
    gate_seq_len: int = GateSeqLenOpt,
    data_dir: Path | None = DataDirOpt,
    force: bool = ForceOpt,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
):
    """Prefill / decode tokens per second, time to first token, peak memory and size: dense vs pruned, interleaved."""
    from ..core.gate import check_limits
    from ..core.speed import check_settings, measure
    from ..core.surgery import validate_removed

    source_run = None
    if run is not None:
        if remove:
            raise UserError("give either --run or --remove, not both")
        source_run, model, remove = finished_run(run, runs_dir, "--run")
        source_run.refuse_if_written()
    removed_raw = parse_indices(remove, "--run" if run else "--remove")
    if not removed_raw:
        raise UserError("nothing to remove: give --remove or --run")
    batches = parse_batches(batch)
    check_settings(prompt_len, gen_len, batches, repeats)
    check_limits(max_ppl, min_acc, parse_list(gate_tasks))
    lm = load_model_with_status(model, device, trust_remote_code)
    removed = validate_removed(removed_raw, lm.n_blocks, "--run" if run else "--remove")
    gate = gate_or_refuse(lm, removed, max_ppl, min_acc, gate_tasks, gate_limit, gate_seq_len, data_dir, force)
    with progress_bars() as progress:
        result = measure(
            lm,
            removed,
            prompt_len=prompt_len,
            gen_len=gen_len,
            batches=batches,
            repeats=repeats,
            threads=threads,
            progress=progress,
        )
    result["gate"] = gate
    if source_run is not None:
        from ..core.events import Phase, SpeedMeasured

        with source_run.writing():
            source_run.append(Phase(phase="speed", done=1, total=1, detail=f"removed {list(removed)}"))
            source_run.append(
                SpeedMeasured(
                    removed=list(removed),
                    settings=result["settings"],
                    dense=result["dense"],
                    pruned=result["pruned"],
                    ratios=result["ratios"],
                    ideal=result["ideal"],
                )
            )
        result["run"] = source_run.id
    if as_json:
        print(json.dumps(result))
        return
    stdout.print(speed_table(result))
    s = result["settings"]
    threads_note = f"{s['threads']} CPU threads (torch.set_num_threads)" if s["threads"] else s["device"]
    stdout.print(
        f"{threads_note} · prompt {s['prompt_len']} · gen {s['gen_len']} · {s['repeats']} repeats, "
        f"dense and pruned interleaved · medians [min-max]",
        markup=False,
        highlight=False,
    )


def speed_table(result: dict) -> Table:
    """The dense / pruned / ratio table of a `measure` result."""
    n, k = result["n_blocks"], len(result["removed"])
    table = Table(title=f"{result['model']}  removed {result['removed']} ({k} of {n} blocks)")
    for col in ("figure", "dense", "pruned", "pruned/dense", "ideal"):
        table.add_column(col, justify="right")
    d, p, r, ideal = result["dense"], result["pruned"], result["ratios"], result["ideal"]

    def fmt(spread: dict) -> str:
        return f"{spread['median']:.4g} [{spread['min']:.4g}-{spread['max']:.4g}]"

    table.add_row("parameters", f"{d['params']:,}", f"{p['params']:,}", f"{r['params']:.3f}", "")
    table.add_row(
        "weight MiB",
        f"{d['weight_bytes'] / 2**20:.1f}",
        f"{p['weight_bytes'] / 2**20:.1f}",
        f"{r['weight_bytes']:.3f}",
        "",
    )
    if "peak_memory_bytes" in d:
        table.add_row(
            "peak memory MiB",
            f"{d['peak_memory_bytes'] / 2**20:.1f}",
            f"{p['peak_memory_bytes'] / 2**20:.1f}",
            "" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes']:.3f}",
            "",
        )
    for b, fig in d["batch"].items():
        best = ideal["batch"][b]
        table.add_row(
            f"batch {b} prefill tok/s",
            fmt(fig["prefill_tok_s"]),
            fmt(p["batch"][b]["prefill_tok_s"]),
            f"{r['batch'][b]['prefill_tok_s']:.3f}",
            f"{best['prefill_speedup']:.3f}",
        )
        table.add_row(
            f"batch {b} decode tok/s",
            fmt(fig["decode_tok_s"]),
            fmt(p["batch"][b]["decode_tok_s"]),
            f"{r['batch'][b]['decode_tok_s']:.3f}",
            f"{best['decode_speedup']:.3f}",
        )
        table.add_row(
            f"batch {b} ttft s", fmt(fig["ttft_s"]), fmt(p["batch"][b]["ttft_s"]), f"{r['batch'][b]['ttft_s']:.3f}", ""
        )
        split = best["split"]
        table.add_row(
            f"batch {b} decode step split",
            f"head+emb {split['head_embedding_s'] * 1e3:.3g} ms",
            f"blocks {split['blocks_s'] * 1e3:.3g} ms",
            f"other {split['other_s'] * 1e3:.3g} ms",
            f"N/(N-k) {ideal['blocks_only']:.3f}",
        )
    return table
