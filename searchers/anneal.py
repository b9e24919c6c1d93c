"""`anneal`: simulated annealing over k-sets with swap moves (one removed block for one kept block).

Starts from a uniformly random k-set; each step proposes a random swap neighbour and accepts it with
the Metropolis rule at temperature T. T starts at the mean absolute score change of the first
`calibrate` proposals and cools geometrically to T0/1000 over `budget` evaluations. Returns the best
set evaluated (ties: the earlier one).
"""

from __future__ import annotations

import math

from .base import Searcher, argmin, count, fraction


class Anneal(Searcher):
    name = "anneal"
    stochastic = True
    params = {"budget": count(200), "calibrate": count(10), "final_ratio": fraction(1e-3, open_low=True)}

    def search(self):
        o = self.options
        current = self.random_set()
        seen = dict((yield from self.score([current])))
        t0 = None
        changes = []
        for step in range(1, o["budget"]):
            self.status = f"step {step + 1}/{o['budget']}"
            proposal = self._neighbour(current)
            if proposal not in seen:
                seen.update((yield from self.score([proposal])))
            change = seen[proposal] - seen[current]
            if t0 is None:
                changes.append(abs(change))
                if len(changes) >= o["calibrate"]:
                    t0 = (sum(changes) / len(changes)) or 1e-12
            temperature = (t0 or max(changes) or 1e-12) * o["final_ratio"] ** (step / o["budget"])
            if change <= 0 or self.rng.random() < math.exp(-change / temperature):
                current = proposal
        return argmin(seen, seen)

    def _neighbour(self, current):
        out = sorted(current)
        inside = self.rng.choice(out)
        outside = self.rng.choice([i for i in self.space.allowed if i not in current])
        return frozenset(set(out) - {inside} | {outside})
