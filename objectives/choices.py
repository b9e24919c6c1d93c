"""Shared machinery of multiple-choice objectives: questions -> scored (context, continuation) pairs.

Subclasses define how a question is rendered into pairs and how per-choice log-likelihoods reduce
to one loss.
"""

from __future__ import annotations

from abc import abstractmethod

from ..core.calibration import Question
from ..core.engine import Engine
from ..core.scoring import Pair, make_batches
from .base import Objective


class ChoiceObjective(Objective):
    def __init__(self, engine: Engine, tokenizer, questions: list[Question], source: str, *,
                 batch_size: int = 16, max_length: int = 2048):
        self.engine, self.tokenizer, self.questions, self.source = engine, tokenizer, questions, source
        self.grouped = [self.render(q) for q in questions]
        pairs = [pair for group in self.grouped for pair in group]
        self.owner = [i for i, group in enumerate(self.grouped) for _ in group]
        super().__init__(engine, make_batches(pairs, batch_size, max_length, tokenizer.pad_token_id), len(pairs), max_length)

    @abstractmethod
    def render(self, q: Question) -> list[Pair]:
        """Token pairs, one per choice, in choice order."""

    @abstractmethod
    def reduce(self, loglik: list[list[float]], tokens: list[list[int]]) -> float:
        """Per question and choice summed log-likelihood and token count -> the loss."""

    def __call__(self, removed) -> float:
        total, count, _ = self.pair_scores(removed)
        loglik = [[] for _ in self.questions]
        tokens = [[] for _ in self.questions]
        for j, i in enumerate(self.owner):
            loglik[i].append(float(total[j]))
            tokens[i].append(int(count[j]))
        return self.reduce(loglik, tokens)

    def describe(self) -> dict:
        return {"objective": self.name, "calib": self.source, "items": [q.id for q in self.questions]}
