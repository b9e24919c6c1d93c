"""Objectives: a removal set in, one scalar out, lower is better (`ppl`, `margin`, `acc`, `kl`)."""

from __future__ import annotations

from pathlib import Path

from ..core.calibration import calibration_questions, calibration_text, calibration_token_windows
from ..core.engine import Engine
from ..core.errors import UserError
from ..core.loading import LoadedModel
from .acc import Accuracy
from .base import Objective
from .choices import ChoiceObjective
from .kl import KLDivergence
from .margin import Margin
from .ppl import Perplexity, WindowObjective

OBJECTIVES: dict[str, type[Objective]] = {c.name: c for c in (Perplexity, Margin, Accuracy, KLDivergence)}


def objective_class(name: str) -> type[Objective]:
    if name not in OBJECTIVES:
        raise UserError(f"unknown objective {name!r} (from --objective); available: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def report(name: str, value: float) -> dict:
    """Human-facing forms of an objective value (perplexity next to mean NLL, ...)."""
    return objective_class(name).report(value)


def build_objective(
    name: str,
    lm: LoadedModel,
    *,
    calib: str = "demo",
    data_dir: Path | None = None,
    samples: int | None = None,
    seq_len: int = 2048,
    calib_seed: int = 0,
    batch_size: int = 8,
    engine: Engine | None = None,
    **options,
) -> Objective:
    """The named objective on `lm`, calibrated on `calib` (`samples` windows or questions; a source
    that samples its questions draws them with `calib_seed`, never with a search seed)."""
    cls = objective_class(name)
    engine = engine or Engine(lm.model, lm.family)
    if issubclass(cls, WindowObjective):  # calibrated on text windows
        drawn = calibration_token_windows(calib, lm.tokenizer, samples or 64, seq_len, calib_seed)
        if drawn is not None:
            return cls(
                engine,
                lm.tokenizer,
                None,
                drawn[1],
                seq_len=seq_len,
                batch_size=batch_size,
                token_windows=drawn[0],
                **options,
            )
        text, source = calibration_text(calib, data_dir)
        return cls(
            engine, lm.tokenizer, text, source, seq_len=seq_len, n_windows=samples, batch_size=batch_size, **options
        )
    if issubclass(cls, ChoiceObjective):  # calibrated on questions
        questions, source = calibration_questions(calib, data_dir, samples, calib_seed)
        return cls(engine, lm.tokenizer, questions, source, batch_size=batch_size, max_length=seq_len, **options)
    raise UserError(f"objective {name!r} is neither a text-window nor a question objective")


__all__ = ["OBJECTIVES", "Objective", "build_objective", "objective_class", "report"]
