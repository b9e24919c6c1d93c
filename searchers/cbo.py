"""`cbo`: block removal as constrained binary optimisation (Jansen et al., arXiv 2602.00161).

Each block i gets a gate α_i (1 = the block as is, 0 = removed). The engine measures one gradient row
a_s = ∂ℓ_s/∂α at α = 1 per calibration sample (window for `ppl`, item for `margin`), giving A (m × N).
Energy of removing S (x its indicator): E(x) = xᵀHx with H = AᵀA / m (empirical-Fisher Hessian, no
first-order term, as the official code); `first_order=True` adds −2 ḡᵀx (ḡ the mean row), an ablation
meant for the margin objective. The constraint Σx = k is exact: all C(|allowed|, k) states are
enumerated when that is at most `exact_limit`, else tabu search with swap moves (O(1) energy deltas)
runs `restarts` × `iterations`. `rescore_top` = 1 (faithful) returns the ground state without any
objective evaluation; R > 1 scores the R lowest-energy states with the real objective and returns
the best ("CBO+rescore"). Ties in energy keep the lexicographically smallest set.

Our gate scales the whole block update, h_out = h_in + α (block(h_in) − h_in), which works for every
family; the paper's gate scales the attention and MLP branches separately. Both give the original
model at α = 1 and the identity at α = 0; their gradients at α = 1 differ.
"""

from __future__ import annotations

import heapq
import math
from itertools import combinations

import numpy as np

from .base import Searcher, argmin, count, switch


class CBO(Searcher):
    name = "cbo"
    stochastic = True
    params = {
        "first_order": switch(False),
        "rescore_top": count(1),
        "top_r": count(20),
        "exact_limit": count(200_000_000),
        "restarts": count(20),
        "iterations": count(2000),
    }
    needs = ("gradients",)

    def search(self):
        o = self.options
        A = np.asarray(o["gradients"], dtype=np.float64)
        H = A.T @ A / A.shape[0]
        linear = -2 * A.mean(0) if o["first_order"] else np.zeros(A.shape[1])
        self.importance = {i: float(H[i, i] + linear[i]) for i in self.space.allowed}
        keep = max(o["top_r"], o["rescore_top"])
        if math.comb(len(self.space.allowed), self.space.k) <= o["exact_limit"]:
            top = self._enumerate(H, linear, keep)
        else:
            top = self._tabu(H, linear, keep)
        self.states = [(e, sorted(s)) for e, s in top]  # lowest-energy states, for the run record
        if o["rescore_top"] <= 1:
            return top[0][1]
        candidates = [s for _, s in top[: o["rescore_top"]]]
        scores = yield from self.score(candidates)
        return argmin(scores, candidates)

    def planned_evaluations(self):
        """The ground state alone is scored (as the result); with `rescore_top` R > 1 the R lowest
        states (all states when fewer exist) — known in advance under exact enumeration only."""
        r = self.options["rescore_top"]
        states = math.comb(len(self.space.allowed), self.space.k)
        if r <= 1:
            return 1
        return min(r, states) if states <= self.options["exact_limit"] else None

    def _enumerate(self, H, linear, keep):
        allowed = np.array(self.space.allowed)
        heap: list = []  # max-heap via negated energy
        combos = combinations(range(len(allowed)), self.space.k)
        while True:
            chunk = np.array(list(_take(combos, 200_000)), dtype=np.int64)
            if chunk.size == 0:
                break
            idx = allowed[chunk]
            energy = H[idx[:, :, None], idx[:, None, :]].sum((1, 2)) + linear[idx].sum(1)
            for j in np.argsort(energy, kind="stable")[:keep]:
                item = (-float(energy[j]), tuple(-x for x in idx[j]))
                if len(heap) < keep:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
        ordered = sorted(((-e, tuple(-x for x in s)) for e, s in heap))
        return [(e, frozenset(int(i) for i in s)) for e, s in ordered]

    def _tabu(self, H, linear, keep):
        allowed, k = list(self.space.allowed), self.space.k
        tenure = max(3, len(allowed) // 4)
        found: dict = {}
        diag = np.diag(H) + linear
        for restart in range(self.options["restarts"]):
            current = (
                set(sorted(allowed, key=lambda i: diag[i])[:k]) if restart == 0 else set(self.rng.sample(allowed, k))
            )
            r = H[:, sorted(current)].sum(1)
            energy = float(sum(H[i, j] for i in current for j in current) + linear[list(current)].sum())
            tabu: dict = {}
            for step in range(self.options["iterations"]):
                found[frozenset(current)] = energy
                best_move = None
                for out in current:
                    for into in allowed:
                        if into in current or tabu.get(into, -1) > step:
                            continue
                        change = (
                            -2 * r[out]
                            + H[out, out]
                            + 2 * (r[into] - H[out, into])
                            + H[into, into]
                            - linear[out]
                            + linear[into]
                        )
                        if best_move is None or change < best_move[0]:
                            best_move = (change, out, into)
                if best_move is None:
                    break
                change, out, into = best_move
                current = current - {out} | {into}
                r += H[:, into] - H[:, out]
                energy += change
                tabu[out] = step + tenure
        ranked = sorted(found.items(), key=lambda kv: (kv[1], sorted(kv[0])))[:keep]
        return [(e, s) for s, e in ranked]


def _take(iterator, n):
    for _, item in zip(range(n), iterator):
        yield item
