"""`depthprune export`: the pruned model as a stock, verified checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..core.errors import UserError
from ..core.parsing import parse_indices
from .common import DeviceOpt, ModelOpt, TrustOpt, finished_run, load_model_with_status, app, stderr
from .runs import RunsDirOpt


@app.command("export")
def export_cmd(
    run: Optional[str] = typer.Argument(None, help="a finished run (id or directory): export its pruned model"),
    out: Path = typer.Option(..., "--out", "-o", help="new directory for the pruned checkpoint"),
    model: str = ModelOpt,
    remove: str = typer.Option("", "--remove", "-r", help="without RUN: blocks to remove, original 0-based indices"),
    runs_dir: Path = RunsDirOpt,
    device: Optional[str] = DeviceOpt,
    trust_remote_code: bool = TrustOpt,
):
    """Write the pruned model as a stock Hugging Face checkpoint (safetensors) and verify it reloads."""
    from ..core.surgery import export_pruned

    provenance = {}
    if run is not None:
        r, model, removed_text = finished_run(run, runs_dir, "RUN")
        removed = parse_indices(removed_text, "RUN")
        provenance = {"run": r.id, "run_config": r.config, "objective_value": r.result()["value"]}
    else:
        removed = parse_indices(remove, "--remove")
        if not removed:
            raise UserError("nothing to remove: give a RUN or --remove")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output directory {str(out)!r} (from --out) exists and is not empty")
    lm = load_model_with_status(model, device, trust_remote_code)
    with stderr.status("exporting ..."):
        info = export_pruned(lm, removed, out, provenance)
    print(json.dumps({k: v for k, v in info.items() if k != "run_config"}))
