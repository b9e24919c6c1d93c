"""The searcher interface: propose removal sets, receive their scores, never touch a model.

A searcher is written as a generator (`search`) that yields batches of removal sets and receives a
dict {set: score} for each batch; its return value is the chosen set of exactly k blocks. `ask`/`tell`
drive it from outside (Optuna-style). Scores are objective values, lower is better. Sets in a batch
may be smaller than k (greedy and one-shot score partial removals). A searcher is deterministic for
a given seed, so replaying it against a memo of stored scores reproduces its trajectory exactly —
that is how runs resume.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Generator, Iterable

from ..core.errors import UserError

RemovalSet = frozenset
Search = Generator[list[RemovalSet], dict[RemovalSet, float], RemovalSet]


@dataclass(frozen=True)
class Space:
    """The feasible sets: exactly `k` of the `n_blocks` blocks, none of them `protected`."""

    n_blocks: int
    k: int
    protected: frozenset = frozenset()

    def __post_init__(self):
        if self.k <= 0:
            raise UserError(f"k={self.k} (from --k) must be at least 1")
        if self.k >= len(self.allowed):
            raise UserError(f"k={self.k} (from --k) must be smaller than the {len(self.allowed)} removable blocks "
                            f"({self.n_blocks} blocks, {len(self.protected)} protected)")

    @property
    def allowed(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.n_blocks) if i not in self.protected)


class Searcher(ABC):
    """Base class: subclasses implement `search`; `options` are the documented hyperparameters."""

    name: ClassVar[str] = ""
    defaults: ClassVar[dict] = {}
    needs: ClassVar[tuple[str, ...]] = ()  # engine signals it may use: "gradients", "segment_mi", "proxy"
    importance_label: ClassVar[str] = "searcher score"  # what `importance` measures (shown with it)
    stochastic: ClassVar[bool] = False  # True: the result depends on the seed (studies run every seed)

    @classmethod
    def validate_options(cls, options: dict) -> None:
        """Reject unknown options and values of the wrong kind: counts are integers ≥ 1, rates and
        temperatures non-negative numbers, switches booleans (UserError naming the option)."""
        for key, value in options.items():
            if key not in cls.defaults:
                raise UserError(f"unknown option {key!r} for searcher {cls.name!r} (from --option); "
                                f"options: {', '.join(sorted(cls.defaults)) or 'none'}")
            default = cls.defaults[key]
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
            elif isinstance(default, str):
                ok = isinstance(value, str)
            else:
                ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
            if not ok:
                raise UserError(f"bad value {value!r} for option {key!r} of searcher {cls.name!r} (from --option)")

    def __init__(self, space: Space, seed: int = 0, **options):
        self.validate_options({k: v for k, v in options.items() if k not in self.needs})
        self.space, self.seed = space, seed
        self.options = {**self.defaults, **options}
        self.rng = random.Random(seed)
        self.importance: dict[int, float] | None = None  # per-block score, when the searcher has one
        self.status = ""
        self.select: int | None = None  # only the best `select` of the pending batch matter (early abort)
        self.states: list[tuple[float, list[int]]] = []  # lowest-energy states, for searchers that have them
        self._gen: Search | None = None
        self._pending: list[RemovalSet] = []
        self.result: RemovalSet | None = None
        self.check()

    def check(self) -> None:
        """Refuse impossible options before any evaluation (raise UserError); default: nothing to check."""

    def signals_needed(self) -> tuple[str, ...]:
        """The engine signals (of `needs`) this configuration uses; the search loop computes them and
        hands them over with `provide` before the first `ask`."""
        return self.needs

    def provide(self, signals: dict) -> None:
        """Receive the engine signals named by `signals_needed` (stored with the options)."""
        self.options.update(signals)

    def planned_evaluations(self) -> int | None:
        """How many removal sets the search will score, at most (for progress and ETA); None: unknown."""
        return None

    @abstractmethod
    def search(self) -> Search:
        """Yield batches of removal sets, receive their scores, return the chosen k-set."""

    # -- helpers for subclasses ----------------------------------------------------------------

    def score(self, sets: Iterable[Iterable[int]]):
        """`scores = yield from self.score(sets)`: evaluate a batch (order kept, duplicates merged)."""
        batch = list(dict.fromkeys(frozenset(s) for s in sets))
        if not batch:
            return {}
        return (yield batch)

    def single_damage(self):
        """(L(∅), {i: Δ_i = L({i}) − L(∅)}) over the allowed blocks: the one-shot scores, which the
        prior-guided searchers share through the memo."""
        scores = yield from self.score([()] + [(i,) for i in self.space.allowed])
        base = scores[frozenset()]
        return base, {i: scores[frozenset((i,))] - base for i in self.space.allowed}

    def prior_weights(self, delta: dict[int, float], tau: float = 1.0) -> dict[int, float]:
        """w_i ∝ exp(−z_i / τ), z the standardised Δ: blocks whose removal hurts least weigh most."""
        values = list(delta.values())
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 or 1.0
        return {i: math.exp(-((d - mean) / std) / tau) for i, d in delta.items()}

    def weighted_sample(self, weights: dict[int, float], n: int, exclude=frozenset(), uniform: float = 0.0) -> list[int]:
        """n distinct blocks drawn sequentially without replacement (Plackett–Luce) from `weights`;
        with probability `uniform` a draw ignores the weights."""
        pool = [i for i in weights if i not in exclude]
        out = []
        for _ in range(n):
            if self.rng.random() < uniform:
                pick = self.rng.choice(pool)
            else:
                pick = self.rng.choices(pool, weights=[weights[i] for i in pool])[0]
            out.append(pick)
            pool.remove(pick)
        return out

    def random_set(self) -> RemovalSet:
        return frozenset(self.rng.sample(self.space.allowed, self.space.k))

    # -- ask / tell ----------------------------------------------------------------------------

    def ask(self) -> list[RemovalSet]:
        """The next batch to score; [] once the search is over (then `result` is set)."""
        if self._gen is None:
            self._gen = self.search()
            return self._advance(None)
        return self._pending

    def tell(self, scores: dict[RemovalSet, float]) -> list[RemovalSet]:
        """Scores for the pending batch; returns the next batch (or [] when done)."""
        missing = [s for s in self._pending if s not in scores]
        if missing:
            raise ValueError(f"no score for {sorted(missing[0])}")
        return self._advance({s: scores[s] for s in self._pending})

    def _advance(self, scores) -> list[RemovalSet]:
        try:
            self._pending = next(self._gen) if scores is None else self._gen.send(scores)
        except StopIteration as stop:
            self.result, self._pending = frozenset(stop.value), []
            if len(self.result) != self.space.k or self.result & self.space.protected:
                raise RuntimeError(f"{self.name} returned an infeasible set {sorted(self.result)}")
        return self._pending


def argmin(scores: dict, among: Iterable) -> object:
    """The first element of `among` with the smallest score (ties keep the earlier one)."""
    best = None
    for s in among:
        if best is None or scores[s] < scores[best]:
            best = s
    return best
