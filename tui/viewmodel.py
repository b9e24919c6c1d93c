"""What the Live screen shows about one run, folded from its events (plain Python, no Textual).

Definitions used throughout the UI:
* an evaluation is *complete* unless it carries `aborted: true` (then its value is only a lower
  bound, never a score); cached evaluations are complete and took no model time;
* *importance* of a block: the searcher's own score (`importance` event) once it has one, before
  that the objective value with that block alone removed; lower = more removable;
* *best so far*: the lowest complete value among the largest removal sets scored so far (sets of
  different sizes are not comparable, and every search works its way up to size k);
* *ETA*: mean seconds per non-cached evaluation × evaluations still planned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.events import Benchmarked, Candidate, Event, Finished, Importance, Phase, Started, Stopped


@dataclass
class Configuration:
    """A removal set with its objective value (None when it was only benchmarked) and task metrics."""

    removed: tuple[int, ...]
    value: float | None = None
    tasks: dict[str, dict] = field(default_factory=dict)


def primary_metric(metrics: dict) -> tuple[str, float]:
    """(name, value) a task is reported by: its `primary` accuracy for multiple choice, else ppl."""
    name = metrics.get("primary", "ppl")
    return name, metrics[name]


def describe(event: Event) -> str:
    """One log line for an event."""
    if isinstance(event, Candidate):
        flags = "".join(f" ({flag})" for flag in ("aborted", "cached") if getattr(event, flag))
        return f"#{event.n} removed {event.removed} -> {event.value:.6g}{flags}  {event.status}".rstrip()
    if isinstance(event, Started):
        planned = event.planned_candidates
        return f"started ({event.resumed_evaluations} stored, {'?' if planned is None else planned} planned)"
    if isinstance(event, Importance):
        return f"importance scores for {len(event.importance)} blocks"
    if isinstance(event, Finished):
        return f"finished: removed {event.removed} -> {event.value:.6g}"
    if isinstance(event, Stopped):
        return f"stopped after {event.evaluations} evaluations"
    if isinstance(event, Benchmarked):
        metrics = ", ".join(f"{t} {n} {v:.4g}" for t, (n, v) in
                            ((t, primary_metric(m)) for t, m in event.tasks.items()))
        return f"evaluated {event.removed}: {metrics}"
    if isinstance(event, Phase):
        step = f" {event.done}/{event.total}" if event.total else ""
        return f"{event.phase}{step} {event.detail}".rstrip()
    return f"{event.kind} event"


class RunView:
    """The state of one run after the events folded so far."""

    def __init__(self, config: dict):
        self.config = config
        self.n_blocks: int = config.get("n_blocks") or 0
        self.k: int = config.get("k") or 0
        self.objective: str = (config.get("objective") or {}).get("objective", "?")
        self.importance: dict[int, float] = {}
        self.searcher_importance = False  # True once an `importance` event replaced the single-block values
        self.configurations: dict[tuple[int, ...], Configuration] = {}
        self.best: Configuration | None = None
        self.best_curve: list[float] = []  # after each evaluation that had a best so far
        self.current: tuple[int, ...] | None = None
        self.status = ""
        self.done = 0  # evaluation events, cached and aborted included
        self.planned: int | None = None
        self.cached = 0
        self.aborted = 0
        self.model_seconds = 0.0  # summed over non-cached evaluations
        self.timed = 0
        self.outcome: str | None = None  # "stopped" | "finished" from the events; None while undecided
        self.result: tuple[int, ...] | None = None
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.log: list[str] = []  # one line per folded event, oldest first

    def fold(self, events: list[Event]) -> bool:
        """Apply events in order; True when any changed the state."""
        for event in events:
            self._fold_one(event)
        return bool(events)

    def _fold_one(self, event: Event) -> None:
        if event.t:
            self.first_t = event.t if self.first_t is None else self.first_t
            self.last_t = event.t
        self.log.append(describe(event))
        if isinstance(event, Started):
            self.planned = event.planned_candidates
            self.outcome = None
        elif isinstance(event, Candidate):
            self._evaluation(event)
        elif isinstance(event, Importance):
            self.importance = {int(b): float(v) for b, v in event.importance.items()}
            self.searcher_importance = True
        elif isinstance(event, Stopped):
            self.outcome = "stopped"
        elif isinstance(event, Finished):
            self.outcome = "finished"
            self.result = tuple(event.removed)
            self._configuration(self.result).value = event.value
        elif isinstance(event, Benchmarked):
            self._configuration(tuple(event.removed)).tasks.update(event.tasks)

    def _configuration(self, removed: tuple[int, ...]) -> Configuration:
        return self.configurations.setdefault(removed, Configuration(removed))

    def _evaluation(self, event: Candidate) -> None:
        removed = tuple(event.removed)
        self.done += 1
        self.current, self.status = removed, event.status
        if event.cached:
            self.cached += 1
        else:
            self.model_seconds += event.seconds
            self.timed += 1
        if event.aborted:
            self.aborted += 1
        else:
            value = event.value
            self._configuration(removed).value = value
            if len(removed) == 1 and not self.searcher_importance:
                self.importance[removed[0]] = value
            best = self.best
            if best is None or len(removed) > len(best.removed) or (len(removed) == len(best.removed) and value < best.value):
                self.best = self.configurations[removed]
        if self.best is not None:
            self.best_curve.append(self.best.value)

    # -- derived -----------------------------------------------------------------------------

    @property
    def removed(self) -> tuple[int, ...]:
        """The blocks marked removed: the result once finished, else the best set so far."""
        if self.result is not None:
            return self.result
        return self.best.removed if self.best else ()

    def state(self, writer_alive: bool) -> str:
        """finished | stopped from the events; otherwise running while a process writes the run, else incomplete."""
        if self.outcome is not None:
            return self.outcome
        return "running" if writer_alive else "incomplete"

    def eta_seconds(self) -> float | None:
        """Mean seconds per non-cached evaluation × evaluations still planned; None when unknown."""
        if self.planned is None or not self.timed or self.outcome is not None:
            return None
        return self.model_seconds / self.timed * max(0, self.planned - self.done)

    def elapsed(self, now: float) -> float:
        """Seconds from the first event to `now` while running, to the last event once it ended."""
        if self.first_t is None:
            return 0.0
        return (self.last_t if self.outcome is not None else now) - self.first_t

    def top(self, n: int) -> list[Configuration]:
        """The scored configurations with the n lowest values among those of the best set's size,
        plus every benchmarked one, ordered by (size descending, value)."""
        size = len(self.best.removed) if self.best else self.k
        scored = sorted((c for c in self.configurations.values() if c.value is not None and len(c.removed) == size),
                        key=lambda c: c.value)[:n]
        extra = [c for c in self.configurations.values() if c.tasks and c not in scored]
        return sorted(scored + extra, key=lambda c: (-len(c.removed), c.value if c.value is not None else float("inf")))

    def task_columns(self) -> list[tuple[str, str]]:
        """(task, the metric it is reported by) for every task benchmarked on some configuration,
        in order of first appearance."""
        seen: dict[str, str] = {}
        for c in self.configurations.values():
            for task, metrics in c.tasks.items():
                seen.setdefault(task, primary_metric(metrics)[0])
        return list(seen.items())
