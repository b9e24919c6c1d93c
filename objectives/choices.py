"""Shared machinery of multiple-choice objectives: questions -> scored (context, continuation) pairs.

Subclasses define how a question is rendered into pairs and how per-choice log-likelihoods reduce
to one loss.
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from ..core.engine import Engine
from ..core.prompts import Question
from ..core.scoring import Pair, choice_batches, per_owner
from .base import Objective


class ChoiceObjective(Objective):
    multiple_choice = True

    def __init__(
        self,
        engine: Engine,
        tokenizer,
        questions: list[Question],
        source: str,
        *,
        batch_size: int = 16,
        max_length: int = 2048,
        shared_context: bool = True,
    ):
        self.engine, self.tokenizer, self.questions, self.source = engine, tokenizer, questions, source
        self.grouped = [self.render(q) for q in questions]
        pairs = [pair for group in self.grouped for pair in group]
        self.owner = [i for i, group in enumerate(self.grouped) for _ in group]
        shared = engine.shared_context_mask_dtype() if shared_context else (False, None)
        batches = choice_batches(
            pairs, self.owner, batch_size, max_length, tokenizer.pad_token_id, shared, engine.sliding_window
        )
        super().__init__(engine, batches, len(pairs), max_length)

    @abstractmethod
    def render(self, q: Question) -> list[Pair]:
        """Token pairs, one per choice, in choice order."""

    @abstractmethod
    def reduce(self, loglik: list[list[float]], tokens: list[list[int]]) -> float:
        """Per question and choice summed log-likelihood and token count -> the loss."""

    def batch_stats(self, i, hidden):
        return self.pair_stats(i, hidden)

    def combine(self, stats) -> float:
        total = torch.zeros(self.n_pairs, dtype=torch.float64)
        count = torch.zeros(self.n_pairs, dtype=torch.long)
        for batch, (t, c) in zip(self.batches, stats):
            idx = torch.tensor(batch.pair_ids)
            total[idx], count[idx] = t, c
        return self.reduce(*per_owner(total, count, self.owner, len(self.questions)))

    def describe(self) -> dict:
        return {
            "objective": self.name,
            "calib": self.source,
            "items": [q.id for q in self.questions],
            "max_length": self.max_length,
            "data_sha256": self.data_hash(),
        }
