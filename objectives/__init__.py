"""Objectives: a removal set in, one scalar out, lower is better (`ppl`, `margin`, `acc`, `kl`, and
weighted mixes of them, `mix:ppl=0.5,margin=0.5`)."""

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
from .mix import Mix, is_mix, parse_mix, split_objectives
from .ppl import Perplexity, WindowObjective

OBJECTIVES: dict[str, type[Objective]] = {c.name: c for c in (Perplexity, Margin, Accuracy, KLDivergence)}


def objective_class(name: str) -> type[Objective]:
    """The class of objective `name`: one of OBJECTIVES, or Mix for a valid `mix:name=weight,...`."""
    if is_mix(name):
        parse_mix(name, list(OBJECTIVES))
        return Mix
    if name not in OBJECTIVES:
        raise UserError(
            f"unknown objective {name!r} (from --objective); available: {', '.join(OBJECTIVES)}, "
            f"or a mix such as mix:ppl=0.5,margin=0.5"
        )
    return OBJECTIVES[name]


def mix_terms(name: str) -> list[str]:
    """The objectives an objective calibrates: its terms for a mix, else itself."""
    return [term for term, _weight in parse_mix(name, list(OBJECTIVES))] if is_mix(name) else [name]


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
    that samples its questions draws them with `calib_seed`, never with a search seed). A mix is
    built by `build_mix`."""
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


def build_mix(
    spec: str,
    lm: LoadedModel,
    calibrations: dict[str, tuple[str, int, int]],
    *,
    data_dir: Path | None = None,
    calib_seed: int = 0,
    batch_size: int = 8,
    shared_context: bool = True,
) -> Mix:
    """The mix `spec` on `lm`: each term built as `build_objective` builds it, on its own calibration
    (`calibrations[term]` = (source, samples, seq_len)), all on one engine."""
    engine = Engine(lm.model, lm.family)
    terms = []
    for name, weight in parse_mix(spec, list(OBJECTIVES)):
        source, samples, seq_len = calibrations[name]
        options = {"shared_context": shared_context} if OBJECTIVES[name].multiple_choice else {}
        built = build_objective(
            name,
            lm,
            calib=source,
            data_dir=data_dir,
            samples=samples,
            seq_len=seq_len,
            calib_seed=calib_seed,
            batch_size=batch_size,
            engine=engine,
            **options,
        )
        terms.append((weight, built))
    return Mix(spec, terms)


__all__ = [
    "OBJECTIVES",
    "Objective",
    "build_mix",
    "build_objective",
    "is_mix",
    "mix_terms",
    "objective_class",
    "report",
    "split_objectives",
]
