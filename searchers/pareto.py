"""`nsga2`: multi-objective search returning the Pareto front of a mix objective's terms (NSGA-II).

Definitions. Each candidate k-set S has a term vector t(S) = (t_1, ..., t_m), the dense-normalised
terms of the run's mix objective (`objectives/mix.py`; the dense model is t = 0). S *dominates* S'
when t_i(S) ≤ t_i(S') for every term and < for at least one. The *front* is the set of evaluated
k-sets no evaluated k-set dominates. The search is NSGA-II (Deb et al. 2002) on k-sets: the first
population and the k-set operators are ga's (`searchers/evolution.py`, guided by the one-shot prior
of the scalar mix value); each generation draws `population` children from parents chosen by binary
tournaments (lower non-domination rank wins, then larger crowding distance, then the first
entrant), and the next population is the best `population` of parents ∪ children by fast
non-dominated sorting, the last front admitted cut by crowding distance (largest first).

`result` — the one set the rest of the pipeline uses — is the front member with the lowest scalar
mix value (the weighted sum of its terms, the run's objective value; ties: the earlier in front
order). A positive weighted sum is never lowest at a dominated set, so this is also the best mix
value evaluated. `front` lists every member as {"removed", "terms", "value"}, by the first term.
Early abort never applies (the searcher needs every candidate complete and a mix has no bound).

Hand-written rather than Optuna's NSGAIISampler: a removal set is a k-subset of the allowed blocks,
which Optuna's independent per-parameter sampling can only express as n categorical switches with
a cardinality constraint it rejects after the fact, and its sampler would have to be driven from
this generator's ask/tell and replay exactly on resume; the algorithm itself is a few dozen lines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .base import RemovalSet, argmin
from .evolution import OPTIONS, Evolutionary

Point = Sequence[float]


def dominates(a: Point, b: Point) -> bool:
    """a is no worse than b in every coordinate and better in at least one (lower is better)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def nondominated_sort(points: Sequence[Point]) -> list[list[int]]:
    """Deb's fast non-dominated sorting: the indices of `points` in fronts, best first — front 0 is
    dominated by no point, front r by points of earlier fronts only; each front in index order."""
    dominated: list[list[int]] = [[] for _ in points]  # the points each one dominates
    count_over = [0] * len(points)  # how many points dominate each one
    for i, p in enumerate(points):
        for j in range(i + 1, len(points)):
            if dominates(p, points[j]):
                dominated[i].append(j)
                count_over[j] += 1
            elif dominates(points[j], p):
                dominated[j].append(i)
                count_over[i] += 1
    fronts, current = [], [i for i, c in enumerate(count_over) if c == 0]
    while current:
        fronts.append(current)
        following = []
        for i in current:
            for j in dominated[i]:
                count_over[j] -= 1
                if count_over[j] == 0:
                    following.append(j)
        current = sorted(following)
    return fronts


def crowding_distance(points: Sequence[Point]) -> list[float]:
    """NSGA-II's crowding distance of each point of one front: per coordinate, the two extreme
    points get infinity and every other point adds the gap between its neighbours (in that
    coordinate's order, ties by index) divided by the coordinate's range (a coordinate with no
    range adds 0)."""
    distance = [0.0] * len(points)
    if not points:
        return distance
    for m in range(len(points[0])):
        order = sorted(range(len(points)), key=lambda i: (points[i][m], i))
        low, high = points[order[0]][m], points[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high > low:
            for before, i, after in zip(order, order[1:], order[2:]):
                distance[i] += (points[after][m] - points[before][m]) / (high - low)
    return distance


def pareto_front(points: Sequence[Point]) -> list[int]:
    """The indices of the points no other point dominates, in index order."""
    return nondominated_sort(points)[0] if points else []


class NSGA2(Evolutionary):
    name = "nsga2"
    stochastic = True
    multi_objective = True
    importance_label = "mix value, block alone − dense"
    params = OPTIONS

    def search(self):
        o = self.options
        population, seen = yield from self.start()
        size = len(population)
        for g in range(o["generations"]):
            self.status = f"generation {g + 1}/{o['generations']}"
            rank, crowd = self._ranking(population)
            children: list[RemovalSet] = []
            while len(children) < size:
                a, b = self._tournament(population, rank, crowd), self._tournament(population, rank, crowd)
                children.append(self.offspring(a, b, seen, children))
            seen.update((yield from self.score(children)))
            population = self._survivors(list(dict.fromkeys(population + children)), size)
        evaluated = list(seen)
        members = [evaluated[i] for i in pareto_front([self._vector(s) for s in evaluated])]
        members.sort(key=lambda s: (self._vector(s), sorted(s)))
        self.front = [{"removed": sorted(s), "terms": dict(self.terms[s]), "value": seen[s]} for s in members]
        self.status = f"front of {len(members)}"
        return argmin(seen, members)

    def _vector(self, s: RemovalSet) -> tuple[float, ...]:
        return tuple(self.terms[s].values())

    def _ranking(self, population: list[RemovalSet]) -> tuple[dict, dict]:
        """({set: non-domination rank}, {set: crowding distance within its front})."""
        points = [self._vector(s) for s in population]
        rank, crowd = {}, {}
        for r, front in enumerate(nondominated_sort(points)):
            for i, d in zip(front, crowding_distance([points[i] for i in front])):
                rank[population[i]], crowd[population[i]] = r, d
        return rank, crowd

    def _tournament(self, population, rank, crowd) -> RemovalSet:
        a, b = self.rng.sample(population, 2) if len(population) > 1 else population * 2
        return b if (rank[b], -crowd[b]) < (rank[a], -crowd[a]) else a

    def _survivors(self, pool: list[RemovalSet], size: int) -> list[RemovalSet]:
        """The best `size` of `pool`: whole fronts in rank order, the last one admitted by crowding
        distance (largest first, ties in pool order)."""
        points = [self._vector(s) for s in pool]
        chosen: list[RemovalSet] = []
        for front in nondominated_sort(points):
            if len(chosen) + len(front) <= size:
                chosen += [pool[i] for i in front]
                continue
            distance = crowding_distance([points[i] for i in front])
            by_crowding = sorted(range(len(front)), key=lambda j: (-distance[j], j))
            chosen += [pool[front[j]] for j in by_crowding[: size - len(chosen)]]
            break
        return chosen
