"""The study's analyses: pure functions of the collected rows (see `results.collect`).

A row is one cell: model, k, objective, searcher, baseline (bool), seed, removed, value (objective),
seconds, evaluations, block_forwards, metrics {task: number}, acc_avg, ppl_avg. Accuracies are in
percent (each multiple-choice task's primary metric: acc, or acc_norm where lm-eval reports that),
perplexities as is; `acc_avg` / `ppl_avg` are plain means over the suite's tasks of each kind.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from itertools import combinations

from scipy.stats import kendalltau, spearmanr

from ..core.tables import jaccard

NUMBERS = ("value", "acc_avg", "ppl_avg", "seconds", "evaluations", "cached_from_memo", "block_forwards")


def summarize(tasks: dict) -> tuple[dict, float | None, float | None]:
    """Task metrics as `evaluate` reports them → ({task: primary number}, acc_avg %, ppl_avg)."""
    metrics, accs, ppls = {}, [], []
    for name, m in tasks.items():
        if "ppl" in m:
            metrics[name] = m["ppl"]
            ppls.append(m["ppl"])
        else:
            metrics[name] = 100 * m[m["primary"]]
            accs.append(metrics[name])
    return metrics, (statistics.fmean(accs) if accs else None), (statistics.fmean(ppls) if ppls else None)


def group(rows: list[dict], *keys: str) -> dict[tuple, list[dict]]:
    """Rows by the values of `keys`, in first-seen order."""
    out = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return dict(out)


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def seed_means(rows: list[dict]) -> list[dict]:
    """One row per (model, k, objective, searcher): numbers and task metrics averaged over seeds
    (`seeds` counts them); the removed set and its mask are those of the first seed."""
    out = []
    for _, rs in group(rows, "model", "k", "objective", "searcher").items():
        first = min(rs, key=lambda r: r["seed"])
        row = {**first, "seeds": len(rs)}
        for key in NUMBERS:
            row[key] = _mean(r.get(key) for r in rs)
        row["metrics"] = {t: _mean(r["metrics"].get(t) for r in rs) for t in first["metrics"]}
        out.append(row)
    return out


# 1. Tables 1/2 -----------------------------------------------------------------------------


def results_table(rows: list[dict], dense: dict, model: str, k: int, objective: str) -> list[dict]:
    """The paper's Table 1/2 for one (model, k, objective): the dense model first, then each
    searcher (seed means), then the baselines; per-task metrics, averages and the objective value."""
    d = dense[model]
    table = [
        {
            "searcher": "dense",
            "removed": [],
            **d["metrics"],
            "acc_avg": d["acc_avg"],
            "ppl_avg": d["ppl_avg"],
            "value": None,
        }
    ]
    chosen = [r for r in seed_means(rows) if (r["model"], r["k"], r["objective"]) == (model, k, objective)]
    for r in sorted(chosen, key=lambda r: r["baseline"]):
        label = (
            r["searcher"]
            + (" (baseline)" if r["baseline"] else "")
            + (f" ×{r['seeds']} seeds" if r["seeds"] > 1 else "")
        )
        table.append(
            {
                "searcher": label,
                "removed": r["removed"],
                **r["metrics"],
                "acc_avg": r["acc_avg"],
                "ppl_avg": r["ppl_avg"],
                "value": r["value"],
            }
        )
    if any(r.get("decode_x") is not None for r in chosen):  # `depthprune speed --run` measured some cells
        measured: list[dict | None] = [None, *sorted(chosen, key=lambda r: r["baseline"])]
        for row, cell in zip(table, measured):
            row["decode_x"] = None if cell is None else cell.get("decode_x")
    return table


# 2. Removed-layer masks (Figure 1) ---------------------------------------------------------


def masks(rows: list[dict], model: str, k: int) -> list[tuple[str, str, frozenset]]:
    """(objective, searcher, removed set) for one (model, k), first seed, in grid order."""
    first: dict[tuple[str, str], dict] = {}
    for r in rows:
        if (r["model"], r["k"]) == (model, k):
            key = (r["objective"], r["searcher"])
            if key not in first or r["seed"] < first[key]["seed"]:
                first[key] = r
    return [(o, s, frozenset(r["removed"])) for (o, s), r in first.items()]


def mask_text(entries, n_blocks: int) -> str:
    """Text masks: one line per (objective, searcher), one column per layer, `█` removed, `·` kept."""
    width = max(len(f"{o} {s}") for o, s, _ in entries)
    header = " " * (width + 1) + "".join(str(i // 10) if i % 10 == 0 else " " for i in range(n_blocks))
    ticks = " " * (width + 1) + "".join(str(i % 10) for i in range(n_blocks))
    lines = [header, ticks]
    for o, s, removed in entries:
        lines.append(f"{o + ' ' + s:<{width}} " + "".join("█" if i in removed else "·" for i in range(n_blocks)))
    return "\n".join(lines)


# 3. Rank agreement (Figure 2) --------------------------------------------------------------


def rank_correlation(xs: list[float], ys: list[float]) -> dict:
    """Spearman ρ and Kendall τ-b of two paired lists (ties get average ranks); each None when
    fewer than three pairs or either list is constant."""
    out: dict[str, float | None] = {"n": len(xs), "spearman": None, "kendall": None}
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return out
    out["spearman"] = float(spearmanr(xs, ys).statistic)
    out["kendall"] = float(kendalltau(xs, ys).statistic)
    return out


def rank_agreement(rows: list[dict]) -> dict:
    """Spearman ρ and Kendall τ-b between the perplexity ranking (1 = lowest ppl_avg) and the
    accuracy ranking (1 = highest acc_avg) of the given models; ties get average ranks. Positive:
    the rankings agree. None when fewer than three models or a ranking is constant."""
    pairs = [(r["ppl_avg"], r["acc_avg"]) for r in rows if r["ppl_avg"] is not None and r["acc_avg"] is not None]
    return rank_correlation([p for p, _ in pairs], [-a for _, a in pairs])


# 4. Spread across searchers (Figure 3) -----------------------------------------------------


def spread(values: list[float]) -> dict:
    """Range, mean and population variance σ² (ddof = 0, the paper's convention) of `values`."""
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0, "min": None, "max": None, "range": None, "mean": None, "var": None}
    return {
        "n": len(values),
        "min": min(values),
        "max": max(values),
        "range": max(values) - min(values),
        "mean": statistics.fmean(values),
        "var": statistics.pvariance(values),
    }


# 5. Search cost (Table 3) ------------------------------------------------------------------


def cost_table(rows: list[dict], model: str, k: int) -> list[dict]:
    """Wall time, evaluations and block-forwards per (objective, searcher), seed means. `evaluations`
    counts candidates the objective computed in this cell, `served_by_memo` those another run had
    already computed (shared memo): the search's cost is their sum, whatever ran before it."""
    return [
        {
            "objective": r["objective"],
            "searcher": r["searcher"],
            "seconds": r["seconds"],
            "evaluations": r["evaluations"],
            "served_by_memo": r.get("cached_from_memo"),
            "candidates": None if r["evaluations"] is None else r["evaluations"] + (r.get("cached_from_memo") or 0),
            "block_forwards": r["block_forwards"],
        }
        for r in seed_means(rows)
        if (r["model"], r["k"]) == (model, k)
    ]


# 6. Beyond the paper -----------------------------------------------------------------------


def jaccard_matrix(entries, baselines=frozenset()) -> dict:
    """Pairwise Jaccard overlap of removed sets, and its mean within one objective vs across
    objectives over pairs of different searchers; the `baselines` (random, tail) are in the matrix
    but not in those means: their own means (pairs with one baseline) are reported apart."""
    labels = [f"{o} {s}" for o, s, _ in entries]
    matrix = [[jaccard(a, b) for _, _, b in entries] for _, _, a in entries]
    means: dict[tuple[bool, bool], list[float]] = defaultdict(list)  # (involves a baseline, same objective)
    for (o1, s1, a), (o2, s2, b) in combinations(entries, 2):
        if s1 != s2:
            means[(s1 in baselines or s2 in baselines, o1 == o2)].append(jaccard(a, b))
    return {
        "labels": labels,
        "matrix": matrix,
        "within_objective": _mean(means[(False, True)]),
        "across_objectives": _mean(means[(False, False)]),
        "baseline_within_objective": _mean(means[(True, True)]),
        "baseline_across_objectives": _mean(means[(True, False)]),
    }


def variance_decomposition(rows: list[dict], metric: str) -> dict | None:
    """Shares of the total sum of squares of `metric` explained by the objective and by the searcher
    (two-way main effects, SS_x = Σ_levels n_level (mean_level − grand mean)²; the rest is their
    interaction). Needs a complete grid: every searcher under every objective; None otherwise."""
    cells = {(r["objective"], r["searcher"]): r[metric] for r in rows if r[metric] is not None}
    objectives = sorted({o for o, _ in cells})
    searchers = sorted({s for _, s in cells})
    if len(objectives) < 2 or len(searchers) < 2 or len(cells) != len(objectives) * len(searchers):
        return None
    grand = statistics.fmean(cells.values())
    total = sum((v - grand) ** 2 for v in cells.values())
    if total == 0:
        return None
    ss_obj = sum(len(searchers) * (statistics.fmean(cells[o, s] for s in searchers) - grand) ** 2 for o in objectives)
    ss_search = sum(
        len(objectives) * (statistics.fmean(cells[o, s] for o in objectives) - grand) ** 2 for s in searchers
    )
    return {
        "objective": ss_obj / total,
        "searcher": ss_search / total,
        "interaction": max(0.0, 1 - (ss_obj + ss_search) / total),
        "n": len(cells),
    }


def seed_variation(rows: list[dict]) -> list[dict]:
    """Mean ± sample standard deviation (ddof = 1) over seeds, per (model, k, objective, searcher)
    run with more than one seed."""
    out = []
    for (model, k, objective, searcher), rs in group(rows, "model", "k", "objective", "searcher").items():
        if len(rs) < 2:
            continue
        row = {
            "model": model,
            "k": k,
            "objective": objective,
            "searcher": searcher,
            "seeds": len(rs),
            "distinct_sets": len({frozenset(r["removed"]) for r in rs}),
        }
        for key in ("value", "acc_avg", "ppl_avg"):
            values = [r[key] for r in rs if r[key] is not None]
            row[key] = (statistics.fmean(values), statistics.stdev(values)) if len(values) > 1 else None
        out.append(row)
    return out


# 7. Pruned vs healed -----------------------------------------------------------------------

HIGHER_IS_BETTER = {"acc_avg": True, "ppl_avg": False}


def heal_table(rows: list[dict], methods: list[str]) -> list[dict]:
    """One row per cell: its removed set and the suite averages pruned and healed by each method
    (`{method}_acc_avg`, `{method}_ppl_avg`; None where that heal is not stored yet)."""
    out = []
    for r in rows:
        row = {k: r[k] for k in ("objective", "searcher", "seed", "removed", "acc_avg", "ppl_avg")}
        for m in methods:
            healed = r.get("healed", {}).get(m) or {}
            row |= {f"{m}_acc_avg": healed.get("acc_avg"), f"{m}_ppl_avg": healed.get("ppl_avg")}
        out.append(row)
    return out


def best_after_healing(rows: list[dict], method: str, metric: str) -> dict | None:
    """Does healing by `method` change which removed set is best by `metric` (acc_avg: highest is
    best, ppl_avg: lowest)? The candidates are the distinct removed sets of `rows` with both a pruned
    and a healed value (cells that found the same set are one candidate; ties go to the smaller set
    in sorted order). `pruned` / `healed`: the best set pruned and the best set healed, each with the
    cells that found it and both its values; `changed`: whether they differ; `spearman` / `kendall`:
    rank correlation of the candidates' pruned and healed values (`rank_correlation`). None when no
    set has both values."""
    sets: dict[tuple, dict] = {}
    for r in rows:
        healed = (r.get("healed", {}).get(method) or {}).get(metric)
        if r[metric] is None or healed is None:
            continue
        entry = sets.setdefault(tuple(sorted(r["removed"])), {"cells": [], "pruned": r[metric], "healed": healed})
        entry["cells"].append(f"{r['objective']} {r['searcher']}" + (f" s{r['seed']}" if r["seed"] else ""))
    if not sets:
        return None
    sign = -1 if HIGHER_IS_BETTER[metric] else 1

    def best(stage: str) -> dict:
        removed = min(sets, key=lambda s: (sign * sets[s][stage], s))
        return {"removed": list(removed), **sets[removed]}

    pruned, healed = best("pruned"), best("healed")
    keys = list(sets)
    return {
        "method": method,
        "metric": metric,
        "pruned": pruned,
        "healed": healed,
        "changed": pruned["removed"] != healed["removed"],
        **rank_correlation([sets[s]["pruned"] for s in keys], [sets[s]["healed"] for s in keys]),
    }


# 8. cross-objective generalisation ---------------------------------------------------------------


def cross_objective(rows: list[dict]) -> list[dict]:
    """How the removed sets each objective chose do on every held-out suite average, one row per
    objective of one (model, k) group: `searchers` (searched cells, baselines left out, seeds
    averaged first), the mean `acc_avg` and `ppl_avg` of their pruned models, and for each average
    its gap to the objective whose sets do best on it (`acc_gap` = best − this, `ppl_gap` = this −
    best, both ≥ 0; 0 marks the best). An objective generalises to the other's metric when its gap
    there is small: e.g. `ppl`'s `acc_gap` is how much accuracy choosing by perplexity costs."""
    searched = [r for r in seed_means(rows) if not r["baseline"]]
    out = [
        {"objective": o, "searchers": len(rs), **{m: _mean(r[m] for r in rs) for m in HIGHER_IS_BETTER}}
        for (o,), rs in group(searched, "objective").items()
    ]
    for metric, higher in HIGHER_IS_BETTER.items():
        known = [r[metric] for r in out if r[metric] is not None]
        best = (max if higher else min)(known) if known else None
        gap = f"{metric.split('_')[0]}_gap"
        for r in out:
            r[gap] = None if r[metric] is None or best is None else abs(best - r[metric])
    return out
