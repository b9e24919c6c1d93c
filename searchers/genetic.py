"""`ga`: prior-guided genetic algorithm (the paper's GA, P = 16).

Defaults follow the paper — population 16, elitism 0.2, mutation rate 0.15, 10 generations — and the
project's spec where the paper is silent: the prior, first population and k-set operators of
`searchers/evolution.py` (τ = 1, a draw ignores the weights with probability 0.25); parents by
tournaments of 3; the best `elitism` share of each population survives, the rest are children.
Returns the best set ever evaluated (ties: the earlier one). Cost: |allowed| + 1 shared one-shot
evaluations + at most 16 + 10 × 13 (a repeated child is not scored again, so the exact count is not
known in advance).
"""

from __future__ import annotations

from .base import argmin, count, fraction
from .evolution import OPTIONS, Evolutionary


class Genetic(Evolutionary):
    name = "ga"
    stochastic = True
    params = {**OPTIONS, "elitism": fraction(0.2, open_high=True), "tournament": count(3)}

    def search(self):
        o = self.options
        population, seen = yield from self.start()
        n_elite = round(o["elitism"] * o["population"])
        for g in range(o["generations"]):
            self.status = f"generation {g + 1}/{o['generations']}"
            elites = sorted(population, key=lambda s: seen[s])[:n_elite]
            children: list = []
            while len(children) < o["population"] - n_elite:
                a, b = self._pick(population, seen), self._pick(population, seen)
                children.append(self.offspring(a, b, seen, children))
            seen.update((yield from self.score(children)))
            population = elites + children
        return argmin(seen, seen)

    def _pick(self, population, seen):
        entrants = self.rng.sample(population, min(self.options["tournament"], len(population)))
        return argmin(seen, entrants)
