"""The search loop: a searcher proposes, the objective scores, every evaluation becomes an event.

All evaluations go through one memo keyed by removal set (the objective is fixed for a run), rebuilt
from `events.jsonl` on resume: a stored set is never evaluated again, and since searchers are
deterministic for a seed, a resumed search replays the same trajectory to the same result.

Speed-ups, each switchable and none changing a result:
* prefix reuse — a batch is evaluated in trie order and the states entering the blocks where later
  candidates branch off are cached (`core/prefix.py`), so each candidate runs only its own suffix;
* early abort — when the searcher only needs the best `select` of a batch (greedy: 1, beam: its
  width), a candidate stops once the objective's lower bound exceeds the select-th best complete
  value; it is recorded with that bound, never as a value;
* a memo shared by runs on the same model and objective configuration (`runs/memo/*.jsonl`).

A search stops cleanly between two candidates when `stop` is set (SIGTERM, the TUI's stop key): it
appends a `stopped` event and raises `SearchStopped`; `--resume` continues it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .prefix import PrefixCache, branch_points, trie_order
from .runs import Run, append_line, complete_lines, fault_point

Listener = Callable[[dict], None]


class SearchStopped(Exception):
    """The search was asked to stop (or interrupted); everything evaluated is stored. Its argument is the run id."""


@dataclass
class Speedups:
    prefix_cache: bool = True
    early_abort: bool = True
    shared_context: bool = True  # used when the objective is built (multiple-choice packing)
    memo: bool = True
    cache_bytes: int | None = None  # prefix-cache budget; None: a quarter of free memory, at most 4 GiB on CPU


def default_cache_bytes(device: str) -> int:
    import torch

    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free // 4
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 8 << 30
    return min(available // 4, 4 << 30)


class SharedMemo:
    """Complete objective values shared by every run with the same model and objective configuration:
    an append-only JSON-lines file `<runs_dir>/memo/<key>.jsonl` (torn last lines ignored)."""

    def __init__(self, runs_dir: Path, identity: dict):
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
        self.path = runs_dir / "memo" / f"{key}.jsonl"
        self.values: dict[frozenset, float] = {}
        for line in complete_lines(self.path):
            try:
                row = json.loads(line)
                self.values[frozenset(row["removed"])] = float(row["value"])
            except (KeyError, TypeError, ValueError, RecursionError):
                continue  # a foreign or damaged line costs a re-evaluation, nothing else

    def add(self, removed: frozenset, value: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_line(self.path, json.dumps({"removed": sorted(removed), "value": value}))
        self.values[removed] = value


def run_search(objective, searcher, run: Run, listener: Listener | None = None,
               speed: Speedups | None = None, shared: SharedMemo | None = None,
               stop: threading.Event | None = None) -> dict:
    """Drive `searcher` against `objective`, appending events to `run`; returns and stores the result."""
    speed = speed or Speedups(prefix_cache=False, early_abort=False, memo=False)
    emit = listener or (lambda _event: None)
    memo: dict[frozenset, float] = {}
    bounds: dict[frozenset, float] = {}
    stored = [e for e in run.events() if e["type"] == "evaluation"]
    for e in stored:
        (bounds if e.get("aborted") else memo)[frozenset(e["removed"])] = e["value"]
    earlier_seconds = sum(e["seconds"] for e in stored)
    counts = {"evaluations": sum(1 for e in stored if not e.get("cached")),
              "aborted": sum(1 for e in stored if e.get("aborted")), "cached": 0}
    n = objective.n_blocks if hasattr(objective, "n_blocks") else 0
    if speed.prefix_cache and hasattr(objective, "cache"):
        budget = speed.cache_bytes if speed.cache_bytes is not None else default_cache_bytes(str(objective.engine.device))
        objective.cache = PrefixCache(budget)
    engine = getattr(objective, "engine", None)
    start_forwards = (engine.block_forwards, engine.block_tokens) if engine else (0, 0)
    started = time.perf_counter()
    emit(run.append({"type": "started", "resumed_evaluations": counts["evaluations"],
                     "planned_evaluations": searcher.planned_evaluations()}))

    def record(removed, value, seconds, aborted=False, cached=False):
        event = {"type": "evaluation", "n": counts["evaluations"], "removed": sorted(removed), "value": value,
                 "seconds": round(seconds, 4), "status": searcher.status}
        if aborted:
            event["aborted"] = True
        if cached:
            event["cached"] = True
        emit(run.append(event))

    def evaluate(removed: frozenset, cutoff=None, keep=frozenset()) -> float:
        if removed in memo:
            return memo[removed]
        if stop is not None and stop.is_set():
            raise SearchStopped
        if shared is not None and removed in shared.values:
            memo[removed] = shared.values[removed]
            counts["cached"] += 1
            record(removed, memo[removed], 0.0, cached=True)
            return memo[removed]
        t = time.perf_counter()
        if hasattr(objective, "evaluate"):
            value, aborted = objective.evaluate(removed, cutoff, keep)
        else:
            value, aborted = float(objective(removed)), False
        fault_point("evaluate")
        counts["evaluations"] += 1
        if aborted:
            counts["aborted"] += 1
            bounds[removed] = value
        else:
            memo[removed] = value
            if shared is not None:
                shared.add(removed, value)
        record(removed, value, time.perf_counter() - t, aborted=aborted)
        return value

    def evaluate_batch(batch: list) -> dict:
        scores = {s: memo[s] for s in batch if s in memo}
        todo = [s for s in batch if s not in memo]
        if speed.prefix_cache and n:
            todo = trie_order(todo, n)
            keep = [frozenset(p) for p in branch_points(todo, n)]
        else:
            keep = [frozenset()] * len(todo)
        select = getattr(searcher, "select", None) if speed.early_abort else None
        for s, k in zip(todo, keep):
            cutoff = None
            if select:
                complete = sorted(v for x, v in scores.items() if x in memo)
                cutoff = complete[select - 1] if len(complete) >= select else None
            if s in bounds and cutoff is not None and bounds[s] > cutoff:
                scores[s] = bounds[s]  # a stored bound still proves this candidate cannot be selected
                continue
            scores[s] = evaluate(s, cutoff, k)
        return scores

    importance = None

    def report_importance():
        nonlocal importance
        if searcher.importance and searcher.importance != importance:
            importance = dict(searcher.importance)
            emit(run.append({"type": "importance", "importance": {str(i): v for i, v in sorted(importance.items())}}))

    try:
        batch = searcher.ask()
        report_importance()
        while batch:
            batch = searcher.tell(evaluate_batch(batch))
            report_importance()
        chosen = searcher.result
        value = evaluate(chosen)
    except (KeyboardInterrupt, SearchStopped):
        emit(run.append({"type": "stopped", "evaluations": counts["evaluations"]}))
        raise SearchStopped(run.id) from None
    result = {
        "run": run.id,
        "removed": sorted(chosen),
        "value": value,
        "evaluations": counts["evaluations"],
        "aborted": counts["aborted"],
        "cached_from_memo": counts["cached"],
        "seconds": round(time.perf_counter() - started + earlier_seconds, 3),  # earlier sessions: their evaluations
        "block_forwards": (engine.block_forwards - start_forwards[0]) if engine else None,
        "block_tokens": (engine.block_tokens - start_forwards[1]) if engine else None,
        "prefix_cache": objective.cache.stats() if getattr(objective, "cache", None) else None,
        "importance": {str(i): v for i, v in sorted((searcher.importance or {}).items())},
        "searcher_status": searcher.status,
    }
    if getattr(searcher, "states", None):
        result["lowest_energy_states"] = [{"energy": e, "removed": s} for e, s in searcher.states]
    run.write_result(result)
    emit(run.append({"type": "finished", "removed": result["removed"], "value": value,
                     "evaluations": counts["evaluations"]}))
    return result
