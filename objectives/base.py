"""The objective interface: a removal set in, one scalar out, lower is better.

An objective owns its calibration batches and the engine's captured block inputs for them (one dense
pass at construction); each evaluation replays the blocks with the removal set skipped, batch by
batch: `batch_stats` reduces one calibration batch, `combine` turns the statistics of all batches into
the value. With a prefix cache attached, a replay starts from the deepest cached state on its path.
With a `cutoff`, an evaluation stops as soon as `lower_bound` proves the value exceeds it (early
abort inside an argmin). An objective made of terms (a mix) also reports each term's own normalised
value (`terms_of`), which multi-objective searchers compare. An objective never knows which searcher is
asking.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import NamedTuple

import torch

from ..core.engine import BlockInputs, Engine
from ..core.errors import UserError
from ..core.prefix import PrefixCache
from ..core.scoring import Pair, TokenBatch, score_batch


class Evaluation(NamedTuple):
    """One evaluation: the value (a lower bound when `aborted`) and, for an objective made of terms,
    each term's value as `terms_of` defines it ({term name: value}; None otherwise, or when aborted)."""

    value: float
    aborted: bool
    terms: dict[str, float] | None = None


class Objective(ABC):
    """`objective(removed) -> float`, lower is better; `removed` holds original 0-based block indices."""

    name: str = ""
    multiple_choice: bool = False  # built from questions (takes the shared_context option)

    def __init__(self, engine: Engine, batches: list[TokenBatch], n_pairs: int, max_length: int):
        self.engine, self.batches, self.n_pairs, self.max_length = engine, batches, n_pairs, max_length
        self.inputs: list[BlockInputs] = [
            engine.capture(b.input_ids, b.attention_mask, b.position_ids) for b in batches
        ]
        self.cache: PrefixCache | None = None

    @property
    def n_blocks(self) -> int:
        return self.engine.n_blocks

    def data_hash(self) -> str:
        """sha256 of the calibration token ids, so edited calibration data never reuses stored values."""
        digest = hashlib.sha256()
        for batch in self.batches:
            digest.update(batch.input_ids.numpy().tobytes())
            digest.update(batch.targets.numpy().tobytes())
        return digest.hexdigest()[:16]

    def final_hidden(self, i: int, removed: Iterable[int], branches: frozenset = frozenset()) -> torch.Tensor:
        """Post-norm hidden states of calibration batch i with `removed` skipped; with a prefix cache,
        starts from the deepest cached state and caches the states it passes (those entering the blocks
        in `branches` as branch points the batch will need, the others speculatively)."""
        start, hidden, record = 0, None, None
        if self.cache is not None:
            start, hidden = self.cache.deepest(i, removed, self.n_blocks)
            record = lambda j, h: self.cache.put(i, j, removed, h, branch=j in branches)
        return self.engine.finalize(self.engine.run_blocks(self.inputs[i], removed, start, hidden, record=record))

    def pair_stats(self, i: int, hidden: torch.Tensor):
        """Summed log-likelihood and token count of every pair of batch i, in batch row order."""
        total, count, _ = score_batch(self.engine.head_logprobs, self.batches[i], hidden)
        return total, count

    @abstractmethod
    def batch_stats(self, i: int, hidden: torch.Tensor):
        """What the value needs from calibration batch i (given its post-norm hidden states)."""

    @abstractmethod
    def combine(self, stats: list) -> float:
        """The value from the statistics of every calibration batch."""

    def terms_of(self, stats: list) -> dict[str, float] | None:
        """Each term's value from the statistics of every batch, for an objective made of terms (a
        mix); None for a single objective."""
        return None

    def dense_term_values(self) -> dict[str, float] | None:
        """Each term's own objective value for the dense model (no block removed), for an objective
        made of terms; None for a single objective."""
        return None

    def lower_bound(self, stats: list) -> float | None:
        """A value no evaluation can go below, given the statistics of its first batches; None when
        the objective has no such bound (then it never aborts)."""
        return None

    @torch.no_grad()
    def evaluate(
        self, removed: Iterable[int], cutoff: float | None = None, branches: frozenset = frozenset()
    ) -> Evaluation:
        """(value, False, terms), or (a lower bound above `cutoff`, True, None) once the bound proves
        the value exceeds `cutoff`."""
        removed = frozenset(removed)
        stats = []
        for i in range(len(self.batches)):
            stats.append(self.batch_stats(i, self.final_hidden(i, removed, branches)))
            if cutoff is not None and len(stats) < len(self.batches):
                bound = self.lower_bound(stats)
                if bound is not None and bound > cutoff:
                    return Evaluation(bound, True)
        return Evaluation(self.combine(stats), False, self.terms_of(stats))

    def __call__(self, removed: Iterable[int]) -> float:
        """The loss of the model with `removed` skipped."""
        return self.evaluate(removed).value

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
