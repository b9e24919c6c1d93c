"""`fbs`: Fast-Block-Select from MI-PRUN (Zhang et al., arXiv 2601.07212), reconstructed.

Block importance is I_i = −MI(input of block i; output of block i): a block whose output mostly
mirrors its input is redundant. The engine estimates MI between residual-stream states with a
Gaussian (canonical-correlation) estimator on sampled calibration tokens, and gives
segment_mi(a, b) = MI(state entering block a; state leaving block b).

Procedure (structure from the paper, parameters ours): rank allowed blocks by the single score s_i;
P = the k lowest, Alt = the next `alt_size`. Repeatedly split P into maximal contiguous runs; for
each run R (shortest first) consider every same-length interval W inside (P ∪ Alt) ∩ allowed that
does not overlap the rest of P, coarse-rank them by Σ s_t, measure the segment score σ(W) of the
`top_k` best and replace R by the best W if σ(W) < σ(R); an accepted swap restarts the run
decomposition of the new P within the same pass (each (P, run) is tried once per pass). Stop when a
pass changes nothing, when P repeats an earlier state, or after `max_iter` passes. |P| = k throughout.
The MI estimator uses `mi_tokens` sampled tokens and PCA rank `mi_rank` (the spec's 32,768 and 256;
fewer tokens when the calibration set has fewer).

Modes: `hybrid` (default) s_i = Δ_i (the one-shot damages, shared with `oneshot`), σ = −MI; `mi`
(faithful MI-PRUN, objective-free) s_i = −MI(i, i), σ = −MI; `objective` s_i = Δ_i, σ(W) = L of P
with R replaced by W (a contiguous-swap local search on the objective itself).
"""

from __future__ import annotations

from .base import Searcher, choice, count


def runs_of(blocks) -> list[tuple[int, int]]:
    """Maximal contiguous runs [a, b] of a set of block indices, in order."""
    out: list[tuple[int, int]] = []
    ordered = sorted(blocks)
    for i in ordered:
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


class FastBlockSelect(Searcher):
    name = "fbs"
    params = {
        "mode": choice("hybrid", "mi", "objective"),
        "alt_size": count(None, optional=True),
        "top_k": count(3),
        "max_iter": count(10),
        "mi_tokens": count(32768, low=2),
        "mi_rank": count(256),
    }
    needs = ("segment_mi",)

    def search(self):
        o = self.options
        mi = o["segment_mi"]
        if o["mode"] == "mi":
            single = {i: -mi(i, i) for i in self.space.allowed}
        else:
            _, single = yield from self.single_damage()
        self.importance = single
        ranked = sorted(self.space.allowed, key=lambda i: (single[i], i))
        k = self.space.k
        pool_size = o["alt_size"] or k
        P = frozenset(ranked[:k])
        alt = set(ranked[k : k + pool_size])
        history = {P}
        for it in range(o["max_iter"]):
            self.status = f"pass {it + 1}/{o['max_iter']}"
            changed, tried = False, set()
            while True:  # an accepted swap restarts the run decomposition within the pass (spec §2.4)
                runs = [r for r in sorted(runs_of(P), key=lambda r: (r[1] - r[0], r[0])) if (P, r) not in tried]
                if not runs:
                    break
                a, b = runs[0]
                tried.add((P, (a, b)))
                length, rest = b - a + 1, P - set(range(a, b + 1))
                usable = (P | alt) & set(self.space.allowed)
                windows = [
                    frozenset(range(c, c + length))
                    for c in range(self.space.n_blocks - length + 1)
                    if c != a and all(t in usable and t not in rest for t in range(c, c + length))
                ]
                windows = sorted(windows, key=lambda w: (sum(single[t] for t in w), min(w)))[: o["top_k"]]
                if not windows:
                    continue
                current = frozenset(range(a, b + 1))
                sigma = yield from self._segment_scores([current] + windows, rest)
                best = min(windows, key=lambda w: (sigma[w], min(w)))
                if sigma[best] < sigma[current]:
                    alt |= current
                    alt -= best
                    P = rest | best
                    changed = True
                    if P in history:
                        return P  # a cycle: P repeats an earlier state
                    history.add(P)
            if not changed:
                break
        return P

    def planned_evaluations(self):
        """`hybrid`: ∅ and every single block, then the result (new unless k = 1); `mi`: the result
        only; `objective`: swap verification depends on the scores, unknown."""
        if self.options["mode"] == "objective":
            return None
        if self.options["mode"] == "mi":
            return 1
        return len(self.space.allowed) + 1 + (1 if self.space.k > 1 else 0)

    def _segment_scores(self, segments, rest):
        """σ for each segment: −MI(first-in, last-out), or the objective of `rest` plus the segment."""
        if self.options["mode"] == "objective":
            scores = yield from self.score([rest | s for s in segments])
            return {s: scores[rest | s] for s in segments}
        yield from ()  # no objective evaluation in the MI modes
        mi = self.options["segment_mi"]
        return {s: -mi(min(s), max(s)) for s in segments}
