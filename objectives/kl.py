"""`kl`: KL divergence of the pruned model's next-token distribution from the dense model's.

Definition: over every scored position of the calibration windows (as in `ppl`), the value is the
mean over positions of KL(p_dense || p_pruned) = sum_v p_dense(v) (log p_dense(v) - log p_pruned(v)),
in fp32 nats. The dense post-norm hidden states are kept (not the dense logits: they would cost
tokens x vocab memory); dense log-probs are recomputed chunk by chunk. EvoPress's default objective.
"""

from __future__ import annotations

import torch

from .ppl import WindowObjective

_CHUNK_ROWS = 256


class KLDivergence(WindowObjective):
    name = "kl"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dense = [self._rows(i, ()) for i in range(len(self.batches))]

    @torch.no_grad()
    def _rows(self, i: int, removed) -> torch.Tensor:
        pos = self.batches[i].positions
        hidden = self.final_hidden(i, removed)
        return hidden[pos[:, 0], pos[:, 1]]

    @torch.no_grad()
    def __call__(self, removed) -> float:
        removed = frozenset(removed)
        total, count = 0.0, 0
        for i in range(len(self.batches)):
            pruned = self._rows(i, removed)
            for s in range(0, pruned.shape[0], _CHUNK_ROWS):
                lp_dense = torch.log_softmax(self.engine.logits(self.dense[i][s : s + _CHUNK_ROWS]), -1)
                lp_pruned = torch.log_softmax(self.engine.logits(pruned[s : s + _CHUNK_ROWS]), -1)
                kl = (lp_dense.exp() * (lp_dense - lp_pruned)).sum(-1)
                total += float(kl.double().sum())
                count += kl.shape[0]
        return total / count
