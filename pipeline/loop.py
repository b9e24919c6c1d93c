"""The search loop: a searcher proposes, the objective scores, every candidate becomes an event.

All candidates go through one memo keyed by removal set (the objective is fixed for a run), rebuilt
from `events.jsonl` on resume: a stored set is never scored again, and since searchers are
deterministic for a seed, a resumed search replays the same trajectory to the same result. Counts
(`evaluations`, `aborted`, `cached_from_memo`) are rebuilt from the stored candidates, so they
survive any number of resumes. An objective made of terms (a mix) gives each candidate its term
vector too; it is stored with the candidate (and in the shared memo) and replayed to the searcher
with its value, so a multi-objective search resumes to the same front. A shared-memo value without
terms (written before they were recorded) is no hit for a multi-objective searcher.

The engine signals some searchers need besides objective values (one-shot proxies, CBO's gate
gradients, FBS's mutual information; `Searcher.signals_needed`) are computed here, inside the run's
accounting: their time is in `seconds` and their block applications in `block_forwards`.

Speed-ups, each switchable and none changing a result:
* prefix reuse — a batch is scored in trie order and the states entering the blocks where later
  candidates branch off are cached (`core/prefix.py`), so each candidate runs only its own suffix;
* early abort — when the searcher only needs the best `select` of a batch (greedy: 1, beam: its
  width), a candidate stops once the objective's lower bound exceeds the select-th best complete
  value; it is recorded with that bound, never as a value;
* a memo shared by runs on the same model and objective configuration (`pipeline/memo.py`).

Order of the two writes of a computed candidate: the run's own event first, then the shared memo.
A kill between them leaves the candidate in the run (resume replays it from there, as computed)
and missing from the shared memo (another run recomputes it: costs time, changes no count). The
other order would turn the candidate into a memo hit on resume and miscount the run.

A search stops cleanly between two candidates when `stop` is set (SIGTERM, the TUI's stop key): it
appends a `stopped` event and raises `SearchStopped`; `--resume` continues it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import UserError
from ..core.events import Candidate, Event, Finished, Importance, Phase, Started, Stopped
from ..core.prefix import PrefixCache, branch_points, trie_order
from ..core.runs import Run, fault_point
from ..core.usage import measure
from ..objectives.base import Objective
from ..searchers.base import RemovalSet, Searcher
from .memo import SharedMemo

Listener = Callable[[Event], None]
USAGE_EVERY_S = 5.0  # a `usage` event at most this often
SignalMakers = Mapping[str, Callable[[], Any]]


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


def run_search(
    objective: Objective,
    searcher: Searcher,
    run: Run,
    listener: Listener | None = None,
    speed: Speedups | None = None,
    shared: SharedMemo | None = None,
    stop: threading.Event | None = None,
    signals: SignalMakers | None = None,
) -> dict:
    """Drive `searcher` against `objective`, appending events to `run`; returns and stores the result.
    `signals` maps each engine signal a searcher may need to the function computing it."""
    speed = speed or Speedups(prefix_cache=False, early_abort=False, memo=False)
    emit = listener or (lambda _event: None)
    memo: dict[RemovalSet, float] = {}
    terms: dict[RemovalSet, dict[str, float]] = {}  # term vectors of the memo's sets that have them
    bounds: dict[RemovalSet, float] = {}
    stored = [e for e in run.events() if isinstance(e, Candidate)]
    for e in stored:
        (bounds if e.aborted else memo)[frozenset(e.removed)] = e.value
        if e.terms is not None:
            terms[frozenset(e.removed)] = e.terms
    earlier_seconds = sum(e.seconds for e in stored)
    counts = {
        "evaluations": sum(1 for e in stored if not e.cached),
        "aborted": sum(1 for e in stored if e.aborted),
        "cached": sum(1 for e in stored if e.cached),
    }
    n = objective.n_blocks
    if speed.prefix_cache:
        budget = (
            speed.cache_bytes if speed.cache_bytes is not None else default_cache_bytes(str(objective.engine.device))
        )
        objective.cache = PrefixCache(budget)
    engine = objective.engine
    start_forwards = (engine.block_forwards, engine.block_tokens)
    started = time.perf_counter()
    emit(
        run.append(
            Started(
                resumed_evaluations=counts["evaluations"],
                resumed_cached=counts["cached"],
                planned_candidates=searcher.planned_evaluations(),
            )
        )
    )

    needed = searcher.signals_needed()
    if needed:
        emit(run.append(Phase(phase="signals", detail=", ".join(needed))))
        makers = signals or {}
        searcher.provide({name: makers[name]() for name in needed})
    emit(run.append(Phase(phase="searching")))

    last_usage = [started, engine.block_tokens]

    def record(removed: RemovalSet, value: float, seconds: float, aborted: bool = False, cached: bool = False):
        emit(
            run.append(
                Candidate(
                    n=counts["evaluations"],
                    removed=sorted(removed),
                    value=value,
                    seconds=round(seconds, 4),
                    status=searcher.status,
                    aborted=aborted,
                    cached=cached,
                    terms=terms.get(removed),
                )
            )
        )
        now = time.perf_counter()
        if now - last_usage[0] >= USAGE_EVERY_S:  # tokens through one block per second, divided by N blocks
            rate = (engine.block_tokens - last_usage[1]) / max(1, n) / (now - last_usage[0])
            emit(run.append(measure(str(engine.device), str(engine.dtype).removeprefix("torch."), round(rate, 1))))
            last_usage[:] = [now, engine.block_tokens]

    def evaluate(removed: RemovalSet, cutoff: float | None = None, branches: frozenset = frozenset()) -> float:
        if removed in memo:
            return memo[removed]
        if stop is not None and stop.is_set():
            raise SearchStopped
        if (
            shared is not None
            and removed in shared.values
            and (removed in shared.terms or not searcher.multi_objective)
        ):
            memo[removed] = shared.values[removed]
            if removed in shared.terms:
                terms[removed] = shared.terms[removed]
            counts["cached"] += 1
            record(removed, memo[removed], 0.0, cached=True)
            return memo[removed]
        t = time.perf_counter()
        value, aborted, vector = objective.evaluate(removed, cutoff, branches)
        fault_point("evaluate")
        counts["evaluations"] += 1
        (bounds if aborted else memo)[removed] = value
        if vector is not None:
            terms[removed] = vector
        if aborted:
            counts["aborted"] += 1
        record(removed, value, time.perf_counter() - t, aborted=aborted)
        if shared is not None and not aborted:
            fault_point("memo")  # the run holds the candidate, the shared memo not yet
            try:
                shared.add(removed, value, terms.get(removed))
            except UserError as exc:  # e.g. a full disk: the run itself is intact and resumable
                raise UserError(f"{exc}; continue with: depthprune prune --resume {run.path}") from None
        return value

    def evaluate_batch(batch: list[RemovalSet]) -> dict[RemovalSet, float]:
        scores = {s: memo[s] for s in batch if s in memo}
        todo = [s for s in batch if s not in memo]
        if speed.prefix_cache and n:
            todo = trie_order(todo, n)
            cache_at = [frozenset(p) for p in branch_points(todo, n)]
        else:
            cache_at = [frozenset()] * len(todo)
        select = searcher.select if speed.early_abort else None
        for s, branches in zip(todo, cache_at):
            cutoff = None
            if select:
                complete = sorted(v for x, v in scores.items() if x in memo)
                cutoff = complete[select - 1] if len(complete) >= select else None
            if s in bounds and cutoff is not None and bounds[s] > cutoff:
                scores[s] = bounds[s]  # a stored bound still proves this candidate cannot be selected
                continue
            scores[s] = evaluate(s, cutoff, branches)
        return scores

    importance: dict[int, float] | None = None

    def report_importance() -> None:
        nonlocal importance
        if searcher.importance and searcher.importance != importance:
            importance = dict(searcher.importance)
            emit(
                run.append(
                    Importance(
                        importance={str(i): v for i, v in sorted(importance.items())}, label=searcher.importance_label
                    )
                )
            )

    try:
        batch = searcher.ask()
        report_importance()
        while batch:
            scores = evaluate_batch(batch)
            batch = searcher.tell(scores, {s: terms[s] for s in scores if s in terms})
            report_importance()
        chosen = searcher.result
        assert chosen is not None
        value = evaluate(chosen)
    except (KeyboardInterrupt, SearchStopped):
        emit(run.append(Stopped(evaluations=counts["evaluations"])))
        raise SearchStopped(run.id) from None
    result = {
        "run": run.id,
        "removed": sorted(chosen),
        "value": value,
        "evaluations": counts["evaluations"],
        "aborted": counts["aborted"],
        "cached_from_memo": counts["cached"],
        "seconds": round(time.perf_counter() - started + earlier_seconds, 3),  # earlier sessions: their candidates
        "block_forwards": engine.block_forwards - start_forwards[0],
        "block_tokens": engine.block_tokens - start_forwards[1],
        "prefix_cache": objective.cache.stats() if objective.cache is not None else None,
        "importance": {str(i): v for i, v in sorted((searcher.importance or {}).items())},
        "searcher_status": searcher.status,
    }
    if searcher.states:
        result["lowest_energy_states"] = [{"energy": e, "removed": s} for e, s in searcher.states]
    if searcher.front:
        dense = objective.dense_term_values() or {}
        result["front"] = searcher.front
        result["dense"] = {"terms": dict.fromkeys(dense, 0.0), "values": dense}  # the dense model: 0 in every term
    run.write_result(result)
    emit(
        run.append(
            Finished(
                removed=sorted(chosen),
                value=value,
                evaluations=counts["evaluations"],
                front=searcher.front or None,
            )
        )
    )
    return result
