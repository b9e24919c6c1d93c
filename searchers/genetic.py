"""`ga`: prior-guided genetic algorithm (the paper's GA, P = 16).

Defaults follow the paper — population 16, elitism 0.2, mutation rate 0.15, 10 generations — and the
project's spec where the paper is silent: prior weights w_i ∝ exp(−z_i/τ) from the standardised
one-shot damages Δ_i; the initial population is the one-shot set plus 15 distinct sets drawn by
weighted sampling without replacement (a draw ignores the weights with probability 0.25); parents by
tournaments of 3; cardinality-preserving crossover (keep P1 ∩ P2, fill from P1 △ P2 by weight);
mutation swaps each member, with probability 0.15, for an outside block drawn by weight; a child
equal to an already evaluated set gets an extra swap (up to 20 tries). Returns the best set ever
evaluated (ties: the earlier one). Cost: |allowed| + 1 shared one-shot evaluations + at most 16 + 10 × 13
(a repeated child is not scored again, so the exact count is not known in advance).
"""

from __future__ import annotations

from .base import Searcher, argmin, count, fraction, positive


class Genetic(Searcher):
    name = "ga"
    stochastic = True
    params = {
        "population": count(16, low=2),
        "elitism": fraction(0.2, open_high=True),
        "mutation": fraction(0.15),
        "generations": count(10),
        "tau": positive(1.0),
        "uniform_mix": fraction(0.25),
        "tournament": count(3),
    }

    def search(self):
        o = self.options
        _, delta = yield from self.single_damage()
        self.importance = delta
        self.weights = self.prior_weights(delta, o["tau"])
        k = self.space.k
        population = [frozenset(sorted(delta, key=lambda i: (delta[i], i))[:k])]
        for _ in range(50 * o["population"]):
            if len(population) == o["population"]:
                break
            candidate = frozenset(self.weighted_sample(self.weights, k, uniform=o["uniform_mix"]))
            if candidate not in population:
                population.append(candidate)
        seen = dict((yield from self.score(population)))
        n_elite = round(o["elitism"] * o["population"])
        for g in range(o["generations"]):
            self.status = f"generation {g + 1}/{o['generations']}"
            elites = sorted(population, key=lambda s: seen[s])[:n_elite]
            children: list = []
            while len(children) < o["population"] - n_elite:
                child = self._mutate(self._crossover(self._pick(population, seen), self._pick(population, seen)))
                for _ in range(20):
                    if child not in seen and child not in children:
                        break
                    child = self._swap(child)
                children.append(child)
            seen.update((yield from self.score(children)))
            population = elites + children
        return argmin(seen, seen)

    def _pick(self, population, seen):
        entrants = self.rng.sample(population, min(self.options["tournament"], len(population)))
        return argmin(seen, entrants)

    def _crossover(self, a, b):
        common = a & b
        fill = self.weighted_sample({i: self.weights[i] for i in a ^ b}, self.space.k - len(common))
        return frozenset(common | set(fill))

    def _mutate(self, child):
        out = set(child)
        for block in sorted(child):
            if self.rng.random() < self.options["mutation"]:
                (new,) = self.weighted_sample(self.weights, 1, exclude=out)
                out.remove(block)
                out.add(new)
        return frozenset(out)

    def _swap(self, child):
        out = set(child)
        out.remove(self.rng.choice(sorted(out)))
        out.add(self.weighted_sample(self.weights, 1, exclude=child)[0])
        return frozenset(out)
