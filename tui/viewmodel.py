"""What the Live screen shows about one run, folded from its events (plain Python, no Textual).

Definitions used throughout the UI:
* a *candidate* is one `candidate` event: a removal set scored by the objective (`done` counts
  them all, memo hits and early aborts included, and the final re-scoring of the result when it
  was not already scored; `memo_hits` and `aborted` count those kinds apart);
* an evaluation is *complete* unless it carries `aborted: true` (then its value is only a lower
  bound, never a score);
* *best so far*: the lowest complete value among removal sets of the run's size k — monotone
  (never rises). Before any complete k-set, the lowest complete value among the largest sets
  scored is shown as *partial* (it is not comparable to a k-set);
* *importance* of a block: one scale per run, chosen by the first source seen — the objective
  value with that block alone removed when single-block candidates come first (greedy, oneshot,
  ...), else the searcher's own score (`importance` event, with its label); lower = more removable;
* *phase*: what the run's process does now (`phase` events: loading, calibrating, signals,
  searching, benchmarking, ...); the search's `finished`/`stopped` does not end later phases;
* *front*: for candidates that carry terms (a mix objective), the Pareto front of the complete
  k-sets so far — those no other k-set's term vector dominates (`searchers.pareto.dominates`);
  for an nsga2 run, once finished, it equals the run's stored front;
* *heal loss curve*: the LoRA training loss by step of the latest heal, from its `healing` phase
  events while it trains (steps a resumed heal repeats are replaced), then its `healed` event's losses;
* *ETA*: of the current phase only — searching: mean seconds per non-cached candidate × candidates
  still planned; any other phase that counts its steps (benchmarking, healing): mean seconds per
  step done × steps left; None when unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.events import Benchmarked, Candidate, Event, Finished, Healed, Importance, Phase, Started, Stopped, Usage
from ..searchers.pareto import dominates

SINGLE = "single"  # importance scale: objective with the block alone removed
SEARCHER = "searcher"  # importance scale: the searcher's `importance` events


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
        return f"started ({event.resumed_evaluations} stored, {'unknown' if planned is None else planned} planned)"
    if isinstance(event, Importance):
        return f"importance ({event.label}) for {len(event.importance)} blocks"
    if isinstance(event, Finished):
        return f"search finished: removed {event.removed} -> {event.value:.6g}"
    if isinstance(event, Stopped):
        return f"stopped after {event.evaluations} evaluations"
    if isinstance(event, Benchmarked):
        metrics = ", ".join(
            f"{t} {n} {v:.4g}" for t, (n, v) in ((t, primary_metric(m)) for t, m in event.tasks.items())
        )
        return f"benchmarked {event.removed}: {metrics}"
    if isinstance(event, Phase):
        step = f" {event.done}/{event.total}" if event.total else ""
        return f"phase {event.phase}{step} {event.detail}".rstrip()
    if isinstance(event, Usage):
        return f"usage {event.device} {event.dtype} rss {event.rss_bytes / 2**20:.0f} MiB"
    return f"{event.kind}: " + ", ".join(f"{k}={v}" for k, v in summary_fields(event).items())


def summary_fields(event: Event) -> dict:
    """The short scalar fields of an event kind the UI has no own view for (exported, speed, ...)."""
    out = {}
    for name, value in vars(event).items():
        if name == "t" or (isinstance(value, (dict, list)) and len(str(value)) > 60):
            continue
        out[name] = value
    return out


class RunView:
    """The state of one run after the events folded so far."""

    def __init__(self, config: dict):
        self.config = config
        self.k: int = config.get("k") or 0
        self.objective: str = (config.get("objective") or {}).get("objective", "?")
        self.importance: dict[int, float] = {}
        self.importance_scale: str | None = None  # SINGLE | SEARCHER, fixed by the first source seen
        self.importance_label = ""
        self.configurations: dict[tuple[int, ...], Configuration] = {}
        self.best: Configuration | None = None  # best complete k-set
        self.partial: Configuration | None = None  # best complete set of the largest size below k
        self.best_curve: list[float] = []  # best k-set value after each candidate since the first k-set
        self.terms: dict[tuple[int, ...], tuple[float, ...]] = {}  # complete k-sets' term vectors, by term_names
        self.term_names: list[str] = []  # the terms of the first candidate that carried them
        self.front: list[tuple[int, ...]] = []  # the k-sets on the Pareto front so far (see the module docstring)
        self.current: tuple[int, ...] | None = None
        self.status = ""
        self.done = 0  # candidate events, memo hits and aborts included
        self.planned: int | None = None
        self.memo_hits = 0
        self.aborted = 0
        self.model_seconds = 0.0  # summed over non-cached candidates
        self.timed = 0
        self.outcome: str | None = None  # "stopped" | "finished" of the search; None while undecided
        self.result: tuple[int, ...] | None = None
        self.phase: Phase | None = None  # the latest phase event
        self.phase_started: float | None = None  # when the current phase began (its first event's time)
        self.usage: Usage | None = None
        self.peak_rss = 0
        self.peak_gpu = 0
        self.heals: dict[str, Healed] = {}  # the latest `healed` event per method
        self.heal_losses: dict[int, float] = {}  # step -> LoRA loss of the latest heal (see the module docstring)
        self.healing_done = True  # no heal since the last `healed` event (a new heal starts a new curve)
        self.others: list[Event] = []  # events of kinds without an own pane (exported, speed, ...)
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.log: list[str] = []  # one line per folded event, oldest first

    @property
    def n_blocks(self) -> int:
        return self.config.get("n_blocks") or 0

    def fold(self, events: list[Event]) -> bool:
        """Apply events in order; True when any changed the state."""
        for event in events:
            self._fold_one(event)
        return bool(events)

    def _fold_one(self, event: Event) -> None:
        if event.t:
            self.first_t = event.t if self.first_t is None else self.first_t
            self.last_t = event.t
        if not isinstance(event, Usage):
            self.log.append(describe(event))
        if isinstance(event, Started):
            self.planned = event.planned_candidates
            self.outcome = None
        elif isinstance(event, Phase):
            if self.phase is None or self.phase.phase != event.phase:
                self.phase_started = event.t
            self.phase = event
            if event.phase == "healing":
                self._healing(event)
        elif isinstance(event, Candidate):
            self._candidate(event)
        elif isinstance(event, Importance):
            if self.importance_scale in (None, SEARCHER):
                self.importance_scale, self.importance_label = SEARCHER, event.label
                self.importance = {int(b): float(v) for b, v in event.importance.items()}
        elif isinstance(event, Stopped):
            self.outcome = "stopped"
        elif isinstance(event, Finished):
            self.outcome = "finished"
            self.result = tuple(event.removed)
            self._configuration(self.result).value = event.value
        elif isinstance(event, Benchmarked):
            self._configuration(tuple(event.removed)).tasks.update(event.tasks)
        elif isinstance(event, Healed):
            self.heals[event.method] = event
            self.heal_losses = dict(enumerate(event.losses, 1)) if event.losses else self.heal_losses
            self.healing_done = True
        elif isinstance(event, Usage):
            self.usage = event
            self.peak_rss = max(self.peak_rss, event.peak_rss_bytes)
            self.peak_gpu = max(self.peak_gpu, event.gpu_peak_bytes or 0)
        else:
            self.others.append(event)

    def _healing(self, event: Phase) -> None:
        if self.healing_done:
            self.heal_losses, self.healing_done = {}, False
        if event.loss is not None and event.done is not None:
            self.heal_losses[event.done] = event.loss

    @property
    def heal_curve(self) -> list[float]:
        """The heal loss curve, in step order."""
        return [self.heal_losses[step] for step in sorted(self.heal_losses)]

    def _configuration(self, removed: tuple[int, ...]) -> Configuration:
        return self.configurations.setdefault(removed, Configuration(removed))

    def _candidate(self, event: Candidate) -> None:
        removed = tuple(event.removed)
        self.done += 1
        self.current, self.status = removed, event.status
        if event.cached:
            self.memo_hits += 1
        else:
            self.model_seconds += event.seconds
            self.timed += 1
        if event.aborted:
            self.aborted += 1
        else:
            config = self._configuration(removed)
            config.value = event.value
            if len(removed) == 1 and self.importance_scale in (None, SINGLE):
                self.importance_scale = SINGLE
                self.importance[removed[0]] = event.value
            if len(removed) == self.k:
                if self.best is None or event.value < self.best.value:
                    self.best = config
                if event.terms:
                    self._front_add(removed, event.terms)
            elif self.best is None:
                partial = self.partial
                if (
                    partial is None
                    or len(removed) > len(partial.removed)
                    or (len(removed) == len(partial.removed) and event.value < partial.value)
                ):
                    self.partial = config
        if self.best is not None:
            self.best_curve.append(self.best.value)

    def _front_add(self, removed: tuple[int, ...], terms: dict[str, float]) -> None:
        """Record a k-set's term vector and keep `front` the non-dominated k-sets so far."""
        self.term_names = self.term_names or list(terms)
        if removed in self.terms or set(terms) != set(self.term_names):
            return
        point = self.terms[removed] = tuple(terms[name] for name in self.term_names)
        if any(dominates(self.terms[m], point) for m in self.front):
            return
        self.front = [m for m in self.front if not dominates(point, self.terms[m])] + [removed]

    # -- derived -----------------------------------------------------------------------------

    @property
    def removed(self) -> tuple[int, ...]:
        """The blocks marked removed: the result once finished, else the best k-set so far, else the
        best partial set."""
        if self.result is not None:
            return self.result
        shown = self.best or self.partial
        return shown.removed if shown else ()

    @property
    def is_partial(self) -> bool:
        """The removed set shown is not a scored k-set (the search has not reached size k)."""
        return self.result is None and self.best is None

    def state(self, writer_alive: bool) -> str:
        """running while a process writes the run (in any phase, benchmarking after the search
        included); else finished | stopped from the events; else incomplete."""
        if writer_alive:
            return "running"
        return self.outcome or "incomplete"

    def phase_text(self, writer_alive: bool) -> str:
        """The current phase with its progress ("benchmarking 1/2 demo-mc"); "" once nothing runs."""
        if not writer_alive or self.phase is None:
            return ""
        p = self.phase
        if p.phase == "searching" and self.outcome is not None:
            return ""  # the process is past the search, between phases
        step = f" {p.done}/{p.total}" if p.total is not None and p.done is not None else ""
        detail = f" · {p.detail}" if p.detail else ""
        loss = f" · loss {p.loss:.4f}" if p.loss is not None else ""
        return f"{p.phase}{step}{detail}{loss}"

    def progress(self) -> tuple[int, int | None]:
        """(candidates done, planned): planned is None when unknown, or when it was exceeded (the
        searcher's count was not exact); a finished search is complete, done/done."""
        if self.outcome == "finished":
            return self.done, self.done
        if self.planned is not None and self.done > self.planned:
            return self.done, None
        return self.done, self.planned

    def eta_seconds(self, now: float, writer_alive: bool) -> float | None:
        """Seconds the current phase still needs (see the module docstring); None when unknown."""
        if not writer_alive or self.phase is None:
            return None
        p = self.phase
        if p.phase == "searching" and self.outcome is None:
            done, planned = self.progress()
            if planned is None or not self.timed:
                return None
            return self.model_seconds / self.timed * max(0, planned - done)
        if p.phase != "searching" and p.total and p.done and self.phase_started is not None:
            return (now - self.phase_started) / p.done * max(0, p.total - p.done)
        return None

    def elapsed(self, now: float, writer_alive: bool) -> float:
        """Seconds from the first event (the run's creation, before loading) to `now` while a process
        writes the run, else to the last event."""
        if self.first_t is None:
            return 0.0
        return (now if writer_alive else self.last_t) - self.first_t

    @property
    def dense(self) -> Configuration | None:
        """The dense model (no block removed) once benchmarked: the reference row of every table."""
        found = self.configurations.get(())
        return found if found is not None and found.tasks else None

    def top(self, n: int) -> list[Configuration]:
        """The dense model when benchmarked, then the scored configurations with the n lowest values
        among those of the shown set's size, plus every other benchmarked one, ordered by (size
        descending, value)."""
        shown = self.best or self.partial
        size = len(shown.removed) if shown else self.k
        scored = sorted(
            (c for c in self.configurations.values() if c.value is not None and len(c.removed) == size),
            key=lambda c: c.value,
        )[:n]
        extra = [c for c in self.configurations.values() if c.tasks and c.removed and c not in scored]
        ranked = sorted(
            scored + extra, key=lambda c: (-len(c.removed), c.value if c.value is not None else float("inf"))
        )
        return ([self.dense] if self.dense else []) + ranked

    def task_columns(self) -> list[tuple[str, str]]:
        """(task, the metric it is reported by) for every task benchmarked on some configuration,
        in order of first appearance."""
        seen: dict[str, str] = {}
        for c in self.configurations.values():
            for task, metrics in c.tasks.items():
                seen.setdefault(task, primary_metric(metrics)[0])
        return list(seen.items())
