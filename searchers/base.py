"""The searcher interface: propose removal sets, receive their scores, never touch a model.

A searcher is written as a generator (`search`) that yields batches of removal sets and receives a
dict {set: score} for each batch; its return value is the chosen set of exactly k blocks. `ask`/`tell`
drive it from outside (Optuna-style). Scores are objective values, lower is better. Sets in a batch
may be smaller than k (greedy and one-shot score partial removals). A searcher is deterministic for
a given seed, so replaying it against a memo of stored scores reproduces its trajectory exactly —
that is how runs resume. A multi-objective searcher (`multi_objective`) also receives each scored
set's term vector ({term: value}, the `terms` of the objective's `Evaluation`) with `tell`, kept
in `terms`, and leaves its Pareto front in `front`.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from ..core.errors import UserError

T = TypeVar("T")
RemovalSet = frozenset
Search = Generator[list[RemovalSet], dict[RemovalSet, float], RemovalSet]


@dataclass(frozen=True)
class Space:
    """The feasible sets: exactly `k` of the `n_blocks` blocks, none of them `protected`."""

    n_blocks: int
    k: int
    protected: frozenset = frozenset()
    source: str = field(default="--k", compare=False)  # where k came from, for errors

    def __post_init__(self):
        if self.k <= 0:
            raise UserError(f"k={self.k} (from {self.source}) must be at least 1")
        if self.k >= len(self.allowed):
            raise UserError(
                f"k={self.k} (from {self.source}) must be smaller than the {len(self.allowed)} removable blocks "
                f"({self.n_blocks} blocks, {len(self.protected)} protected)"
            )

    @property
    def allowed(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.n_blocks) if i not in self.protected)


@dataclass(frozen=True)
class Option:
    """One searcher hyperparameter: its default and its domain. `kind` is int, float, bool or str;
    numbers lie in [low, high] (an end is excluded when `open_low`/`open_high`); a str is one of
    `choices`; `optional`: None is allowed too (meaning the default rule, e.g. `alt_size` = k)."""

    default: Any
    kind: type
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False

    def domain(self) -> str:
        """The domain in words: 'a number > 0', 'an integer ≥ 1', 'a number with 0 ≤ x ≤ 1', ..."""
        if self.kind is bool:
            text = "true or false"
        elif self.kind is str:
            text = "one of " + ", ".join(self.choices)
        else:
            noun = "an integer" if self.kind is int else "a number"
            lo_op, hi_op = ("<" if self.open_low else "≤"), ("<" if self.open_high else "≤")
            if self.low is not None and self.high is not None:
                text = f"{noun} with {self.low:g} {lo_op} x {hi_op} {self.high:g}"
            elif self.low is not None:
                text = f"{noun} {'>' if self.open_low else '≥'} {self.low:g}"
            elif self.high is not None:
                text = f"{noun} {hi_op} {self.high:g}"
            else:
                text = noun
        return text + (" (or null)" if self.optional else "")

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if self.kind is bool or self.kind is str:
            return isinstance(value, self.kind) and (not self.choices or value in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.kind is float else int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.open_high and value == self.high))


def count(default: int | None, low: int = 1, optional: bool = False) -> Option:
    """An integer option ≥ `low`."""
    return Option(default, int, low=low, optional=optional)


def positive(default: float) -> Option:
    """A number > 0."""
    return Option(default, float, low=0.0, open_low=True)


def fraction(default: float, open_low: bool = False, open_high: bool = False) -> Option:
    """A number in [0, 1] (ends excluded as asked)."""
    return Option(default, float, low=0.0, high=1.0, open_low=open_low, open_high=open_high)


def choice(default: str, *choices: str) -> Option:
    return Option(default, str, choices=(default, *[c for c in choices if c != default]))


def switch(default: bool) -> Option:
    return Option(default, bool)


def option_source(source: str, key: str) -> str:
    """Where option `key` came from: `--option` for the command line, else `<source>.<key>` (a stored
    run.json `config.options`, a study TOML `[options.<searcher>]`)."""
    return source if source.startswith("--") else f"{source}.{key}"


class Searcher(ABC):
    """Base class: subclasses implement `search`; `params` declares the hyperparameters and their
    domains (the one declaration the CLI help, run.json and study files are checked against);
    `defaults` is derived from it."""

    name: ClassVar[str] = ""
    params: ClassVar[dict[str, Option]] = {}
    defaults: ClassVar[dict] = {}
    needs: ClassVar[tuple[str, ...]] = ()  # engine signals it may use: "gradients", "segment_mi", "proxy"
    importance_label: ClassVar[str] = "searcher score"  # what `importance` measures (shown with it)
    stochastic: ClassVar[bool] = False  # True: the result depends on the seed (studies run every seed)
    multi_objective: ClassVar[bool] = False  # True: compares term vectors, so needs a mix of ≥ 2 terms

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "defaults" in cls.__dict__:
            raise TypeError(
                f"searcher {cls.__name__}: declare its options in `params` (default and domain), not `defaults`"
            )
        cls.defaults = {key: o.default for key, o in cls.params.items()}

    @classmethod
    def validate_options(cls, options: dict, source: str = "--option") -> None:
        """Reject unknown options and values outside their declared domain, with one line naming the
        value and `source` (a flag, or the file and table the options were read from)."""
        for key, value in options.items():
            if key not in cls.params:
                raise UserError(
                    f"unknown option {key!r} for searcher {cls.name!r} (from {option_source(source, key)}); "
                    f"options: {', '.join(sorted(cls.params)) or 'none'}"
                )
            if not cls.params[key].accepts(value):
                raise UserError(
                    f"bad value {value!r} for option {key!r} of searcher {cls.name!r} "
                    f"(from {option_source(source, key)}): should be {cls.params[key].domain()}"
                )

    def __init__(self, space: Space, seed: int = 0, **options):
        self.validate_options({k: v for k, v in options.items() if k not in self.needs})
        self.space, self.seed = space, seed
        self.options = {**self.defaults, **options}
        self.rng = random.Random(seed)
        self.importance: dict[int, float] | None = None  # per-block score, when the searcher has one
        self.status = ""
        self.select: int | None = None  # only the best `select` of the pending batch matter (early abort)
        self.states: list[tuple[float, list[int]]] = []  # lowest-energy states, for searchers that have them
        self.terms: dict[RemovalSet, dict[str, float]] = {}  # term vectors received (multi-objective searchers)
        self.front: list[dict] = []  # the Pareto front, for multi-objective searchers: {"removed", "terms", "value"}
        self._gen: Search | None = None
        self._pending: list[RemovalSet] = []
        self.result: RemovalSet | None = None
        self.check()

    def check(self) -> None:  # noqa: B027 (a hook: subclasses with options to check override it)
        """Refuse impossible options before any evaluation (raise UserError); default: nothing to check."""

    def signals_needed(self) -> tuple[str, ...]:
        """The engine signals (of `needs`) this configuration uses; the search loop computes them and
        hands them over with `provide` before the first `ask`."""
        return self.needs

    def provide(self, signals: dict) -> None:
        """Receive the engine signals named by `signals_needed` (stored with the options)."""
        self.options.update(signals)

    def planned_evaluations(self) -> int | None:
        """Exactly how many candidates a fresh run of this search computes, the final re-scoring of
        the result included (with the shared memo off); None when that is not known in advance."""
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
        """w_i ∝ exp(−z_i / τ), z the standardised Δ: blocks whose removal hurts least weigh most.
        Computed as exp(−(z_i − min z) / τ), the same distribution, so no τ > 0 overflows."""
        values = list(delta.values())
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 or 1.0
        z = {i: (d - mean) / std for i, d in delta.items()}
        low = min(z.values())
        return {i: math.exp(-(zi - low) / tau) for i, zi in z.items()}

    def weighted_sample(
        self, weights: dict[int, float], n: int, exclude=frozenset(), uniform: float = 0.0
    ) -> list[int]:
        """n distinct blocks drawn sequentially without replacement (Plackett–Luce) from `weights`;
        with probability `uniform` a draw ignores the weights, and so does a draw whose remaining
        weights have all underflowed to 0 (a tiny τ)."""
        pool = [i for i in weights if i not in exclude]
        out = []
        for _ in range(n):
            if self.rng.random() < uniform or not any(weights[i] for i in pool):
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

    def tell(
        self, scores: dict[RemovalSet, float], terms: dict[RemovalSet, dict[str, float]] | None = None
    ) -> list[RemovalSet]:
        """Scores for the pending batch (and, for a multi-objective searcher, their term vectors);
        returns the next batch (or [] when done)."""
        missing = [s for s in self._pending if s not in scores]
        if self.multi_objective:
            self.terms.update(terms or {})
            missing += [s for s in self._pending if s not in self.terms]
        if missing:
            raise ValueError(f"no score{' or terms' if self.multi_objective else ''} for {sorted(missing[0])}")
        return self._advance({s: scores[s] for s in self._pending})

    def _advance(self, scores) -> list[RemovalSet]:
        assert self._gen is not None  # `ask` started the search
        try:
            self._pending = next(self._gen) if scores is None else self._gen.send(scores)
        except StopIteration as stop:
            self.result, self._pending = frozenset(stop.value), []
            if len(self.result) != self.space.k or self.result & self.space.protected:
                raise RuntimeError(f"{self.name} returned an infeasible set {sorted(self.result)}") from None
        return self._pending


def argmin(scores: dict, among: Iterable[T]) -> T:
    """The first element of `among` with the smallest score (ties keep the earlier one)."""
    best: T | None = None
    for s in among:
        if best is None or scores[s] < scores[best]:
            best = s
    if best is None:
        raise ValueError("argmin over no candidates")
    return best
