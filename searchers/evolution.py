"""What the evolutionary searchers (`ga`, `nsga2`) share: a population of k-sets seeded by the
one-shot prior, and operators that keep exactly k allowed blocks.

Prior weights w_i ∝ exp(−z_i/τ) from the standardised one-shot damages Δ_i (`Searcher.prior_weights`,
option `tau`). The first population is the one-shot set (the k blocks of smallest Δ) plus distinct
sets drawn by weighted sampling without replacement (a draw ignores the weights with probability
`uniform_mix`), `population` sets in all (fewer when 50 × population draws find no more).
Crossover keeps P1 ∩ P2 and fills up to k from P1 △ P2 by weight; mutation swaps each member, with
probability `mutation`, for an outside block drawn by weight; a child equal to a set already taken
gets an extra swap (up to 20 tries). Only allowed blocks carry a weight, so protected blocks never
enter a set.
"""

from __future__ import annotations

from collections.abc import Container

from .base import RemovalSet, Searcher, count, fraction, positive

RETRIES = 20  # extra swaps of a child that repeats a set already taken
OPTIONS = {  # the options every evolutionary searcher has (see the module docstring)
    "population": count(16, low=2),
    "generations": count(10),
    "mutation": fraction(0.15),
    "tau": positive(1.0),
    "uniform_mix": fraction(0.25),
}


class Evolutionary(Searcher):
    """A searcher evolving k-sets with the operators of the module docstring; its options include
    `population`, `mutation`, `tau` and `uniform_mix`."""

    weights: dict[int, float]

    def start(self):
        """The opening both searchers share: score every block alone (the one-shot damages become
        `importance`), then the first population; returns (population, {set: score} of all scored)."""
        _, delta = yield from self.single_damage()
        self.importance = delta
        population = self.first_population(delta)
        return population, dict((yield from self.score(population)))

    def first_population(self, delta: dict[int, float]) -> list[RemovalSet]:
        """Set the prior weights from the one-shot damages `delta` and return the first population."""
        o = self.options
        self.weights = self.prior_weights(delta, o["tau"])
        k = self.space.k
        population = [frozenset(sorted(delta, key=lambda i: (delta[i], i))[:k])]
        for _ in range(50 * o["population"]):
            if len(population) == o["population"]:
                break
            candidate = frozenset(self.weighted_sample(self.weights, k, uniform=o["uniform_mix"]))
            if candidate not in population:
                population.append(candidate)
        return population

    def offspring(self, a: RemovalSet, b: RemovalSet, *taken: Container) -> RemovalSet:
        """The child of parents `a` and `b` (crossover, then mutation), swapped again while it is in
        one of `taken` (at most RETRIES times)."""
        child = self._mutate(self._crossover(a, b))
        for _ in range(RETRIES):
            if not any(child in t for t in taken):
                break
            child = self._swap(child)
        return child

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
