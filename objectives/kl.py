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

    @torch.no_grad()
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dense = []
        for i, batch in enumerate(self.batches):
            hidden = self.final_hidden(i, ())
            self.dense.append(hidden[batch.positions[:, 0], batch.positions[:, 1]])

    def batch_stats(self, i, hidden):
        """(summed KL over the batch's scored positions, their count)."""
        pos = self.batches[i].positions
        pruned = hidden[pos[:, 0], pos[:, 1]]
        total = 0.0
        for s in range(0, pruned.shape[0], _CHUNK_ROWS):
            lp_dense = torch.log_softmax(self.engine.logits(self.dense[i][s : s + _CHUNK_ROWS]), -1)
            lp_pruned = torch.log_softmax(self.engine.logits(pruned[s : s + _CHUNK_ROWS]), -1)
            total += float((lp_dense.exp() * (lp_dense - lp_pruned)).sum(-1).double().sum())
        return total, pruned.shape[0]
