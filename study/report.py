"""A study's report: every analysis per (model, k), rendered as Markdown (default), CSV, JSON or
HTML, with the removed-layer figures and, for multi-objective cells (nsga2), their Pareto fronts
(PNG, matplotlib) written beside it."""

from __future__ import annotations

import csv
import html
import io
import json
import math
from pathlib import Path

from ..core.errors import UserError
from ..core.runs import slug
from . import analysis as A
from . import findings as F
from . import uncertainty as U

FORMATS = ("md", "csv", "json", "html")


def build(config, data: dict) -> dict:
    """All analyses of the collected `data` (see `results.collect`), grouped by (model, k); the
    uncertainty and the findings only when `data` was collected with its per-item results."""
    rows, dense = data["rows"], data["dense"]
    groups = []
    for (model, k), rs in A.group(rows, "model", "k").items():
        if model not in dense:
            continue
        searched = [
            {**r, "log_ppl_avg": math.log(r["ppl_avg"]) if r["ppl_avg"] else None}
            for r in A.seed_means(rs)
            if not r["baseline"]
        ]  # log: one exploded model cannot own the variance
        entries = A.masks(rs, model, k)
        by_objective = A.group(searched, "objective")
        groups.append(
            {
                "model": model,
                "k": k,
                "n_blocks": data["n_blocks"][model],
                "tables": {
                    o: A.results_table(rs, dense, model, k, o) for o in config.objectives if (o,) in by_objective
                },
                "uncertainty": uncertainty(rs, data["samples"], model) if "samples" in data else None,
                "masks": [{"objective": o, "searcher": s, "removed": sorted(r)} for o, s, r in entries],
                "mask_text": A.mask_text(entries, data["n_blocks"][model]),
                "rank_agreement": {o: A.rank_agreement(g) for (o,), g in by_objective.items()},
                "spread": {
                    o: {m: A.spread([r[m] for r in g]) for m in ("acc_avg", "ppl_avg")}
                    for (o,), g in by_objective.items()
                },
                "cost": A.cost_table(rs, model, k),
                "jaccard": A.jaccard_matrix(entries, frozenset(config.baselines)),
                "variance": {m: A.variance_decomposition(searched, m) for m in ("acc_avg", "ppl_avg", "log_ppl_avg")},
                "seeds": A.seed_variation(rs),
                "healing": _healing(rs, config.heal, data.get("samples"), model),
                "cross_objective": A.cross_objective(rs),
                "fronts": [
                    {key: r[key] for key in ("objective", "searcher", "seed", "run", "removed", "value")} | r["front"]
                    for r in rs
                    if r.get("front")
                ],
            }
        )
        if "samples" in data:
            groups[-1]["findings"] = judge(groups[-1], entries, frozenset(config.baselines))
    return {
        "study": config.name,
        "grid": {
            "models": config.models,
            "objectives": config.objectives,
            "searchers": config.searchers,
            "baselines": config.baselines,
            "k": config.k,
            "seeds": config.seeds,
            "heal": config.heal,
        },
        "evaluation": config.evaluation,
        "calibration": config.calibration,
        "dense": dense,
        "groups": groups,
        "findings": F.findings(groups) if "samples" in data else None,
        "missing": data["missing"],
    }


def _healing(rows: list[dict], methods: list[str], samples: dict | None, model: str) -> dict | None:
    """Pruned vs healed for one (model, k): the per-cell table, with each healed model's paired
    difference to its pruned one (`{method}_vs_pruned`: {metric: `uncertainty.paired_difference`},
    None without per-item results) and, per method and suite average, whether healing changes which
    removed set is best."""
    if not methods:
        return None
    table = A.heal_table(rows, methods)
    for row in table:
        pruned = (samples or {}).get((model, tuple(row["removed"])))
        for m in methods:
            healed = (samples or {}).get((model, tuple(row["removed"]), m))
            row[f"{m}_vs_pruned"] = {metric: U.paired_difference(healed, pruned, metric) for metric in U.METRICS}
    best = [A.best_after_healing(rows, m, metric) for m in methods for metric in A.HIGHER_IS_BETTER]
    return {"table": table, "best": [b for b in best if b is not None]}


def best_line(b: dict) -> str:
    """One sentence answering whether healing by `b["method"]` changes the best removed set."""

    def named(entry: dict) -> str:
        return f"{entry['removed']} ({', '.join(entry['cells'])})"

    p, h = b["pruned"], b["healed"]
    if b["changed"]:
        verdict = (
            f"yes: best pruned {named(p)} {_cell(p['pruned'])} (healed {_cell(p['healed'])}), best healed "
            f"{named(h)} {_cell(h['healed'])} (pruned {_cell(h['pruned'])})"
        )
    else:
        verdict = f"no: {named(p)} is best pruned ({_cell(p['pruned'])}) and healed ({_cell(p['healed'])})"
    rho = "undefined" if b["spearman"] is None else f"{b['spearman']:.3g}"
    return (
        f"- {b['method']}, {b['metric']}: {verdict}; Spearman ρ of the pruned and healed rankings {rho} "
        f"over {b['n']} removed sets"
    )


def uncertainty(rows: list[dict], samples: dict, model: str) -> dict:
    """Item-noise uncertainty of one (model, k) group's numbers (`study.uncertainty`), per objective:
    `intervals` — per cell (dense first, then as in the results table) the 95 % interval of every task
    metric and average and its paired difference to the dense model; `pairs` — the paired
    differences of every two searchers; `ranks` — intervals of ρ and τ; `noise` — σ² across searchers
    against item noise; `power` — the accuracy difference the suite can detect, over every two models of
    the group and the dense one. `samples`: {(model, removed): `uncertainty.Samples` or None} (`results.collect`);
    without per-item results every entry is None."""
    dense = samples.get((model, ()))
    cells = {
        key: U.stack([samples.get((r["model"], tuple(r["removed"]))) for r in rs])
        for key, rs in A.group(rows, "objective", "searcher").items()
    }
    baseline = {key: rs[0]["baseline"] for key, rs in A.group(rows, "objective", "searcher").items()}
    tasks = list(dict.fromkeys(t for r in rows for t in r["metrics"]))

    def intervals(cell):
        return {t: U.task_interval(cell, t) for t in tasks} | {m: U.interval(cell, m) for m in U.METRICS}

    out: dict = {
        "intervals": {},
        "pairs": {},
        "ranks": {},
        "noise": {},
        "power": U.detectability([dense, *cells.values()]),
    }
    for (objective,) in A.group(rows, "objective"):
        keys = sorted((k for k in cells if k[0] == objective), key=lambda k: baseline[k])
        searched = [k for k in keys if not baseline[k]]
        out["intervals"][objective] = [{"searcher": "dense", **intervals(dense), "vs_dense": None}] + [
            {
                "searcher": s + (" (baseline)" if baseline[(o, s)] else ""),
                **intervals(cells[(o, s)]),
                "vs_dense": {m: U.paired_difference(cells[(o, s)], dense, m) for m in U.METRICS},
            }
            for o, s in keys
        ]
        out["pairs"][objective] = [
            {"a": a[1], "b": b[1], **{m: U.paired_difference(cells[a], cells[b], m) for m in U.METRICS}}
            for i, a in enumerate(searched)
            for b in searched[i + 1 :]
        ]
        out["ranks"][objective] = U.rank_intervals([cells[k] for k in searched])
        out["noise"][objective] = {m: U.noise_spread([cells[k] for k in searched], m) for m in U.METRICS}
    return out


def judge(group: dict, entries, baselines: frozenset) -> dict:
    """The three findings (`study.findings`) judged on one group of `build`."""
    ranks = group["uncertainty"]["ranks"].get("ppl")
    return {
        "objectives": F.layers_by_objective([e for e in entries if e[1] not in baselines]),
        "rankings": F.rankings_disagree(
            group["rank_agreement"].get("ppl", {}).get("spearman"), ranks["spearman"] if ranks else None
        ),
        "convergence": [F.searchers_converge(o, pairs) for o, pairs in group["uncertainty"]["pairs"].items()],
    }


# -- figures -----------------------------------------------------------------------------------


def write_figures(report: dict, folder: Path) -> dict[tuple, str]:
    """One PNG per (model, k): a mask panel per objective, side by side (the paper's Figure 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {}
    for g in report["groups"]:
        objectives = list(dict.fromkeys(m["objective"] for m in g["masks"]))
        fig, axes = plt.subplots(
            1,
            len(objectives),
            squeeze=False,
            sharey=False,
            figsize=(max(4.0, 0.22 * g["n_blocks"]) * len(objectives), 0.6 + 0.3 * len(g["masks"]) / len(objectives)),
        )
        for ax, objective in zip(axes[0], objectives):
            entries = [m for m in g["masks"] if m["objective"] == objective]
            grid = [[1 if i in m["removed"] else 0 for i in range(g["n_blocks"])] for m in entries]
            ax.imshow(grid, cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
            ax.set_yticks(range(len(entries)), [m["searcher"] for m in entries], fontsize=7)
            ax.set_xticks(range(0, g["n_blocks"], 2))
            ax.tick_params(axis="x", labelsize=6)
            ax.set_title(f"{objective}", fontsize=9)
            ax.set_xlabel("layer (original index)", fontsize=7)
        fig.suptitle(f"{g['model']}, k = {g['k']}: removed layers (black)", fontsize=9)
        fig.tight_layout()
        name = f"masks-{slug(g['model'])}-k{g['k']}.png"
        fig.savefig(folder / name, dpi=120)
        plt.close(fig)
        names[(g["model"], g["k"])] = name
        for front in g["fronts"]:
            names[("front", front["run"])] = front_figure(front, g, folder)
    return names


def front_figure(front: dict, group: dict, folder: Path) -> str:
    """One multi-objective cell's PNG (drawn by `write_figures`, on its backend): every evaluated
    k-set's first two terms (light), the Pareto front (highlighted, joined as a step line), the
    chosen set and the dense model (0, 0); returns the file name."""
    import matplotlib.pyplot as plt

    names = list(front["members"][0]["terms"])[:2]
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    x, y = names
    ax.scatter(
        [t[x] for t in front["evaluated"]],
        [t[y] for t in front["evaluated"]],
        s=12,
        color="0.72",
        label="evaluated k-sets",
        zorder=1,
    )
    points = sorted((m["terms"][x], m["terms"][y]) for m in front["members"])
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ax.step(xs, ys, where="post", color="C3", linewidth=1, zorder=2)
    ax.scatter(xs, ys, s=22, color="C3", label=f"Pareto front ({len(points)})", zorder=3)
    chosen = next(m["terms"] for m in front["members"] if m["removed"] == front["removed"])
    ax.scatter([chosen[x]], [chosen[y]], s=90, marker="*", color="C0", label="result", zorder=4)
    ax.scatter([0.0], [0.0], s=50, marker="x", color="black", label="dense model", zorder=4)
    ax.set_xlabel(f"{x} (relative change vs dense)", fontsize=8)
    ax.set_ylabel(f"{y} (relative change vs dense)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    ax.set_title(f"{group['model']}, k = {group['k']}: {front['searcher']} on {front['objective']}", fontsize=8)
    fig.tight_layout()
    name = f"front-{front['run']}.png"
    fig.savefig(folder / name, dpi=120)
    plt.close(fig)
    return name


# -- rendering ---------------------------------------------------------------------------------


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.1f}"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return str(v)


def _tables(report: dict, figures: dict) -> list[tuple[str, list[str], list[list] | None]]:
    """(title, header, rows) of every table in reading order; the text/figure blocks are titles
    with no rows (header holds the lines)."""
    out: list[tuple[str, list[str], list[list] | None]] = []
    out += _findings_table(report)
    for g in report["groups"]:
        head = f"{g['model']}, k = {g['k']} of {g['n_blocks']} blocks"
        for objective, table in g["tables"].items():
            columns = [c for c in table[0] if c not in ("searcher", "removed")]
            out.append(
                (
                    f"{head}: models pruned for `{objective}` (accuracy %, perplexity)",
                    ["searcher", "removed"] + columns,
                    [[r["searcher"], r["removed"]] + [r.get(c) for c in columns] for r in table],
                )
            )
            out += _interval_tables(head, table, objective, g["uncertainty"])
        out.append(
            (
                f"{head}: removed layers",
                ["```", *g["mask_text"].split("\n"), "```"]
                + ([f"![removed layers]({figures[(g['model'], g['k'])]})"] if (g["model"], g["k"]) in figures else []),
                None,
            )
        )
        out += _front_tables(head, g, figures)
        out.append(
            (
                f"{head}: perplexity rank vs accuracy rank across searchers",
                ["objective", "n", "Spearman ρ", "Kendall τ"],
                [[o, a["n"], a["spearman"], a["kendall"]] for o, a in g["rank_agreement"].items()],
            )
        )
        out.append(
            (
                f"{head}: spread across searchers (population σ²)",
                ["objective", "metric", "n", "min", "max", "range", "mean", "σ²"],
                [
                    [o, m, s["n"], s["min"], s["max"], s["range"], s["mean"], s["var"]]
                    for o, ms in g["spread"].items()
                    for m, s in ms.items()
                ],
            )
        )
        out += _noise_tables(head, g)
        out.append(
            (
                f"{head}: cross-objective generalisation (mean over searchers of the suite averages of the "
                f"sets each objective chose; gap = distance to the best objective on that average)",
                ["objective", "searchers", "acc_avg", "acc_gap", "ppl_avg", "ppl_gap"],
                [
                    [c["objective"], c["searchers"], c["acc_avg"], c["acc_gap"], c["ppl_avg"], c["ppl_gap"]]
                    for c in g["cross_objective"]
                ],
            )
        )
        out.append(
            (
                f"{head}: search cost (candidates = computed + served by the shared memo)",
                ["objective", "searcher", "seconds", "computed", "served by memo", "candidates", "block_forwards"],
                [
                    [
                        c["objective"],
                        c["searcher"],
                        c["seconds"],
                        c["evaluations"],
                        c["served_by_memo"],
                        c["candidates"],
                        c["block_forwards"],
                    ]
                    for c in g["cost"]
                ],
            )
        )
        j = g["jaccard"]
        out.append(
            (
                f"{head}: Jaccard overlap of removed sets (searchers: mean within an objective "
                f"{_cell(j['within_objective'])}, across objectives {_cell(j['across_objectives'])}; baselines "
                f"against the others: within {_cell(j['baseline_within_objective'])}, across "
                f"{_cell(j['baseline_across_objectives'])})",
                [""] + j["labels"],
                [[label] + row for label, row in zip(j["labels"], j["matrix"])],
            )
        )
        out.append(
            (
                f"{head}: variance decomposition over the grid (share of total sum of squares)",
                ["metric", "objective", "searcher", "interaction", "n"],
                [
                    [m, v["objective"], v["searcher"], v["interaction"], v["n"]] if v else [m, None, None, None, None]
                    for m, v in g["variance"].items()
                ],
            )
        )
        if g["healing"]:
            methods = report["grid"]["heal"]
            averages = [f"{stage}{m}" for m in ("acc_avg", "ppl_avg") for stage in ["", *(f"{x}_" for x in methods)]]
            out.append(
                (
                    f"{head}: pruned vs healed (suite averages; `{methods[0]}_acc_avg` is the healed accuracy)",
                    ["objective", "searcher", "seed", "removed", *averages],
                    [
                        [r["objective"], r["searcher"], r["seed"], r["removed"], *(r[a] for a in averages)]
                        for r in g["healing"]["table"]
                    ],
                )
            )
            out.append(
                (
                    f"{head}: healed − pruned, paired on the same items (value [95 % interval] p; {NA}: no "
                    "per-item results)",
                    ["objective", "searcher", "seed", "removed", *(f"{m} Δ{x}" for m in methods for x in U.METRICS)],
                    [
                        [r["objective"], r["searcher"], r["seed"], r["removed"]]
                        + [_diff(r[f"{m}_vs_pruned"][x]) for m in methods for x in U.METRICS]
                        for r in g["healing"]["table"]
                    ],
                )
            )
            out.append(
                (
                    f"{head}: does healing change which removed set is best?",
                    [best_line(b) for b in g["healing"]["best"]] or ["no removed set has a healed score yet"],
                    None,
                )
            )
        if g["seeds"]:
            out.append(
                (
                    f"{head}: seed-to-seed variation (mean ± std)",
                    ["objective", "searcher", "seeds", "distinct sets", "value", "acc_avg", "ppl_avg"],
                    [
                        [s["objective"], s["searcher"], s["seeds"], s["distinct_sets"]]
                        + [
                            None if s[m] is None else f"{s[m][0]:.4g} ± {s[m][1]:.2g}"
                            for m in ("value", "acc_avg", "ppl_avg")
                        ]
                        for s in g["seeds"]
                    ],
                )
            )
    return out


NA = "n/a"  # an interval without per-item results (a study evaluated before they were stored)


def _terms(terms: dict) -> str:
    return ", ".join(f"{name} {_cell(v)}" for name, v in terms.items())


def _front_tables(head: str, g: dict, figures: dict) -> list[tuple[str, list[str], list[list] | None]]:
    """The multi-objective cells of one group: front size and chosen set, then each front's figure
    with its caption (none when the group has no such cell)."""
    if not g["fronts"]:
        return []
    rows = [
        [
            f["objective"],
            f["searcher"],
            f["seed"],
            len(f["members"]),
            len(f["evaluated"]),
            f["removed"],
            _terms(next(m["terms"] for m in f["members"] if m["removed"] == f["removed"])),
        ]
        for f in g["fronts"]
    ]
    lines = []
    for f in g["fronts"]:
        name = figures.get(("front", f["run"]))
        if name:
            terms = list(f["members"][0]["terms"])
            lines += [
                f"![Pareto front of {f['run']}]({name})",
                "",
                f"*{f['searcher']} on `{f['objective']}`, seed {f['seed']}: {len(f['evaluated'])} evaluated k-sets "
                f"(grey), the {len(f['members'])} of the Pareto front (red, step line), the result (star) and the "
                f"dense model (×, 0 in every term); axes: {terms[0]} and {terms[1]}, each relative to the dense "
                f"model{' (the first two of ' + str(len(terms)) + ' terms)' if len(terms) > 2 else ''}.*",
                "",
            ]
    out: list[tuple[str, list[str], list[list] | None]] = [
        (
            f"{head}: Pareto fronts of the multi-objective cells (terms relative to the dense model; the result "
            f"is the member with the lowest mix value)",
            ["objective", "searcher", "seed", "front size", "k-sets evaluated", "result", "result's terms"],
            rows,
        )
    ]
    if lines:
        out.append((f"{head}: Pareto front figures", lines, None))
    return out


def _ci(pair) -> str:
    return NA if pair is None else f"[{_cell(pair[0])}, {_cell(pair[1])}]"


def _diff(d) -> str:
    return NA if d is None else f"{d['diff']:+.4g} [{_cell(d['low'])}, {_cell(d['high'])}] p = {d['p']:.2g}"


def _findings_table(report: dict) -> list[tuple[str, list[str], list[list] | None]]:
    """The seed paper's findings, judged on this study (`study.findings`); none where `build` was
    given no per-item results to judge with."""
    if report.get("findings") is None:
        return []
    rows: list[list] = []
    for f in report["findings"]:
        rows.append([f["finding"], f["verdict"], ""])
        rows += [["", line["verdict"], f"{line['group']}: {line['evidence']}"] for line in f["groups"]]
    title = (
        f"Findings of the seed paper on this study (95 % intervals over items; α = {F.ALPHA}; "
        "verdicts: supports, contradicts, cannot tell)"
    )
    return [(title, ["finding", "verdict", "evidence"], rows)]


def _interval_tables(
    head: str, table: list[dict], objective: str, u: dict | None
) -> list[tuple[str, list[str], list[list] | None]]:
    """One results `table` again, each number with its 95 % interval, the paired difference of each
    model to the dense one, and the paired differences between searchers (none without `build`'s
    uncertainty)."""
    if u is None:
        return []
    rows = u["intervals"][objective]
    columns = [c for c in rows[0] if c not in ("searcher", "vs_dense")]
    return [
        (
            f"{head}: 95 % intervals of the `{objective}`-pruned models (bootstrap over items; {NA}: no "
            "per-item results) and their paired difference to the dense model (value [interval] p)",
            ["searcher", *columns, *(f"Δ{m} vs dense" for m in U.METRICS)],
            [
                [shown["searcher"], *(f"{_cell(shown.get(c))} {_ci(r[c])}" for c in columns)]
                + [_diff(r["vs_dense"][m]) if r["vs_dense"] else "" for m in U.METRICS]
                for shown, r in zip(table, rows)
            ],
        ),
        (
            f"{head}: searcher vs searcher under `{objective}` (paired bootstrap on the same items: a − b "
            "[interval] p)",
            ["a", "b", *(f"Δ{m}" for m in U.METRICS)],
            [[p["a"], p["b"], *(_diff(p[m]) for m in U.METRICS)] for p in u["pairs"][objective]],
        ),
    ]


def _noise_tables(head: str, g: dict) -> list[tuple[str, list[str], list[list] | None]]:
    """Intervals of the rank agreement and the spread across searchers against item noise."""
    u = g["uncertainty"]
    if u is None:
        return []
    ranks = [
        [o, _cell(a["spearman"]), _ci((r or {}).get("spearman")), _cell(a["kendall"]), _ci((r or {}).get("kendall"))]
        for o, a in g["rank_agreement"].items()
        for r in [u["ranks"].get(o)]
    ]
    noise = [
        [o, m]
        + (
            [NA] * 4
            if n is None
            else [_cell(n["var"]), _ci((n["var_low"], n["var_high"])), _cell(n["noise_var"]), f"{n['p']:.2g}"]
        )
        for o, ms in u["noise"].items()
        for m, n in ms.items()
    ]
    return [
        (
            f"{head}: rank agreement with 95 % intervals (paired bootstrap over items)",
            ["objective", "Spearman ρ", "interval", "Kendall τ", "interval"],
            ranks,
        ),
        (
            f"{head}: σ² across searchers against item noise (noise σ²: expected if all searchers were "
            "equally good; p: share of resamples whose noise-only σ² reaches the observed)",
            ["objective", "metric", "σ²", "interval", "noise σ²", "p"],
            noise,
        ),
        *_power_table(head, u["power"]),
    ]


def _power_table(head: str, p: dict | None) -> list[tuple[str, list[str], list[list] | None]]:
    """What accuracy difference the suite can detect (`uncertainty.detectability`)."""
    if p is None:
        return []
    items = ", ".join(f"{t} {n}" for t, n in p["items"].items())
    return [
        (
            f"{head}: what the suite can detect (paired differences of mean accuracy over the "
            f"{p['pairs']} pairs of distinct models among the dense and pruned ones; two-sided, "
            f"α = {1 - U.LEVEL:.2g}, normal approximation)",
            [
                "items per task",
                "median SE (points)",
                "SE range",
                f"power at {p['effect']:g} points",
                f"detectable with power {U.POWER:g}",
            ],
            [
                [
                    items,
                    f"{p['se']:.2f}",
                    f"{p['se_low']:.2f}–{p['se_high']:.2f}",
                    f"{p['power']:.0%}",
                    f"{p['detectable']:.1f} points",
                ]
            ],
        )
    ]


def to_markdown(report: dict, figures: dict) -> str:
    lines = [
        f"# Study `{report['study']}`",
        "",
        f"Grid: models {report['grid']['models']}, objectives {report['grid']['objectives']}, searchers "
        f"{report['grid']['searchers']}, baselines {report['grid']['baselines']}, k {report['grid']['k']}, "
        f"seeds {report['grid']['seeds']}.",
        f"Evaluation suite: {report['evaluation']}. Calibration: {report['calibration'] or 'prune defaults'}.",
    ]
    if report["missing"]:
        lines.append(f"**Not yet complete:** {len(report['missing'])} cells ({', '.join(report['missing'][:5])} ...).")
    for title, header, rows in _tables(report, figures):
        lines += ["", f"## {title}", ""]
        if rows is None:
            lines += header
            continue
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_html(report: dict, figures: dict) -> str:
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>Study {html.escape(report['study'])}</title>",
        "<style>body{font-family:sans-serif;max-width:80em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}</style>",
        f"<h1>Study {html.escape(report['study'])}</h1>",
    ]
    for title, header, rows in _tables(report, figures):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if rows is None:
            text = [h for h in header if not h.startswith(("```", "!["))]
            parts.append("<pre>" + html.escape("\n".join(text)) + "</pre>")
            parts += [
                f"<img src='{html.escape(f)}' alt='{html.escape(f)}'>"
                for key, f in figures.items()
                if f in "".join(header)
            ]
            continue
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r) + "</tr>" for r in rows]
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def to_csv(data: dict, heal: list[str]) -> str:
    """One flat row per cell (plus the dense models): the raw numbers behind every table, with the
    suite averages after each heal method in `heal` (`linear_acc_avg`, ...)."""
    tasks = list(dict.fromkeys(t for r in data["rows"] for t in r["metrics"]))
    healed = [f"{m}_{a}" for m in heal for a in ("acc_avg", "ppl_avg")]
    columns = [
        "model",
        "k",
        "objective",
        "searcher",
        "baseline",
        "seed",
        "removed",
        "value",
        "acc_avg",
        "ppl_avg",
        *tasks,
        *healed,
        "seconds",
        "evaluations",
        "block_forwards",
        "run",
    ]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for model, d in data["dense"].items():
        writer.writerow(
            [
                model,
                0,
                "",
                "dense",
                False,
                "",
                "",
                "",
                d["acc_avg"],
                d["ppl_avg"],
                *[d["metrics"].get(t) for t in tasks],
                *["" for _ in healed],
                "",
                "",
                "",
                "",
            ]
        )
    for r in data["rows"]:
        after = {f"{m}_{a}": v[a] for m, v in r.get("healed", {}).items() for a in ("acc_avg", "ppl_avg")}
        row = {**r, **r["metrics"], **after, "removed": " ".join(map(str, r["removed"]))}
        writer.writerow([row.get(c) for c in columns])
    return buf.getvalue()


def write_report(config, data: dict, fmt: str, out: Path) -> Path:
    """Write the report in `fmt` into folder `out` (figures beside it); returns the report's path."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r} (from --format); use {', '.join(FORMATS)}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {str(out)!r} (from --out): {exc.strerror}") from None
    report = build(config, data)
    figures = write_figures(report, out) if fmt in ("md", "html") else {}
    text = {
        "md": lambda: to_markdown(report, figures),
        "html": lambda: to_html(report, figures),
        "json": lambda: json.dumps({**report, "rows": data["rows"]}, indent=2, default=sorted),
        "csv": lambda: to_csv(data, config.heal),
    }[fmt]()
    path = out / f"report.{fmt}"
    path.write_text(text)
    return path
