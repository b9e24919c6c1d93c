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
    return {
        "run": run.id,
        "state": run.state,
        "model": c.get("model"),
        "objective": c["objective"]["objective"],
        "searcher": c.get("searcher"),
        "k": c.get("k"),
        "seed": c.get("seed"),
        "removed": result.get("removed"),
        "value": result.get("value"),
        "evaluations": result.get("evaluations", run.computed_candidates()),
        "seconds": result.get("seconds"),
    }


def latest_speed(run: Run):
    """The run's most recent `speed` event for its result's removal set (any removal set when the run
    has no result), or None."""
    from .events import SpeedMeasured

    removed = (run.result() or {}).get("removed")
    found = [
        e
        for e in run.events()
        if isinstance(e, SpeedMeasured) and (removed is None or sorted(e.removed) == sorted(removed))
    ]
    return found[-1] if found else None


def speed_summary(event) -> dict:
    """Pruned/dense ratios of a `speed` event at its smallest batch size: decode and prefill tokens/s
    (above 1 = faster), the ideal decode speed-up, and the parameter ratio; None values without one."""
    if event is None:
        return {"decode_x": None, "prefill_x": None, "ideal_decode_x": None, "params_x": None, "speed_batch": None}
    batch = str(min(int(b) for b in event.ratios["batch"]))
    r = event.ratios["batch"][batch]
    return {
        "decode_x": r["decode_tok_s"],
        "prefill_x": r["prefill_tok_s"],
        "ideal_decode_x": event.ideal["batch"][batch]["decode_speedup"],
        "params_x": event.ratios["params"],
        "speed_batch": int(batch),
    }


def compare_rows(runs: list[Run]) -> list[dict]:
    """One row per run: removed set, Jaccard overlap with the first run, objective value and
    evaluations with their deltas to the first run, and the measured speed-up (`speed_summary`)."""
    rows = [run_row(r) | speed_summary(latest_speed(r)) for r in runs]
    base = rows[0]
    out = []
    for row in rows:
        both = row["value"] is not None and base["value"] is not None
        out.append(
            {
                **row,
                "jaccard_vs_first": None
                if row["removed"] is None or base["removed"] is None
                else round(jaccard(row["removed"], base["removed"]), 4),
                "value_delta": row["value"] - base["value"] if both else None,
                "evaluations_delta": row["evaluations"] - base["evaluations"],
            }
        )
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
