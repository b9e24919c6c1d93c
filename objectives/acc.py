"""`acc`: 1 - multiple-choice accuracy on calibration questions, scored as lm-evaluation-harness does.
Early abort uses the questions already known wrong as a lower bound.

Questions are rendered by the lm-eval column of the prompt table (`core/prompts.py`), as the evaluator
renders benchmark items. `metric="acc"` picks the choice with the largest summed
log-likelihood; `"acc_norm"` divides it by the choice's character length.
"""

from __future__ import annotations

from ..core.errors import UserError
from ..core.evaluate import MCScores, accuracy
from ..core.prompts import MCItem, Question, render
from ..core.scoring import Pair, encode_pair
from .choices import ChoiceObjective


class Accuracy(ChoiceObjective):
    name = "acc"

    def __init__(self, *args, metric: str = "acc", **kwargs):
        if metric not in ("acc", "acc_norm"):
            raise UserError(f"unknown accuracy metric {metric!r}; use acc or acc_norm")
        self.metric = metric
        self.items: list[MCItem] = []
        super().__init__(*args, **kwargs)

    def render(self, q: Question) -> list[Pair]:
        item = render(q)
        self.items.append(item)
        return [encode_pair(self.tokenizer, c, t) for c, t in zip(item.contexts, item.continuations)]

    def reduce(self, loglik, tokens) -> float:
        scores = MCScores(loglik, tokens, [it.gold for it in self.items], [it.choice_lengths for it in self.items])
        return 1.0 - accuracy(scores)[self.metric]

    def lower_bound(self, stats) -> float:
        """The questions already known wrong (all their choices scored in the batches seen) over all
        questions: the unseen ones can only add errors."""
        scored = {}
        for batch, (total, count) in zip(self.batches, stats):
            for slot, pair in enumerate(batch.pair_ids):
                scored[pair] = (float(total[slot]), int(count[slot]))
        loglik, tokens, items, first = [], [], [], 0
        for item, group in zip(self.items, self.grouped):
            pairs = range(first, first + len(group))
            first += len(group)
            if all(p in scored for p in pairs):
                loglik.append([scored[p][0] for p in pairs])
                tokens.append([scored[p][1] for p in pairs])
                items.append(item)
        if not items:
            return 0.0
        known = MCScores(loglik, tokens, [it.gold for it in items], [it.choice_lengths for it in items])
        return (1.0 - accuracy(known)[self.metric]) * len(items) / len(self.questions)

    def describe(self) -> dict:
        return super().describe() | {"metric": self.metric}
