"""Tables about runs (pure functions) and their Markdown / CSV / JSON renderings."""

from __future__ import annotations

import csv
import io
import json

from .runs import Run


def jaccard(a, b) -> float:
    """|A ∩ B| / |A ∪ B| (1.0 for two empty sets)."""
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def run_row(run: Run) -> dict:
    result = run.result() or {}
    c = run.config
    return {"run": run.id, "state": run.state, "model": c.get("model"), "objective": c["objective"]["objective"],
            "searcher": c.get("searcher"), "k": c.get("k"), "seed": c.get("seed"),
            "removed": result.get("removed"), "value": result.get("value"),
            "evaluations": result.get("evaluations", run.computed_candidates()), "seconds": result.get("seconds")}


def compare_rows(runs: list[Run]) -> list[dict]:
    """One row per run: removed set, Jaccard overlap with the first run, objective value and
    evaluations with their deltas to the first run."""
    rows = [run_row(r) for r in runs]
    base = rows[0]
    out = []
    for row in rows:
        both = row["value"] is not None and base["value"] is not None
        out.append({**row,
                    "jaccard_vs_first": None if row["removed"] is None or base["removed"] is None
                    else round(jaccard(row["removed"], base["removed"]), 4),
                    "value_delta": row["value"] - base["value"] if both else None,
                    "evaluations_delta": row["evaluations"] - base["evaluations"]})
    return out


def render(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if not rows:
        return "" if fmt == "csv" else "(no runs)"
    columns = list(rows[0])
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows)
        return buf.getvalue().rstrip("\n")
    if fmt == "md":
        def cell(v):
            return "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)

        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in rows]
        return "\n".join(lines)
    from .errors import UserError

    raise UserError(f"unknown format {fmt!r} (from --format); use md, csv or json")
