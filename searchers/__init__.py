"""Search algorithms: propose removal sets, receive their scores; they never touch a model.

The paper's seven — oneshot, greedy, beam, ga, bo, cbo, fbs — baselines: random, anneal, window,
tail, exhaustive — and nsga2, the multi-objective search for the Pareto front of a mix's terms.
"""

from __future__ import annotations

from ..core.errors import UserError
from .anneal import Anneal
from .base import RemovalSet, Searcher, Space
from .bayesian import Bayesian
from .cbo import CBO
from .fbs import FastBlockSelect
from .genetic import Genetic
from .pareto import NSGA2
from .simple import Beam, Exhaustive, Greedy, OneShot, RandomSearch, Tail, Window

SEARCHERS: dict[str, type[Searcher]] = {
    s.name: s  # type: ignore[type-abstract]  # (the concrete subclasses)
    for s in [
        OneShot,
        Greedy,
        Beam,
        Genetic,
        Bayesian,
        CBO,
        FastBlockSelect,
        RandomSearch,
        Anneal,
        Window,
        Tail,
        Exhaustive,
        NSGA2,
    ]
}
PAPER_SEARCHERS = ("oneshot", "greedy", "beam", "ga", "bo", "cbo", "fbs")


def searcher_class(name: str) -> type[Searcher]:
    if name not in SEARCHERS:
        raise UserError(f"unknown searcher {name!r} (from --searcher); available: {', '.join(SEARCHERS)}")
    return SEARCHERS[name]


__all__ = ["PAPER_SEARCHERS", "SEARCHERS", "RemovalSet", "Searcher", "Space", "searcher_class"]
