"""Searchers tested without a model, on synthetic landscapes whose optimum brute force gives.

Landscape: L(S) = Σ_{i∈S} c_i + Σ_{i<j∈S} w_ij over removal sets of any size (partial sets too).
Additive landscapes (w = 0) are solved exactly by greedy, beam, exhaustive, one-shot; interacting
ones must reach a stated fraction of the optimum's quality within the default budget.
"""

import math
import random
from itertools import combinations

import numpy as np
import pytest

from depthprune.core.errors import UserError
from depthprune.searchers import SEARCHERS, Space


class Landscape:
    def __init__(self, n, seed, interaction=0.0):
        rng = random.Random(seed)
        self.n = n
        self.c = [rng.uniform(0, 1) for _ in range(n)]
        self.w = {(i, j): interaction * rng.uniform(-1, 1) for i in range(n) for j in range(i + 1, n)}
        self.calls = 0

    def __call__(self, s):
        self.calls += 1
        s = sorted(s)
        return sum(self.c[i] for i in s) + sum(self.w[(i, j)] for i, j in combinations(s, 2))

    def optimum(self, space):
        return min(self(s) for s in combinations(space.allowed, space.k))

    def median(self, space):
        return float(np.median([self(s) for s in combinations(space.allowed, space.k)]))


def run(searcher, landscape):
    batch = searcher.ask()
    while batch:
        batch = searcher.tell({s: landscape(s) for s in batch})
    return searcher.result


def extra_inputs(name, landscape):
    if name == "cbo":
        return {"gradients": cbo_rows(landscape)}
    if name == "fbs":
        return {"segment_mi": lambda a, b: -sum(landscape.c[a : b + 1])}
    if name == "oneshot":
        return {"proxy": {"bi": dict(enumerate(landscape.c)), "angular": dict(enumerate(landscape.c))}}
    return {}


def cbo_rows(landscape):
    """Rows A with AᵀA/m = H, H the landscape's quadratic form shifted to be positive definite."""
    n = landscape.n
    H = np.diag(landscape.c)
    for (i, j), w in landscape.w.items():
        H[i, j] = H[j, i] = w / 2
    shift = max(0.0, -np.linalg.eigvalsh(H).min()) + 1e-6
    return np.linalg.cholesky(H + shift * np.eye(n)).T * math.sqrt(n)  # m = n rows


def make(name, space, landscape, seed=0, **options):
    return SEARCHERS[name](space, seed=seed, **extra_inputs(name, landscape), **options)


SPACE = Space(n_blocks=12, k=3, protected=frozenset({0, 11}))


@pytest.mark.parametrize("name", sorted(SEARCHERS))
def test_every_searcher_returns_exactly_k_unprotected_blocks(name):
    landscape = Landscape(12, seed=1, interaction=0.3)
    result = run(make(name, SPACE, landscape), landscape)
    assert len(result) == 3 and not result & SPACE.protected and result <= set(range(12))


@pytest.mark.parametrize("name", ["greedy", "beam", "exhaustive", "oneshot", "cbo", "ga", "bo", "anneal"])
def test_additive_landscapes_are_solved_exactly(name):
    for seed in range(3):
        landscape = Landscape(12, seed=seed)
        result = run(make(name, SPACE, landscape, seed=seed), landscape)
        assert landscape(result) == pytest.approx(landscape.optimum(SPACE)), (name, seed)


# fraction of the gap between the median k-set and the optimum each searcher must close by default
REQUIRED_FRACTION = {"greedy": 0.8, "beam": 0.9, "exhaustive": 1.0, "ga": 0.9, "bo": 0.9, "anneal": 0.9,
                     "random": 0.7, "cbo": 0.9, "oneshot": 0.4, "fbs": 0.4}


@pytest.mark.parametrize("name", sorted(REQUIRED_FRACTION))
def test_interacting_landscapes_reach_a_stated_fraction_of_the_optimum(name):
    space = Space(n_blocks=14, k=4)
    closed = []
    for seed in range(4):
        landscape = Landscape(14, seed=seed, interaction=0.5)
        best, median = landscape.optimum(space), landscape.median(space)
        result = run(make(name, space, landscape, seed=seed), landscape)
        closed.append((median - landscape(result)) / (median - best))
    assert np.mean(closed) >= REQUIRED_FRACTION[name], (name, closed)


@pytest.mark.parametrize("name", ["ga", "bo", "anneal", "random"])
def test_same_seed_same_trajectory_and_different_seed_differs(name):
    def trajectory(seed):
        landscape = Landscape(14, seed=0, interaction=0.5)
        searcher = make(name, Space(14, 4), landscape, seed=seed)
        asked = []
        batch = searcher.ask()
        while batch:
            asked.append([sorted(s) for s in batch])
            batch = searcher.tell({s: landscape(s) for s in batch})
        return asked

    assert trajectory(0) == trajectory(0)
    assert trajectory(0) != trajectory(1)


def test_greedy_costs_the_sleb_count_of_evaluations():
    landscape = Landscape(12, seed=0)
    searcher = make("greedy", SPACE, landscape)
    run(searcher, landscape)
    assert landscape.calls == 10 + 9 + 8


def test_exhaustive_refuses_politely_over_budget():
    with pytest.raises(UserError, match="over the budget"):
        make("exhaustive", Space(30, 7), Landscape(30, 0), budget=1000)


def test_bad_k_and_protection_are_user_errors():
    with pytest.raises(UserError, match="k=0"):
        Space(10, 0)
    with pytest.raises(UserError, match="smaller than the 2 removable blocks"):
        Space(4, 2, frozenset({0, 3}))
    with pytest.raises(UserError, match="unknown option 'width'"):
        SEARCHERS["greedy"](Space(10, 2), width=3)


@pytest.mark.parametrize("name", ["bo", "ga", "anneal", "random"])
def test_stochastic_searchers_finish_on_spaces_smaller_than_their_budgets(name):
    landscape = Landscape(6, seed=0, interaction=0.3)
    space = Space(6, 1, frozenset({0, 5}))  # only 4 feasible sets
    result = run(make(name, space, landscape), landscape)
    assert landscape(result) == pytest.approx(landscape.optimum(space))


def test_option_values_are_checked():
    for name, options in [("beam", {"width": 0}), ("beam", {"width": 2.5}), ("ga", {"tournament": 0}),
                          ("cbo", {"first_order": "yes"}), ("ga", {"mutation": -1.0})]:
        with pytest.raises(UserError, match="bad value"):
            SEARCHERS[name].validate_options(options)
