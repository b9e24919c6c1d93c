"""`depthprune export`: the pruned model as a stock, verified checkpoint (Hugging Face or GGUF)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import typer
from rich.text import Text

from ..core.errors import UserError
from ..core.parsing import parse_indices, parse_list
from .common import (
    DataDirOpt,
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    ForceOpt,
    GateLimitOpt,
    GateSeqLenOpt,
    GateTasksOpt,
    MaxPplOpt,
    MinAccOpt,
    ModelOpt,
    RevisionOpt,
    TrustOpt,
    app,
    finished_run,
    gate_or_refuse,
    load_model_with_status,
    stderr,
)
from .runs import RunsDirOpt

FORMATS = ("hf", "gguf")


def run_record(run, removed: list[int]) -> dict:
    """What the run says about how `removed` was chosen and measured: objective and searcher, the
    calibration data hash, the latest benchmark and speed results of that removal set."""
    config = run.config
    objective = config.get("objective", {})
    latest = {}
    for event in run.events():
        if event.kind in ("benchmarked", "speed") and sorted(event.removed) == removed:
            latest[event.kind] = event
    bench, speed = latest.get("benchmarked"), latest.get("speed")
    return {
        "run": run.id,
        "run_config": config,
        "objective": objective.get("objective"),
        "objective_settings": objective,
        "searcher": config.get("searcher"),
        "searcher_options": config.get("searcher_options"),
        "objective_value": run.result()["value"],
        "calibration": config.get("calibration"),
        "calibration_sha256": objective.get("data_sha256"),
        "benchmarks": None if bench is None else {"tasks": bench.tasks, "limit": bench.limit, "seq_len": bench.seq_len},
        "speed": None
        if speed is None
        else {
            "settings": speed.settings,
            "dense": speed.dense,
            "pruned": speed.pruned,
            "ratios": speed.ratios,
            "ideal": speed.ideal,
        },
    }


def _mb(n: int | None) -> str:
    return "not on disk" if n is None else f"{n / 1e6:.1f} MB"


@app.command("export")
def export_cmd(
    run: str | None = typer.Argument(None, help="a finished run (id or directory): export its pruned model"),
    out: Path = typer.Option(..., "--out", "-o", help="new directory for the pruned checkpoint"),
    fmt: str = typer.Option("hf", "--format", "-f", help="hf (safetensors) | gguf (needs a GGUF source: demo, .gguf)"),
    model: str = ModelOpt,
    remove: str = typer.Option("", "--remove", "-r", help="without RUN: blocks to remove, original 0-based indices"),
    runs_dir: Path = RunsDirOpt,
    device: str | None = DeviceOpt,
    dtype: str | None = DtypeOpt,
    device_map: str | None = DeviceMapOpt,
    revision: str | None = RevisionOpt,
    trust_remote_code: bool = TrustOpt,
    max_ppl: float | None = MaxPplOpt,
    min_acc: float | None = MinAccOpt,
    gate_tasks: str = GateTasksOpt,
    gate_limit: int | None = GateLimitOpt,
    gate_seq_len: int = GateSeqLenOpt,
    data_dir: Path | None = DataDirOpt,
    force: bool = ForceOpt,
):
    """Write the pruned model (HF safetensors or GGUF), verify it reloads to the same logits, and record it."""
    from ..core.gate import check_limits
    from ..core.surgery import validate_removed

    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r} (from --format); use {' or '.join(FORMATS)}")
    source_run, provenance = None, {}
    if run is not None:
        if remove:
            raise UserError("give either RUN or --remove, not both")
        source_run, model, removed_text = finished_run(run, runs_dir, "RUN")
        removed_raw = parse_indices(removed_text, "RUN")
        source_run.refuse_if_written()
        revision = revision or source_run.config.get("revision")
    else:
        removed_raw = parse_indices(remove, "--remove")
        if not removed_raw:
            raise UserError("nothing to remove: give a RUN or --remove")
    if fmt == "gguf":
        from ..core.gguf_export import gguf_source

        source_gguf = gguf_source(model)
    blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"output directory {str(out)!r} (from --out) cannot be created: {str(blocking)!r} is a file")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output directory {str(out)!r} (from --out) exists and is not empty")
    check_limits(max_ppl, min_acc, parse_list(gate_tasks))
    lm = load_model_with_status(model, device, trust_remote_code, dtype=dtype, device_map=device_map, revision=revision)
    removed = list(validate_removed(removed_raw, lm.n_blocks, "RUN" if run else "--remove"))
    if source_run is not None:
        provenance = run_record(source_run, removed)
    gate = gate_or_refuse(lm, removed, max_ppl, min_acc, gate_tasks, gate_limit, gate_seq_len, data_dir, force)
    provenance.update(
        {
            "tool": "depthprune",
            "tool_version": metadata.version("depthprune"),
            "format": fmt,
            "gate": gate,
            "forced": bool(gate and gate["forced"]),
            "heldout": None
            if gate is None
            else {"tasks": gate["tasks"], "dense": gate["dense"], "pruned": gate["pruned"]},
        }
    )
    with stderr.status(Text(f"exporting ({fmt}) ...")):
        info = (
            export_hf(lm, removed, out, provenance)
            if fmt == "hf"
            else export_gguf(lm, source_gguf, removed, out, provenance)
        )
    if source_run is not None:
        from ..core.events import Exported, Phase

        with source_run.writing():
            source_run.append(Phase(phase="exporting", done=1, total=1, detail=f"{fmt} -> {out}"))
            source_run.append(
                Exported(
                    removed=removed,
                    out=str(out),
                    format=fmt,
                    files=info["files"],
                    bytes_before=info["bytes_before"],
                    bytes_after=info["bytes_after"],
                    gate=gate,
                    forced=info["forced"],
                )
            )
    stderr.print(
        f"wrote {out}: {_mb(info['bytes_after'])} (source {_mb(info['bytes_before'])})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for name, digest in info["files"].items():
        stderr.print(
            f"  {digest}  {name}  {_mb(info['file_bytes'][name])}", markup=False, highlight=False, soft_wrap=True
        )
    print(json.dumps({k: v for k, v in info.items() if k != "run_config"}))


def export_hf(lm, removed: list[int], out: Path, provenance: dict) -> dict:
    from ..core.surgery import export_pruned

    return export_pruned(lm, removed, out, provenance)


def export_gguf(lm, source: Path, removed: list[int], out: Path, provenance: dict) -> dict:
    """The GGUF file in `out` (named after the source), verified against the engine, with depthprune.json."""
    from ..core.gguf_export import verify_gguf, write_pruned_gguf
    from ..core.surgery import files_record, write_record

    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{source.stem}-pruned.gguf"
    done = write_pruned_gguf(source, removed, target)
    info = {
        "removed": removed,
        "source_model": lm.spec,
        "source_file": str(source),
        "bytes_before": source.stat().st_size,
        **provenance,
        "gguf": done,
    }
    info["verified_max_logit_diff"] = verify_gguf(lm, removed, target)
    info["loaders_checked"] = {
        "transformers GGUF reader (from_pretrained gguf_file=, logits)": metadata.version("transformers"),
        "gguf.GGUFReader": metadata.version("gguf"),
    }
    info.update(files_record(out))
    write_record(out, info)
    return info
