"""A study's report: every analysis per (model, k), rendered as Markdown (default), CSV, JSON or
HTML, with the removed-layer figures (PNG, matplotlib) written beside it."""

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

FORMATS = ("md", "csv", "json", "html")


def build(config, data: dict) -> dict:
    """All analyses of the collected `data` (see `results.collect`), grouped by (model, k)."""
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
                "healing": _healing(rs, config.heal),
            }
        )
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
        "missing": data["missing"],
    }


def _healing(rows: list[dict], methods: list[str]) -> dict | None:
    """Pruned vs healed for one (model, k): the per-cell table and, per method and suite average,
    whether healing changes which removed set is best."""
    if not methods:
        return None
    best = [A.best_after_healing(rows, m, metric) for m in methods for metric in A.HIGHER_IS_BETTER]
    return {"table": A.heal_table(rows, methods), "best": [b for b in best if b is not None]}


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
    return names


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
        out.append(
            (
                f"{head}: removed layers",
                ["```", *g["mask_text"].split("\n"), "```"]
                + ([f"![removed layers]({figures[(g['model'], g['k'])]})"] if (g["model"], g["k"]) in figures else []),
                None,
            )
        )
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
                f"<img src='{html.escape(f)}' alt='removed layers'>"
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
