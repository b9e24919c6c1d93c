"""Uncertainty of a study's numbers from its per-item results: how much of a difference is item noise.

Every interval here is a seeded percentile bootstrap over the suite's items (`scipy.stats.bootstrap`,
`RESAMPLES` resamples, `LEVEL` = 95 %): each task's items (multiple-choice questions, perplexity
windows) are drawn with replacement, tasks independently, and the statistic is recomputed on the
drawn items. Quantities that compare models (differences, rank correlations, spreads) evaluate every
model on the same drawn items in each resample — a paired bootstrap, so the noise the models share
cancels. The bootstrap captures item noise only: the calibration data, the searchers' seeds and the
set of searchers are held as they are.

The metrics are those of `analysis.summarize`: `acc_avg` = mean over multiple-choice tasks of 100 ×
the share of items correct under the task's primary metric; `ppl_avg` = mean over perplexity tasks of
exp(Σ window NLL / Σ window tokens). A cell run with several seeds contributes the mean over its seeds
of each (as `analysis.seed_means` does).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap, norm, rankdata

LEVEL = 0.95
RESAMPLES = 2000
SEED = 0
METRICS = ("acc_avg", "ppl_avg")

Index = dict[str, np.ndarray]  # task -> drawn item indices, shape (..., n_task)


@dataclass(frozen=True)
class Samples:
    """One cell's per-item results, seeds stacked: `acc[task]` (seeds, items) 1 = correct under the
    task's primary metric; `nll[task]` (seeds, windows) summed NLL per window; `tokens[task]` the
    windows' token counts (the same for every seed)."""

    acc: dict[str, np.ndarray]
    nll: dict[str, np.ndarray]
    tokens: dict[str, np.ndarray]

    def sizes(self) -> dict[str, int]:
        return {t: a.shape[1] for t, a in self.acc.items()} | {t: a.shape[1] for t, a in self.nll.items()}

    def has(self, metric: str) -> bool:
        return bool(self.acc if metric == "acc_avg" else self.nll)

    def value(self, metric: str, idx: Index) -> np.ndarray:
        """`metric` on the drawn items `idx` (an array over the leading axes of the indices)."""
        if metric == "acc_avg":
            per_task = [100 * a[:, idx[t]].mean(axis=-1) for t, a in self.acc.items()]
        else:
            per_task = [
                np.exp(n[:, idx[t]].sum(axis=-1) / self.tokens[t][idx[t]].sum(axis=-1)) for t, n in self.nll.items()
            ]
        return np.mean(per_task, axis=0).mean(axis=0)

    def all_items(self) -> Index:
        return {t: np.arange(n) for t, n in self.sizes().items()}

    def only(self, task: str) -> Samples:
        """The results of one task."""
        return Samples(
            {t: a for t, a in self.acc.items() if t == task},
            {t: a for t, a in self.nll.items() if t == task},
            {t: a for t, a in self.tokens.items() if t == task},
        )


def samples(tasks: dict, items: dict | None) -> Samples | None:
    """One evaluation's `Samples` from its stored task metrics (`core.evaluate`) and per-item file
    contents (`core.items`); None without a file or when it does not hold every task's results."""
    if items is None or not all(
        set(items.get(t, ())) >= ({"nll"} if "ppl" in m else {m["primary"]}) for t, m in tasks.items()
    ):
        return None
    acc, nll, tokens = {}, {}, {}
    for name, metrics in tasks.items():
        if "ppl" in metrics:
            nll[name] = np.asarray([items[name]["nll"]], dtype=float)
            tokens[name] = np.asarray(items[name]["tokens"], dtype=float)
        else:
            acc[name] = np.asarray([items[name][metrics["primary"]]], dtype=float)
    return Samples(acc, nll, tokens)


def stack(cells: Sequence[Samples | None]) -> Samples | None:
    """The seeds of one cell as one `Samples`; None when any is missing or they scored other items."""
    if not cells or any(c is None for c in cells) or not all(_same_items(cells[0], c) for c in cells):
        return None
    first = cells[0]
    assert first is not None
    return Samples(
        {t: np.concatenate([c.acc[t] for c in cells if c]) for t in first.acc},
        {t: np.concatenate([c.nll[t] for c in cells if c]) for t in first.nll},
        first.tokens,
    )


def _same_items(a: Samples | None, b: Samples | None) -> bool:
    return (
        a is not None
        and b is not None
        and a.sizes() == b.sizes()
        and set(a.acc) == set(b.acc)
        and all(np.array_equal(a.tokens[t], b.tokens[t]) for t in a.tokens)
    )


def resample(sizes: dict[str, int], statistic: Callable[[Index], np.ndarray]):
    """`scipy.stats.bootstrap` of `statistic` over item indices, one independent sample per task
    (seed `SEED`, percentile method); None when a task has fewer than two items (no noise estimate)."""
    names = list(sizes)
    if not names or min(sizes.values()) < 2:
        return None

    def stat(*drawn, axis=-1):
        return statistic({t: np.asarray(d, dtype=np.intp) for t, d in zip(names, drawn)})

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate (all-equal) distribution is a valid answer here
        return bootstrap(
            [np.arange(sizes[t]) for t in names],
            stat,
            n_resamples=RESAMPLES,
            confidence_level=LEVEL,
            method="percentile",
            vectorized=True,
            batch=250,
            rng=np.random.default_rng(SEED),
        )


def _ends(result) -> tuple[float, float]:
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)


def interval(cell: Samples | None, metric: str) -> tuple[float, float] | None:
    """95 % bootstrap interval of the cell's `metric`; None without per-item results."""
    if cell is None or not cell.has(metric):
        return None
    result = resample(cell.sizes(), lambda idx: cell.value(metric, idx))
    return None if result is None else _ends(result)


def task_interval(cell: Samples | None, task: str) -> tuple[float, float] | None:
    """95 % bootstrap interval of one task's number (accuracy % or perplexity); None without it."""
    if cell is None or task not in cell.sizes():
        return None
    one = cell.only(task)
    return interval(one, "acc_avg" if one.acc else "ppl_avg")


def p_value(distribution: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the difference is 0": twice the share of resampled differences
    on the far side of zero, with the +1 correction, at most 1 (p < 0.05 about when the 95 %
    percentile interval excludes 0)."""
    d = distribution[np.isfinite(distribution)]
    tail = min(int((d <= 0).sum()), int((d >= 0).sum()))
    return min(1.0, 2 * (1 + tail) / (len(d) + 1))


def paired_difference(a: Samples | None, b: Samples | None, metric: str) -> dict | None:
    """Paired bootstrap of `metric`(a) − `metric`(b) over the items both were scored on: the observed
    difference `diff`, its 95 % interval `low`..`high` and the two-sided `p` (see `p_value`). None
    when either lacks per-item results or they were scored on other items."""
    if a is None or b is None or not a.has(metric) or not _same_items(a, b):
        return None
    result = resample(a.sizes(), lambda idx: a.value(metric, idx) - b.value(metric, idx))
    if result is None:
        return None
    whole = a.all_items()
    low, high = _ends(result)
    diff = float(a.value(metric, whole) - b.value(metric, whole))
    return {"diff": diff, "low": low, "high": high, "p": p_value(result.bootstrap_distribution)}


def _common(cells: Sequence[Samples | None], metric: str) -> list[Samples] | None:
    if len(cells) < 2 or any(c is None or not c.has(metric) for c in cells):
        return None
    if not all(_same_items(cells[0], c) for c in cells):
        return None
    return [c for c in cells if c is not None]


def rank_intervals(cells: Sequence[Samples | None]) -> dict | None:
    """95 % paired-bootstrap intervals of Spearman ρ and Kendall τ-b between the perplexity ranking
    (1 = lowest ppl_avg) and the accuracy ranking (1 = highest acc_avg) of `cells` (as
    `analysis.rank_agreement`); a resample where a ranking is constant has no ρ and is left out
    (`defined`: the share kept). None with fewer than three cells or without per-item results."""
    common = _common(cells, "acc_avg") if len(cells) >= 3 else None
    if common is None or _common(cells, "ppl_avg") is None:
        return None
    found: list[Samples] = common

    def both(idx):
        ppl = np.stack([c.value("ppl_avg", idx) for c in found])
        acc = np.stack([c.value("acc_avg", idx) for c in found])
        return ppl.reshape(len(found), -1), -acc.reshape(len(found), -1)

    def spearman(idx):
        ppl, neg_acc = both(idx)
        x, y = rankdata(ppl, axis=0), rankdata(neg_acc, axis=0)
        x, y = x - x.mean(axis=0), y - y.mean(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (x * y).sum(axis=0) / np.sqrt((x * x).sum(axis=0) * (y * y).sum(axis=0))

    def kendall(idx):
        return kendall_tau_b(*both(idx))

    out: dict = {}
    for name, statistic in (("spearman", spearman), ("kendall", kendall)):
        result = resample(found[0].sizes(), statistic)
        if result is None:
            return None
        d = result.bootstrap_distribution
        kept = d[np.isfinite(d)]
        tail = (1 - LEVEL) / 2
        out[name] = (float(np.quantile(kept, tail)), float(np.quantile(kept, 1 - tail))) if len(kept) else None
        out["defined"] = len(kept) / len(d)
    return out


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall τ-b of the columns of `x` and `y` (models × resamples): (n_c − n_d) /
    sqrt((n_0 − t_x)(n_0 − t_y)) over the n_0 pairs of models, t_x and t_y the pairs tied in x and in y
    (`scipy.stats.kendalltau`'s default, one column at a time); NaN where a column is constant."""
    sx = np.sign(x[:, None] - x[None, :])
    sy = np.sign(y[:, None] - y[None, :])
    upper = np.triu(np.ones((len(x), len(x)), dtype=bool), 1)
    n0 = upper.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sx * sy)[upper].sum(axis=0) / np.sqrt(
            (n0 - (sx == 0)[upper].sum(axis=0)) * (n0 - (sy == 0)[upper].sum(axis=0))
        )


def noise_spread(cells: Sequence[Samples | None], metric: str) -> dict | None:
    """Is the spread of `metric` across `cells` larger than item noise alone would make it?

    `var`: the observed population variance σ² (ddof = 0, as `analysis.spread`) with its 95 %
    bootstrap interval `var_low`..`var_high`; `noise_var`: the σ² expected if every cell had the same
    true value — the mean over resamples of the population variance of the cells' deviations from
    their own observed values (paired, so shared item noise counts once); `p`: the share of
    resamples (+1 corrected) whose noise-only σ² reaches the observed σ². None with fewer than two
    cells or without per-item results."""
    common = _common(cells, metric)
    if common is None:
        return None
    found: list[Samples] = common
    whole = found[0].all_items()
    observed = np.array([float(c.value(metric, whole)) for c in found])

    def values(idx):
        return np.stack([c.value(metric, idx) for c in found])

    spread = resample(found[0].sizes(), lambda idx: values(idx).var(axis=0))

    def deviations(idx):
        return values(idx) - observed.reshape(observed.shape + (1,) * (next(iter(idx.values())).ndim - 1))

    noise = resample(found[0].sizes(), lambda idx: deviations(idx).var(axis=0))
    if spread is None or noise is None:
        return None
    var = float(observed.var())
    null = noise.bootstrap_distribution
    low, high = _ends(spread)
    return {
        "n": len(found),
        "var": var,
        "var_low": low,
        "var_high": high,
        "noise_var": float(null.mean()),
        "p": float((1 + (null >= var).sum()) / (len(null) + 1)),
    }


EFFECT = 5.0  # accuracy points: the difference whose detection probability `detectability` states
POWER = 0.8  # the power at which `detectability` states the smallest detectable difference


def paired_se(a: Samples, b: Samples) -> float:
    """Standard error of the paired difference acc_avg(a) − acc_avg(b), in points, from the items:
    acc_avg is 100/T Σ_t mean_i x_ti over T tasks, so SE = 100/T · sqrt(Σ_t var_i(d_ti) / n_t) with d_ti
    the seed-averaged per-item difference (1, 0 or −1 for one seed) and var its sample variance."""
    terms = [np.var(a.acc[t].mean(axis=0) - b.acc[t].mean(axis=0), ddof=1) / a.acc[t].shape[1] for t in a.acc]
    return 100 / len(terms) * float(np.sqrt(np.sum(terms)))


def power_at(se: float, effect: float = EFFECT) -> float:
    """Power of a two-sided level-(1 − LEVEL) z test on a paired difference with standard error `se`
    when the true difference is `effect`: Φ(effect/se − z) + Φ(−effect/se − z), z = Φ⁻¹(1 − α/2)."""
    z = norm.ppf(1 - (1 - LEVEL) / 2)
    if se == 0:
        return 1.0
    return float(norm.cdf(effect / se - z) + norm.cdf(-effect / se - z))


def detectable(se: float, power: float = POWER) -> float:
    """The true difference (points) a two-sided level-(1 − LEVEL) test detects with probability
    `power` (normal approximation, far tail neglected): (z_{1−α/2} + z_power) · se."""
    return float((norm.ppf(1 - (1 - LEVEL) / 2) + norm.ppf(power)) * se)


def detectability(cells: Sequence[Samples | None]) -> dict | None:
    """How large an accuracy difference this suite can tell from item noise, judged on the paired
    differences of every two `cells` (searchers of one objective, or pruned models and the dense one):
    `items` per task, the median paired standard error `se` (points; range `se_low`..`se_high`) over
    the `pairs` of distinct models (cells with the same per-item results count once), the power to detect `EFFECT` points at that SE and
    the difference detectable with power `POWER`. None without two such cells with accuracy results
    on the same items."""
    common = _common(cells, "acc_avg")
    if common is None:
        return None
    distinct: list[Samples] = []  # a model listed twice (a baseline shared by every objective) counts once
    for cell in common:
        if not any(all(np.array_equal(cell.acc[t], seen.acc[t]) for t in cell.acc) for seen in distinct):
            distinct.append(cell)
    ses = [paired_se(a, b) for i, a in enumerate(distinct) for b in distinct[i + 1 :]]
    if not ses:
        return None
    se = float(np.median(ses))
    return {
        "items": {t: a.shape[1] for t, a in common[0].acc.items()},
        "pairs": len(ses),
        "se": se,
        "se_low": float(min(ses)),
        "se_high": float(max(ses)),
        "effect": EFFECT,
        "power": power_at(se),
        "detectable": detectable(se),
    }
