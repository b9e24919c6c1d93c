"""One heal from start to checkpoint: calibration, before-metrics, the method, after-metrics, export, run event.

`before` scores the pruned model (removed blocks skipped, nothing healed) and `after` the healed one on
the same held-out tasks (`eval_tasks`, disjoint from the calibration data, which is refused when it is an
evaluation file). The checkpoint goes through `core.surgery.export_pruned`: blocks removed, written as a
stock Hugging Face checkpoint, reloaded with `from_pretrained` and its logits checked against the
in-memory healed model; `depthprune.json` gets a `heal` record (method, calibration with its sha256,
settings, steps, losses, metrics before/after, seconds).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import UserError
from ..core.evaluate import evaluate
from ..core.loading import LoadedModel
from ..core.surgery import export_pruned, validate_removed
from ..core.tasks import get_task
from . import METHODS
from .data import CalibrationWindows, calibration_windows
from .linear import check_fusable, heal_linear
from .lora import LoraSettings, heal_lora


@dataclass
class HealRequest:
    """Everything a heal takes besides the model (the CLI's options)."""

    method: str
    removed: list[int]
    out: Path
    calib: str = "demo"
    calib_samples: int = 64
    calib_seq_len: int = 256
    data_dir: Path | None = None
    ridge: float = 0.1
    skip_positions: int = 4
    lora: LoraSettings = field(default_factory=LoraSettings)
    resume: bool = False
    eval_tasks: list[str] = field(default_factory=list)
    eval_limit: int | None = None
    eval_seq_len: int = 512
    batch_size: int = 8

    @property
    def state_dir(self) -> Path:
        """Where a LoRA heal keeps its resumable training state (beside the output, removed at the end)."""
        return self.out.with_name(self.out.name + ".heal-state")

    def check(self, n_blocks: int) -> tuple[int, ...]:
        """Validate before any slow work; the removed blocks, sorted."""
        if self.method not in METHODS:
            raise UserError(f"unknown heal method {self.method!r} (from --method); use {' or '.join(METHODS)}")
        removed = validate_removed(self.removed, n_blocks)
        if not removed:
            raise UserError("nothing was removed: there is nothing to heal (from --remove)")
        for name in self.eval_tasks:
            get_task(name, "--eval-tasks")
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise UserError(f"output directory {str(self.out)!r} (from --out) exists and is not empty")
        if self.method == "lora":
            self.lora.check()
        elif self.ridge < 0:
            raise UserError(f"--ridge {self.ridge} must be at least 0")
        if self.resume and self.method != "lora":
            raise UserError("--resume continues a LoRA heal; a linear heal has no training state")
        return removed


def _metrics(lm: LoadedModel, request: HealRequest, removed, progress) -> dict:
    if not request.eval_tasks:
        return {}
    report = evaluate(
        lm,
        request.eval_tasks,
        removed,
        limit=request.eval_limit,
        seq_len=request.eval_seq_len,
        data_dir=request.data_dir,
        batch_size=request.batch_size,
        progress=progress,
    )
    return report["tasks"]


def calibrate(lm: LoadedModel, request: HealRequest) -> tuple[tuple[int, ...], CalibrationWindows]:
    """Validate `request` for `lm` (the fusion rule for `linear`) and read its calibration windows,
    disjoint from `request.eval_tasks`; (removed blocks sorted, windows)."""
    removed = request.check(lm.n_blocks)
    if request.method == "linear":
        check_fusable(lm, removed)
    calib = calibration_windows(
        lm.tokenizer, request.calib, request.data_dir, request.calib_samples, request.calib_seq_len, request.eval_tasks
    )
    return removed, calib


def apply(
    lm: LoadedModel,
    request: HealRequest,
    removed,
    calib: CalibrationWindows,
    *,
    progress: Callable | None = None,
) -> dict:
    """Heal `lm.model` in place by `request.method` (the removed blocks stay in it, skipped);
    {"settings": the method's details, "steps", "losses", "seconds": wall time of the method}."""
    started = time.perf_counter()
    if request.method == "linear":
        details = heal_linear(
            lm,
            removed,
            calib,
            ridge=request.ridge,
            skip_positions=request.skip_positions,
            batch_size=request.batch_size,
            progress=progress,
        )
        steps, losses = 0, []
    else:
        details = heal_lora(
            lm,
            removed,
            calib,
            request.lora,
            request.state_dir,
            resume=request.resume,
            progress=progress,
        )
        steps, losses = details["steps"], details.pop("losses")
    return {"settings": details, "steps": steps, "losses": losses, "seconds": round(time.perf_counter() - started, 3)}


def heal(
    lm: LoadedModel,
    request: HealRequest,
    *,
    progress: Callable | None = None,
    provenance: dict | None = None,
) -> dict:
    """Heal `lm` (in place) and export it to `request.out`; the heal record written into depthprune.json."""
    removed, calib = calibrate(lm, request)
    before = _metrics(lm, request, removed, progress)
    done = apply(lm, request, removed, calib, progress=progress)
    after = _metrics(lm, request, removed, progress)
    record = {
        "method": request.method,
        "removed": list(removed),
        "calibration": calib.describe(),
        "data_hash": calib.sha256,
        "settings": done["settings"],
        "steps": done["steps"],
        "losses": done["losses"],
        "eval": {"tasks": request.eval_tasks, "limit": request.eval_limit, "seq_len": request.eval_seq_len},
        "before": before,
        "after": after,
        "seconds": done["seconds"],
    }
    info = export_pruned(lm, removed, request.out, {**(provenance or {}), "heal": record})
    shutil.rmtree(request.state_dir, ignore_errors=True)
    return {
        **record,
        "out": str(request.out),
        "files": info["files"],
        "verified_max_logit_diff": info["verified_max_logit_diff"],
    }


def healed_checkpoint(run, method: str) -> str:
    """The checkpoint directory of `run`'s latest `healed` event for `method` (for `eval --run RUN --healed M`)."""
    from ..core.events import Healed

    outs = [e.out for e in run.events() if isinstance(e, Healed) and e.method == method and e.out]
    if not outs:
        raise UserError(
            f"run {run.id} (from --run) has no {method!r} healed checkpoint (from --healed); "
            f"make one with: depthprune heal --run {run.id} --method {method}"
        )
    if not (Path(outs[-1]) / "config.json").is_file():
        raise UserError(f"the {method} healed checkpoint of run {run.id} ({outs[-1]!r}, from --healed) is missing")
    return outs[-1]
