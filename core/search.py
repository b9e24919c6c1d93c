"""The search loop: a searcher proposes, the objective scores, every evaluation becomes an event.

All evaluations go through one memo keyed by removal set (the objective is fixed for a run), rebuilt
from `events.jsonl` on resume: a stored set is never evaluated again, and since searchers are
deterministic for a seed, a resumed search replays the same trajectory to the same result.
"""

from __future__ import annotations

import time
from typing import Callable

from .runs import Run

Listener = Callable[[dict], None]


def run_search(objective: Callable[[frozenset], float], searcher, run: Run, listener: Listener | None = None) -> dict:
    """Drive `searcher` against `objective`, appending events to `run`; returns and stores the result."""
    memo = run.memo()
    emit = listener or (lambda _event: None)
    evaluations = len(memo)
    earlier_seconds = sum(e["seconds"] for e in run.events() if e["type"] == "evaluation")
    started = time.perf_counter()
    emit(run.append({"type": "started", "resumed_evaluations": evaluations}))

    def value_of(removed: frozenset) -> float:
        nonlocal evaluations
        if removed not in memo:
            t = time.perf_counter()
            memo[removed] = float(objective(removed))
            evaluations += 1
            emit(run.append({"type": "evaluation", "n": evaluations, "removed": sorted(removed),
                             "value": memo[removed], "seconds": round(time.perf_counter() - t, 4),
                             "status": searcher.status}))
        return memo[removed]

    try:
        batch = searcher.ask()
        while batch:
            batch = searcher.tell({s: value_of(s) for s in batch})
        chosen = searcher.result
        value = value_of(chosen)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            run.append({"type": "stopped", "evaluations": evaluations})
        raise
    result = {
        "run": run.id,
        "removed": sorted(chosen),
        "value": value,
        "evaluations": evaluations,
        "seconds": round(time.perf_counter() - started + earlier_seconds, 3),  # earlier sessions: their evaluations
        "importance": {str(i): v for i, v in sorted((searcher.importance or {}).items())},
        "searcher_status": searcher.status,
    }
    if getattr(searcher, "states", None):
        result["lowest_energy_states"] = [{"energy": e, "removed": s} for e, s in searcher.states]
    run.write_result(result)
    emit(run.append({"type": "finished", "removed": result["removed"], "value": value,
                     "evaluations": evaluations}))
    return result
