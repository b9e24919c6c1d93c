"""`margin`: PuDDing's task-likelihood margin loss, as the seed paper uses it.

Definition (PuDDing, Wee et al. 2025, `_likelihood_diff.py`; the study averages over items):
each option is scored by its mean per-token log-likelihood l(option) under PuDDing's prompt —
`Question: {q}\\nAnswer: {option}` scoring the option's tokens (BoolQ: `Question: {q}?\\nAnswer:`
with " True"/" False"; WinoGrande: the sentence with "_" filled in, every token but the first).
Per item m = sum over wrong options w of (l(correct) - l(w)) — PuDDing sums the gaps of 3- and
4-option items (`wrong_reduce="sum"`); `"mean"` divides by the number of wrong options.
loss = -(1/n) sum_items m. Lower is better; negative means the model prefers correct answers.
Tokenizer defaults apply (BOS where the tokenizer adds one), as in PuDDing.
"""

from __future__ import annotations

from ..core.errors import UserError
from ..core.prompts import Question, pudding_strings
from ..core.scoring import Pair, encode_pair
from .choices import ChoiceObjective


class Margin(ChoiceObjective):
    name = "margin"

    def __init__(self, *args, wrong_reduce: str = "sum", **kwargs):
        if wrong_reduce not in ("sum", "mean"):
            raise UserError(f"unknown margin reduction {wrong_reduce!r}; use sum or mean")
        self.wrong_reduce = wrong_reduce
        super().__init__(*args, **kwargs)

    def render(self, q: Question) -> list[Pair]:
        pairs = []
        for context, continuation in pudding_strings(q):
            if not context:
                ids = self.tokenizer(continuation).input_ids
                pairs.append((ids[:1], ids[1:]))
            else:
                pairs.append(encode_pair(self.tokenizer, context, continuation))
        return pairs

    def item_margin(self, q: Question, mean):
        """m = Σ_{w≠gold} (mean[gold] − mean[w]) (or its mean over w); floats or tensors alike."""
        gaps = [mean[q.gold] - m for j, m in enumerate(mean) if j != q.gold]
        return sum(gaps) / (len(gaps) if self.wrong_reduce == "mean" else 1)

    def reduce(self, loglik, tokens) -> float:
        margins = [
            self.item_margin(q, [x / max(c, 1) for x, c in zip(ll, n)])
            for q, ll, n in zip(self.questions, loglik, tokens)
        ]
        return -sum(margins) / len(self.questions)

    def samples(self):
        return self.grouped

    def sample_loss(self, index, totals, counts):
        return -self.item_margin(self.questions[index], list(totals / counts.clamp(min=1)))

    def describe(self) -> dict:
        return super().describe() | {"wrong_reduce": self.wrong_reduce}
