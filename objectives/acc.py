"""`acc`: 1 - multiple-choice accuracy on calibration questions, scored as lm-evaluation-harness does.
Early abort uses the questions already known wrong as a lower bound.

Prompts follow lm-eval 0.4.x (`Question: {q}\\nAnswer:` + " {choice}"; OpenBookQA the bare stem;
Social IQa `Q: {q}\\nA:`; BoolQ without passage `Question: {q}?\\nAnswer:` with " no"/" yes";
WinoGrande partial scoring). `metric="acc"` picks the choice with the largest summed
log-likelihood; `"acc_norm"` divides it by the choice's character length.
"""

from __future__ import annotations

from ..core.calibration import Question
from ..core.errors import UserError
from ..core.evaluate import MCScores, accuracy
from ..core.scoring import Pair, encode_pair
from ..core.tasks import MCItem, mc_item, winogrande_item
from .choices import ChoiceObjective


def lm_eval_item(q: Question) -> MCItem:
    if q.task == "winogrande":
        return winogrande_item(q.question, list(q.choices), q.gold)
    if q.task == "boolq":
        stem = q.question if q.question.endswith("?") else q.question + "?"
        return mc_item(f"Question: {stem}\nAnswer:", ["no", "yes"], 1 if q.gold == 0 else 0)
    if q.task == "obqa":
        return mc_item(q.question, list(q.choices), q.gold)
    if q.task == "siqa":
        return mc_item(f"Q: {q.question}\nA:", list(q.choices), q.gold)
    return mc_item(f"Question: {q.question}\nAnswer:", list(q.choices), q.gold)


class Accuracy(ChoiceObjective):
    name = "acc"

    def __init__(self, *args, metric: str = "acc", **kwargs):
        if metric not in ("acc", "acc_norm"):
            raise UserError(f"unknown accuracy metric {metric!r}; use acc or acc_norm")
        self.metric = metric
        self.items: list[MCItem] = []
        super().__init__(*args, **kwargs)

    def render(self, q: Question) -> list[Pair]:
        item = lm_eval_item(q)
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
