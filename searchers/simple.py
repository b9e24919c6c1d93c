"""Deterministic searchers without hyperparameters worth a file each: one-shot, greedy, beam,
window, tail, exhaustive, random."""

from __future__ import annotations

import math
from itertools import combinations

from ..core.errors import UserError
from .base import RemovalSet, Searcher, argmin, choice, count


class OneShot(Searcher):
    """ShortGPT-style top-k: score every block's single removal once, remove the k best together.

    `scorer="objective"` (default) ranks by Δ_i = L({i}) − L(∅) (|allowed| + 1 evaluations);
    `"bi"` (ShortGPT Block Influence, 1 − cos(block input, block output)) and `"angular"` (Gromov et
    al.: arccos of that cosine / π) rank by a proxy the engine measures with hooks (0 evaluations)."""

    name = "oneshot"
    params = {"scorer": choice("objective", "bi", "angular")}
    needs = ("proxy",)

    def check(self):
        if self.options["scorer"] not in ("objective", "bi", "angular"):
            raise UserError(
                f"unknown one-shot scorer {self.options['scorer']!r} (from --scorer); use objective, bi or angular"
            )

    def search(self):
        scorer = self.options["scorer"]
        if scorer == "objective":
            _, self.importance = yield from self.single_damage()
        else:
            self.importance = {i: self.options["proxy"][scorer][i] for i in self.space.allowed}
        importance = self.importance
        ranked = sorted(self.space.allowed, key=lambda i: (importance[i], i))
        return frozenset(ranked[: self.space.k])

    def signals_needed(self):
        return () if self.options["scorer"] == "objective" else ("proxy",)

    def planned_evaluations(self):
        """∅ and every single block (objective scorer), then the chosen k-set (new unless k = 1)."""
        final = 1 if self.space.k > 1 or self.options["scorer"] != "objective" else 0
        return (len(self.space.allowed) + 1 if self.options["scorer"] == "objective" else 0) + final


class Greedy(Searcher):
    """SLEB-style iterative deletion: each of k rounds tries removing every remaining allowed block
    on top of those already removed and keeps the best (first minimum wins). PuDDing's barriers are
    expressed as protected blocks (`--protect 0,-1`). The first round's scores are the per-block
    importance (so that round is never cut short by early abort)."""

    name = "greedy"

    def search(self):
        removed: frozenset = frozenset()
        first_round = None
        for r in range(self.space.k):
            self.status = f"round {r + 1}/{self.space.k}"
            self.select = None if r == 0 else 1  # round one gives every block's exact importance
            candidates = [removed | {i} for i in self.space.allowed if i not in removed]
            scores = yield from self.score(candidates)
            if first_round is None:
                first_round = self.importance = {min(c): scores[c] for c in candidates}
            removed = argmin(scores, candidates)
        return removed

    def planned_evaluations(self):
        m = len(self.space.allowed)
        return sum(m - r for r in range(self.space.k))


class Beam(Searcher):
    """Beam search over deletion sequences: keep the `width` best sets of each size, expand each by
    every allowed block, deduplicate, k levels (the paper's B = 5)."""

    name = "beam"
    params = {"width": count(5)}

    def search(self):
        beam: list[RemovalSet] = [frozenset()]
        self.select = self.options["width"]
        for r in range(self.space.k):
            self.status = f"depth {r + 1}/{self.space.k}"
            candidates = list(dict.fromkeys(s | {i} for s in beam for i in self.space.allowed if i not in s))
            scores = yield from self.score(candidates)
            beam = sorted(candidates, key=lambda s: (scores[s], sorted(s)))[: self.options["width"]]
        return beam[0]

    def planned_evaluations(self):
        """Depth 1 scores every block; depth 2 every pair meeting one of the w kept blocks,
        C(m, 2) − C(m − w, 2). Deeper levels depend on how the kept sets overlap: unknown."""
        m, width, k = len(self.space.allowed), self.options["width"], self.space.k
        if k == 1:
            return m
        if k == 2:
            w = min(width, m)
            return m + math.comb(m, 2) - math.comb(m - w, 2)
        return None


class Window(Searcher):
    """Best contiguous window of k blocks (Gromov et al., Quark): every run of k consecutive allowed
    original indices is scored."""

    name = "window"

    def windows(self) -> list:
        allowed = set(self.space.allowed)
        return [
            frozenset(range(a, a + self.space.k))
            for a in range(self.space.n_blocks - self.space.k + 1)
            if all(i in allowed for i in range(a, a + self.space.k))
        ]

    def check(self):
        if not self.windows():
            raise UserError(f"no {self.space.k} consecutive blocks are removable (check --protect)")

    def search(self):
        windows = self.windows()
        scores = yield from self.score(windows)
        return argmin(scores, windows)

    def planned_evaluations(self):
        return len(self.windows())


class Tail(Searcher):
    """Baseline: drop the last k allowed blocks before the final block (0 evaluations)."""

    name = "tail"

    def candidates(self) -> list[int]:
        return [i for i in reversed(self.space.allowed) if i != self.space.n_blocks - 1]

    def check(self):
        if len(self.candidates()) < self.space.k:
            raise UserError(f"fewer than k={self.space.k} removable blocks before the final block")

    def search(self):
        yield from ()  # needs no evaluation
        return frozenset(self.candidates()[: self.space.k])

    def planned_evaluations(self):
        return 1  # the result's own score


class Exhaustive(Searcher):
    """All C(|allowed|, k) sets; refuses when that exceeds `budget` evaluations."""

    name = "exhaustive"
    params = {"budget": count(5000)}

    def check(self):
        total = math.comb(len(self.space.allowed), self.space.k)
        if total > self.options["budget"]:
            raise UserError(
                f"exhaustive search needs C({len(self.space.allowed)},{self.space.k}) = {total:,} "
                f"evaluations, over the budget of {self.options['budget']:,} (--budget)"
            )

    def search(self):
        sets = [frozenset(c) for c in combinations(self.space.allowed, self.space.k)]
        scores = yield from self.score(sets)
        return argmin(scores, sets)

    def planned_evaluations(self):
        return math.comb(len(self.space.allowed), self.space.k)


class RandomSearch(Searcher):
    """Uniform random k-subsets (distinct), `budget` of them; the best wins."""

    name = "random"
    stochastic = True
    params = {"budget": count(100)}

    def search(self):
        budget = min(self.options["budget"], math.comb(len(self.space.allowed), self.space.k))
        sets: dict = {}
        while len(sets) < budget:
            sets.setdefault(self.random_set(), None)
        candidates = list(sets)
        scores = yield from self.score(candidates)
        return argmin(scores, candidates)

    def planned_evaluations(self):
        return min(self.options["budget"], math.comb(len(self.space.allowed), self.space.k))
