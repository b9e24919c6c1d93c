"""Calibration windows for healing: what both methods fit on, and the hash that records it.

Definition: the calibration text (`core.calibration.calibration_text`: built-in prose, LAMBADA, C4
train or a file) tokenized once with the tokenizer's defaults and cut into the first `samples`
non-overlapping windows of `seq_len` tokens (GPTQ style, remainder dropped) — as the `ppl` objective
does. `sha256` hashes the token ids of those windows, so a healed checkpoint names exactly its data.
A source that is the evaluation file of one of the tasks the heal scores (`eval_tasks`) is refused:
healing on evaluation data would bias the after-healing score; `describe()` names the benchmarks whose
evaluation file it is (LAMBADA's test text is a usual calibration source: then do not report LAMBADA).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.calibration import calibration_text, overlapping_tasks
from ..core.errors import UserError
from ..core.scoring import windows
from ..core.tasks import TASKS


@dataclass(frozen=True)
class CalibrationWindows:
    """`ids`: [samples, seq_len] token ids; `source`: the calibration source id."""

    ids: torch.Tensor
    source: str
    evaluation_file_of: tuple[str, ...] = ()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.ids.numpy().astype("int64").tobytes()).hexdigest()

    def describe(self) -> dict:
        return {
            "source": self.source,
            "samples": self.ids.shape[0],
            "seq_len": self.ids.shape[1],
            "tokens": self.ids.numel(),
            "sha256": self.sha256,
            "evaluation_file_of": list(self.evaluation_file_of),
        }


def calibration_windows(
    tokenizer, source: str, data_dir: Path | None, samples: int, seq_len: int, eval_tasks: Sequence[str] = ()
) -> CalibrationWindows:
    """The first `samples` windows of `seq_len` tokens of the calibration text `source` (--calib)."""
    text, source_id = calibration_text(source, data_dir)
    biased = overlapping_tasks(source_id, list(eval_tasks), data_dir)
    if biased:
        raise UserError(
            f"calibration source {source!r} (from --calib) is the evaluation file of {', '.join(biased)} "
            f"(from --eval-tasks); heal on data disjoint from the evaluation"
        )
    ids = tokenizer(text).input_ids
    pairs = windows(ids, seq_len, samples)
    if not pairs:
        raise UserError(
            f"calibration text {source!r} (from --calib) has {len(ids)} tokens, fewer than one window "
            f"of --calib-seq-len {seq_len}"
        )
    return CalibrationWindows(
        torch.tensor([ctx + cont for ctx, cont in pairs], dtype=torch.long),
        source_id,
        tuple(overlapping_tasks(source_id, list(TASKS), data_dir)),
    )
