"""The objective interface: a removal set in, one scalar out, lower is better.

An objective owns its calibration batches and the engine's captured block inputs for them (one dense
pass at construction); each call replays the blocks with the removal set skipped. It never knows
which searcher is asking.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterable

import torch

from ..core.engine import BlockInputs, Engine
from ..core.errors import UserError
from ..core.scoring import Pair, TokenBatch, score_pairs


class Objective(ABC):
    """`objective(removed) -> float`, lower is better; `removed` holds original 0-based block indices."""

    name: str = ""

    def __init__(self, engine: Engine, batches: list[TokenBatch], n_pairs: int, max_length: int):
        self.engine, self.batches, self.n_pairs, self.max_length = engine, batches, n_pairs, max_length
        self.inputs: list[BlockInputs] = [engine.capture(b.input_ids, b.attention_mask) for b in batches]

    @property
    def n_blocks(self) -> int:
        return self.engine.n_blocks

    def final_hidden(self, i: int, removed: Iterable[int]) -> torch.Tensor:
        """Post-norm hidden states of calibration batch i with `removed` skipped."""
        return self.engine.finalize(self.engine.run_blocks(self.inputs[i], removed))

    def pair_scores(self, removed: Iterable[int]):
        """Summed log-likelihood, token count and greedy flag of every calibration pair."""
        removed = frozenset(removed)
        return score_pairs(self.batches, lambda i, _b: self.final_hidden(i, removed), self.engine.head_logprobs, self.n_pairs)

    @abstractmethod
    def __call__(self, removed: Iterable[int]) -> float:
        """The loss of the model with `removed` skipped."""

    @abstractmethod
    def describe(self) -> dict:
        """Everything that determines the value: name, options, calibration source and size."""

    def samples(self) -> list[list[Pair]]:
        """Calibration pairs grouped per sample (window or question), for per-sample gradients (cbo)."""
        raise UserError(f"objective {self.name!r} has no differentiable per-sample loss; cbo needs ppl or margin")

    def sample_loss(self, index: int, totals: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """The loss of sample `index` from its pairs' summed log-likelihoods and token counts (differentiable)."""
        raise UserError(f"objective {self.name!r} has no differentiable per-sample loss; cbo needs ppl or margin")

    @classmethod
    def report(cls, value: float) -> dict:
        """Human-facing forms of a value (e.g. perplexity next to mean NLL)."""
        return {cls.name: value}
