"""`bo`: prior-guided Bayesian optimisation over k-sets (the paper's BO, T = 200, 10 initial points).

Surrogate (our choice; the paper does not name one): a Gaussian process on the indicator vectors
with the exponentiated-Hamming kernel k(x, x') = s² exp(−d_H(x, x') / ℓ), fitted to the residuals
of the additive one-shot prior ŷ(S) = L(∅) + c · Σ_{i∈S} Δ_i (c the least-squares slope on the
data so far, clipped to [0, 2]; 1 before three points exist). So the prior is the GP's mean and the
GP learns the non-additive interactions. ℓ and the noise level are chosen by marginal likelihood on
a small grid at every step. Acquisition: expected improvement, maximised over a candidate pool of
every unevaluated swap neighbour of the 5 best sets plus `pool` sets drawn from the prior weights.
Initial design: the one-shot set plus 9 uniformly random sets (10 points). Budget: `trials`
evaluations including the initial design, plus the shared one-shot scores. Returns the best set
evaluated (ties: the earlier one).
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from scipy.stats import norm

from .base import Searcher, argmin, count, positive

_LENGTHS = (0.5, 1.0, 2.0, 4.0, 8.0)
_NOISES = (1e-6, 1e-3, 1e-2)


class Bayesian(Searcher):
    name = "bo"
    stochastic = True
    params = {"trials": count(200), "initial": count(10), "pool": count(500), "tau": positive(1.0)}

    def search(self):
        o = self.options
        base, delta = yield from self.single_damage()
        self.importance = delta
        weights = self.prior_weights(delta, o["tau"])
        k = self.space.k
        design = [frozenset(sorted(delta, key=lambda i: (delta[i], i))[:k])]
        while len(design) < min(o["initial"], o["trials"], math.comb(len(self.space.allowed), k)):
            candidate = self.random_set()
            if candidate not in design:
                design.append(candidate)
        seen = dict((yield from self.score(design)))
        while len(seen) < o["trials"]:
            self.status = f"trial {len(seen) + 1}/{o['trials']}"
            pool = self._pool(seen, weights) or self._first_unseen(seen)
            if not pool:
                break  # every k-set has been evaluated
            choice = pool[int(np.argmax(self._expected_improvement(seen, pool, base, delta)))]
            seen.update((yield from self.score([choice])))
        return argmin(seen, seen)

    def planned_evaluations(self):
        """The shared one-shot scores, then `trials` k-sets (fewer when the space is smaller); for
        k = 1 those k-sets are the one-shot sets themselves. The result is one of them."""
        m, k = len(self.space.allowed), self.space.k
        return m + 1 + (min(self.options["trials"], math.comb(m, k)) if k > 1 else 0)

    def _first_unseen(self, seen) -> list:
        """When the pool holds no unseen set: the first unseen k-set in order (so the budget is
        always spent while unseen sets remain)."""
        for c in combinations(self.space.allowed, self.space.k):
            if frozenset(c) not in seen:
                return [frozenset(c)]
        return []

    def _vector(self, s) -> np.ndarray:
        x = np.zeros(self.space.n_blocks)
        x[list(s)] = 1.0
        return x

    def _pool(self, seen, weights) -> list:
        best = sorted(seen, key=lambda s: seen[s])[:5]
        pool: dict = {}
        for s in best:
            for out in sorted(s):
                for into in self.space.allowed:
                    if into not in s:
                        pool.setdefault(frozenset(s - {out} | {into}), None)
        for _ in range(self.options["pool"]):
            pool.setdefault(frozenset(self.weighted_sample(weights, self.space.k, uniform=0.25)), None)
        return [s for s in pool if s not in seen]

    def _expected_improvement(self, seen, pool, base, delta) -> np.ndarray:
        sets = list(seen)
        y = np.array([seen[s] for s in sets])
        additive = np.array([sum(delta[i] for i in s) for s in sets])
        c = 1.0
        if len(sets) >= 3 and additive.var() > 0:
            c = float(
                np.clip(
                    np.dot(additive - additive.mean(), y - y.mean())
                    / np.dot(additive - additive.mean(), additive - additive.mean()),
                    0,
                    2,
                )
            )
        prior = base + c * additive
        residual = y - prior
        scale = residual.std() or 1.0
        r = (residual - residual.mean()) / scale
        X = np.stack([self._vector(s) for s in sets])
        P = np.stack([self._vector(s) for s in pool])
        dist_xx = np.abs(X[:, None, :] - X[None, :, :]).sum(-1)
        best_fit = None
        for length in _LENGTHS:
            for noise in _NOISES:
                K = np.exp(-dist_xx / length) + noise * np.eye(len(sets))
                try:
                    L = np.linalg.cholesky(K)
                except np.linalg.LinAlgError:
                    continue
                alpha = np.linalg.solve(L.T, np.linalg.solve(L, r))
                evidence = -0.5 * r @ alpha - np.log(np.diag(L)).sum()
                if best_fit is None or evidence > best_fit[0]:
                    best_fit = (evidence, length, L, alpha)
        assert best_fit is not None  # the grid of lengths is not empty
        _, length, L, alpha = best_fit
        k_star = np.exp(-np.abs(P[:, None, :] - X[None, :, :]).sum(-1) / length)
        mean = k_star @ alpha
        v = np.linalg.solve(L, k_star.T)
        std = np.sqrt(np.clip(1.0 - (v * v).sum(0), 1e-12, None))
        pool_prior = base + c * np.array([sum(delta[i] for i in s) for s in pool])
        mu = pool_prior + residual.mean() + scale * mean
        sigma = scale * std
        improvement = y.min() - mu
        z = improvement / sigma
        return improvement * norm.cdf(z) + sigma * norm.pdf(z)
