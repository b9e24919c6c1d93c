"""Measurements the engine makes for searchers that need more than objective values.

* `block_proxies`: ShortGPT's Block Influence BI_i = 1 − E[cos(x_in, x_out)] and Gromov et al.'s
  angular distance E[arccos(cos(x_in, x_out))] / π of every block, over the calibration tokens
  (padding excluded), from the residual stream captured before the final norm.
* `gate_gradients`: CBO's matrix A — one row per calibration sample, ∂ℓ_s/∂α at α = 1 for per-block
  gates α that scale each block's update.
* `SegmentMI`: Gaussian mutual information between residual-stream states (Fast-Block-Select).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.scoring import make_batches
from .base import Objective


def _valid(batch, hidden: torch.Tensor, drop_first: bool = False) -> torch.Tensor:
    """Token rows [n, d] of a batch's hidden states at non-padding positions."""
    keep = batch.token_mask()
    if drop_first:
        keep = keep.clone()
        keep[:, 0] = False
    return hidden[keep.to(hidden.device)].float()


def block_proxies(objective: Objective) -> dict[str, dict[int, float]]:
    n = objective.n_blocks
    cos_sum, ang_sum, count = np.zeros(n), np.zeros(n), 0
    for batch, inputs in zip(objective.batches, objective.inputs):
        states = [_valid(batch, s) for s in objective.engine.per_block_states(inputs)]
        for i in range(n):
            cos = torch.nn.functional.cosine_similarity(states[i], states[i + 1], dim=-1).clamp(-1, 1)
            cos_sum[i] += float(cos.sum())
            ang_sum[i] += float(torch.arccos(cos).sum() / math.pi)
        count += states[0].shape[0]
    return {"bi": {i: 1 - cos_sum[i] / count for i in range(n)}, "angular": {i: ang_sum[i] / count for i in range(n)}}


def gate_gradients(objective: Objective, pad_id: int) -> np.ndarray:
    """A ∈ R^{m×N}: row s is the gradient of sample s's loss w.r.t. the N block gates at 1.
    Samples are processed one at a time (one forward, one backward each, both counted as block
    applications of the engine), weights frozen."""
    engine = objective.engine
    params = list(engine.model.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    gates = torch.ones(engine.n_blocks, dtype=torch.float32, device=engine.device, requires_grad=True)
    rows = []
    try:
        for index, pairs in enumerate(objective.samples()):
            (batch,) = make_batches(pairs, len(pairs), objective.max_length, pad_id)
            inputs = engine.capture(batch.input_ids, batch.attention_mask, batch.position_ids)
            hidden = engine.finalize(engine.run_blocks(inputs, gates=gates))
            logprobs, _ = engine.head_logprobs(hidden, batch.positions, batch.targets)
            rows_in_batch = len(batch.pair_ids)
            totals = torch.zeros(rows_in_batch).index_add(0, batch.owner, logprobs)
            counts = torch.zeros(rows_in_batch).index_add(0, batch.owner, torch.ones(len(batch.owner)))
            order = torch.argsort(torch.tensor(batch.pair_ids))  # back to the sample's pair order
            loss = objective.sample_loss(index, totals[order], counts[order])
            (grad,) = torch.autograd.grad(loss, gates)
            engine.count(
                engine.n_blocks - 1, batch.input_ids
            )  # backward: every block but 0, whose input no gate reaches
            rows.append(grad.double().cpu().numpy())
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
    return np.stack(rows)


class SegmentMI:
    """MI(state entering block a; state leaving block b) in nats, Gaussian/CCA estimator.

    Token sample: up to `tokens` non-padding positions (position 0 of every sequence dropped: BOS and
    attention-sink activations), drawn once with `seed` and shared by all layers. Each state is
    standardised per coordinate and reduced to `rank` dimensions by PCA; MI = −½ Σ log(1 − ρ_i²) over
    the canonical correlations ρ (ridge 1e-4 · tr(C)/r, ρ clipped below 1)."""

    def __init__(self, objective: Objective, tokens: int = 4096, rank: int = 64, seed: int = 0):
        layers: list[list[torch.Tensor]] = [[] for _ in range(objective.n_blocks + 1)]
        for batch, inputs in zip(objective.batches, objective.inputs):
            for layer, state in enumerate(objective.engine.per_block_states(inputs)):
                layers[layer].append(_valid(batch, state, drop_first=True).cpu())
        stacked = [torch.cat(parts) for parts in layers]
        total = stacked[0].shape[0]
        pick = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[: min(tokens, total)]
        self.z = [self._reduce(s[pick].double().numpy(), rank) for s in stacked]
        self.cache: dict[tuple[int, int], float] = {}

    @staticmethod
    def _reduce(x: np.ndarray, rank: int) -> np.ndarray:
        x = (x - x.mean(0)) / (x.std(0) + 1e-8)
        u, s, _ = np.linalg.svd(x, full_matrices=False)
        r = min(rank, len(s))
        return u[:, :r] * s[:r]

    def mutual_information(self, u: np.ndarray, v: np.ndarray) -> float:
        n = u.shape[0]
        cuu, cvv, cuv = u.T @ u / (n - 1), v.T @ v / (n - 1), u.T @ v / (n - 1)
        cuu += 1e-4 * np.trace(cuu) / len(cuu) * np.eye(len(cuu))
        cvv += 1e-4 * np.trace(cvv) / len(cvv) * np.eye(len(cvv))

        def inv_sqrt(c):
            w, q = np.linalg.eigh(c)
            return q @ np.diag(w**-0.5) @ q.T

        rho = np.clip(np.linalg.svd(inv_sqrt(cuu) @ cuv @ inv_sqrt(cvv), compute_uv=False), 0, 1 - 1e-6)
        return float(-0.5 * np.log(1 - rho**2).sum())

    def __call__(self, a: int, b: int) -> float:
        if (a, b) not in self.cache:
            self.cache[(a, b)] = self.mutual_information(self.z[a], self.z[b + 1])
        return self.cache[(a, b)]
