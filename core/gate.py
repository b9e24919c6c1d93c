"""The quality gate: is a pruned model close enough to the dense one on held-out tasks?

Definitions, per gate task (scored by `core.evaluate.evaluate`, dense and pruned on the same items):
* perplexity increase % = (ppl_pruned / ppl_dense − 1) × 100, checked against `max_ppl_increase`;
* accuracy retained % = acc_pruned / acc_dense × 100 of the task's primary metric (lm-eval's `acc`
  or `acc_norm`), checked against `min_acc_retained` (a dense accuracy of 0 retains 100 %).
The gate passes when every check passes. Only the limits asked for are checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .errors import UserError
from .evaluate import Progress, evaluate
from .loading import LoadedModel
from .tasks import get_task

DEFAULT_TASKS = ("demo-text", "demo-mc")


def check_limits(max_ppl_increase: float | None, min_acc_retained: float | None, tasks: Sequence[str]) -> bool:
    """Whether a gate was asked for; a UserError for a limit without a task it can apply to."""
    if max_ppl_increase is not None and max_ppl_increase < 0:
        raise UserError(f"--max-ppl-increase {max_ppl_increase} must be at least 0 (a percentage)")
    if min_acc_retained is not None and not 0 <= min_acc_retained <= 100:
        raise UserError(f"--min-acc-retained {min_acc_retained} must be a percentage between 0 and 100")
    kinds = {get_task(t, "--gate-tasks").kind for t in tasks}
    if max_ppl_increase is not None and "ppl" not in kinds:
        raise UserError(f"--max-ppl-increase needs a perplexity task in --gate-tasks (got {','.join(tasks)})")
    if min_acc_retained is not None and "mc" not in kinds:
        raise UserError(f"--min-acc-retained needs a multiple-choice task in --gate-tasks (got {','.join(tasks)})")
    return max_ppl_increase is not None or min_acc_retained is not None


def quality_gate(
    lm: LoadedModel,
    removed: Sequence[int],
    *,
    tasks: Sequence[str] = DEFAULT_TASKS,
    max_ppl_increase: float | None = None,
    min_acc_retained: float | None = None,
    limit: int | None = None,
    seq_len: int = 512,
    data_dir: Path | None = None,
    progress: Progress | None = None,
) -> dict:
    """Dense and pruned held-out metrics and the verdict of every asked-for check (see module doc)."""
    check_limits(max_ppl_increase, min_acc_retained, tasks)
    dense, pruned = (
        evaluate(lm, list(tasks), r, limit=limit, seq_len=seq_len, data_dir=data_dir, progress=progress)["tasks"]
        for r in ((), sorted(removed))
    )
    checks = []
    for task in tasks:
        d, p = dense[task], pruned[task]
        if "ppl" in d and max_ppl_increase is not None:
            change = (p["ppl"] / d["ppl"] - 1.0) * 100.0
            checks.append(
                {
                    "task": task,
                    "metric": "ppl",
                    "dense": d["ppl"],
                    "pruned": p["ppl"],
                    "kind": "ppl_increase_pct",
                    "value": change,
                    "limit": max_ppl_increase,
                    "passed": change <= max_ppl_increase,
                }
            )
        elif "primary" in d and min_acc_retained is not None:
            m = d["primary"]
            kept = 100.0 if d[m] == 0 else p[m] / d[m] * 100.0
            checks.append(
                {
                    "task": task,
                    "metric": m,
                    "dense": d[m],
                    "pruned": p[m],
                    "kind": "acc_retained_pct",
                    "value": kept,
                    "limit": min_acc_retained,
                    "passed": kept >= min_acc_retained,
                }
            )
    return {
        "tasks": list(tasks),
        "limit": limit,
        "seq_len": seq_len,
        "removed": sorted(removed),
        "dense": dense,
        "pruned": pruned,
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
    }


def describe(gate: dict) -> str:
    """One line with every check's measured numbers, e.g.
    `demo-text ppl 30.4 -> 412 (+1255% vs --max-ppl-increase 20%): FAIL`."""
    parts = []
    for c in gate["checks"]:
        verdict = "ok" if c["passed"] else "FAIL"
        if c["kind"] == "ppl_increase_pct":
            parts.append(
                f"{c['task']} ppl {c['dense']:.4g} -> {c['pruned']:.4g} "
                f"({c['value']:+.1f}% vs --max-ppl-increase {c['limit']:g}%): {verdict}"
            )
        else:
            parts.append(
                f"{c['task']} {c['metric']} {c['dense']:.4f} -> {c['pruned']:.4f} "
                f"({c['value']:.1f}% retained vs --min-acc-retained {c['limit']:g}%): {verdict}"
            )
    return "; ".join(parts)
