"""The seed paper's three findings judged on a study's own numbers: supports, contradicts or cannot tell.

Per (model, k) group (searchers only; baselines are left out, as in the Jaccard means):

1. *Objectives change which layers look redundant.* Statistic: mean Jaccard overlap of removed
   sets between searchers under the same objective minus that across objectives
   (`analysis.jaccard_matrix`), with a one-sided permutation test of the objective labels
   (`scipy.stats.permutation_test`: is the overlap larger within objectives than chance?): supports
   when p < `ALPHA`; contradicts when no searcher's removed set changed with the objective (the
   objective made no difference); cannot tell otherwise. (The sets are deterministic given the
   calibration data, so item noise does not enter.)
2. *Perplexity and accuracy rankings disagree* (the paper: perplexity-pruned models, ρ from −0.78 to
   about 0). Statistic: Spearman ρ between the perplexity and the accuracy ranking of the searchers
   under objective `ppl`, with its paired-bootstrap 95 % interval over items: supports when the
   interval lies below 0, contradicts when it lies above 0, cannot tell when it holds 0.
3. *Searchers converge under a fixed objective* (the paper: average accuracy within 1–3 points).
   Per objective, the paired-bootstrap 95 % interval of every searcher pair's acc_avg difference:
   supports when every interval lies inside ±`BAND` points, contradicts when some interval lies
   wholly outside it, cannot tell otherwise.

A finding's overall verdict is the groups' verdict where they agree (cannot tell ones aside); where
some groups support and others contradict it is "cannot tell (mixed)".
"""

from __future__ import annotations

import numpy as np
from scipy.stats import permutation_test

from . import analysis as A

SUPPORTS, CONTRADICTS, UNCLEAR = "supports", "contradicts", "cannot tell"
ALPHA = 0.05
BAND = 3.0  # accuracy points: the paper's "average accuracy differing by 1-3 points"
PERMUTATIONS = 1999
CLAIMS = {
    "objectives": "objectives change which layers look redundant",
    "rankings": "perplexity and accuracy rankings disagree (perplexity-pruned models)",
    "convergence": f"searchers converge under a fixed objective (acc_avg within ±{BAND:g} points)",
}


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def layers_by_objective(entries: list[tuple[str, str, frozenset]]) -> dict:
    """Finding 1 for one group: `entries` (objective, searcher, removed set), searchers only."""
    objectives = list(dict.fromkeys(o for o, _, _ in entries))
    observed = A.jaccard_matrix(entries)
    if observed["within_objective"] is None or observed["across_objectives"] is None:
        return {"verdict": UNCLEAR, "evidence": "needs two objectives with two searchers each"}

    def statistic(*groups):
        relabelled = [(objectives[j], *entries[int(i)][1:]) for j, g in enumerate(groups) for i in g]
        m = A.jaccard_matrix(relabelled)
        if m["within_objective"] is None or m["across_objectives"] is None:
            return np.nan
        return m["within_objective"] - m["across_objectives"]

    groups = [np.array([i for i, e in enumerate(entries) if e[0] == o]) for o in objectives]
    p = float(
        permutation_test(
            groups,
            statistic,
            permutation_type="independent",
            n_resamples=PERMUTATIONS,
            alternative="greater",
            rng=np.random.default_rng(0),
        ).pvalue
    )
    chosen: dict[str, set[frozenset]] = {}
    for _, searcher, removed in entries:
        chosen.setdefault(searcher, set()).add(removed)
    unchanged = sum(len(sets) == 1 for sets in chosen.values())
    verdict = SUPPORTS if p < ALPHA else CONTRADICTS if unchanged == len(chosen) else UNCLEAR
    return {
        "verdict": verdict,
        "evidence": f"Jaccard within objectives {_f(observed['within_objective'])}, across "
        f"{_f(observed['across_objectives'])} (permutation p = {_f(p, 2)}); {unchanged} of {len(chosen)} "
        "searchers removed the same layers under every objective",
    }


def rankings_disagree(rho: float | None, interval: tuple[float, float] | None) -> dict:
    """Finding 2 for one group: ρ of its `ppl`-objective searchers and ρ's 95 % interval."""
    if rho is None:
        return {"verdict": UNCLEAR, "evidence": "ρ undefined (fewer than three `ppl` searchers, or a constant ranking)"}
    if interval is None:
        return {"verdict": UNCLEAR, "evidence": f"Spearman ρ = {rho:.2f}, no interval (no per-item results)"}
    low, high = interval
    verdict = SUPPORTS if high < 0 else CONTRADICTS if low > 0 else UNCLEAR
    return {"verdict": verdict, "evidence": f"Spearman ρ = {rho:.2f} [{low:.2f}, {high:.2f}]"}


def searchers_converge(objective: str, differences: list[dict]) -> dict:
    """Finding 3 for one objective of a group: `differences` are the searcher pairs' paired acc_avg
    differences (`uncertainty.paired_difference`, with `a` and `b` naming the searchers)."""
    if not differences or any(d["acc_avg"] is None for d in differences):
        return {"verdict": UNCLEAR, "evidence": f"`{objective}`: no paired intervals (needs per-item results)"}
    widest = max(differences, key=lambda d: abs(d["acc_avg"]["diff"]))
    w = widest["acc_avg"]
    if any(d["acc_avg"]["low"] > BAND or d["acc_avg"]["high"] < -BAND for d in differences):
        verdict = CONTRADICTS
    elif all(d["acc_avg"]["low"] >= -BAND and d["acc_avg"]["high"] <= BAND for d in differences):
        verdict = SUPPORTS
    else:
        verdict = UNCLEAR
    return {
        "verdict": verdict,
        "evidence": f"`{objective}`: largest difference {widest['a']} − {widest['b']} = {w['diff']:.1f} points "
        f"[{w['low']:.1f}, {w['high']:.1f}] over {len(differences)} pairs",
    }


def overall(verdicts: list[str]) -> str:
    """The groups' common verdict (cannot tell ones aside); mixed support and contradiction cannot tell."""
    found = set(verdicts) - {UNCLEAR}
    if found == {SUPPORTS}:
        return SUPPORTS
    if found == {CONTRADICTS}:
        return CONTRADICTS
    return f"{UNCLEAR} (mixed)" if found else UNCLEAR


def findings(groups: list[dict]) -> list[dict]:
    """Per finding: the claim, the overall verdict and one line per judged group (`report.build`
    puts each group's judgements in its `findings` entry)."""
    out = []
    for key, claim in CLAIMS.items():
        lines = [
            {"group": f"{g['model']}, k = {g['k']}", **j}
            for g in groups
            for j in (g["findings"][key] if isinstance(g["findings"][key], list) else [g["findings"][key]])
        ]
        out.append({"finding": claim, "verdict": overall([line["verdict"] for line in lines]), "groups": lines})
    return out
