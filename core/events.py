"""The events of a run: one typed record per kind, the only place an event's fields are defined.

Every writer builds one of these records and every reader (`core.runs`, the TUI, reports, studies)
gets them back from `parse_event`, which validates each field against its annotation and refuses
NaN and infinities, with one line naming the file and line.

On disk an event is one JSON object a line: `{"type": <kind>, "v": <schema>, "t": <unix time>, ...fields}`.
Schema 1 (before the rename) called a candidate `evaluation` and a benchmark result `evaluated`;
those lines still read, as `candidate` and `benchmarked`.

Vocabulary used everywhere:
* a *candidate* is a removal set scored by the run's calibration objective during the search;
* a *benchmark* result is held-out task scores (accuracy, perplexity) of one removal set;
* a *phase* is what the run's process is doing: see `PHASES`.
"""

from __future__ import annotations

import json
import math
import time
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from .errors import UserError
from .typecheck import has_type, type_name

SCHEMA = 2
LEGACY_KINDS = {"evaluation": "candidate", "evaluated": "benchmarked"}
LEGACY_FIELDS = {"started": {"planned_evaluations": "planned_candidates"}}

#: What a run's process does, in order (`Phase.phase`); a phase may be skipped.
PHASES = ("loading", "calibrating", "signals", "searching", "benchmarking", "exporting", "speed", "healing")


@dataclass(frozen=True, kw_only=True)
class Event:
    """Fields every event has: `t`, the Unix time it was written (set by `Run.append`)."""

    kind: ClassVar[str]
    t: float = 0.0

    def to_json(self) -> str:
        return json.dumps({"type": self.kind, "v": SCHEMA, **asdict(self)}, allow_nan=False)


@dataclass(frozen=True, kw_only=True)
class Started(Event):
    """A search session began. `planned_candidates`: how many candidates the searcher will score
    in all (the final re-scoring of the result included), None when that is not known in advance.
    `resumed_*`: what earlier sessions of this run had already recorded."""

    kind: ClassVar[str] = "started"
    resumed_evaluations: int = 0
    resumed_cached: int = 0
    planned_candidates: int | None = None


@dataclass(frozen=True, kw_only=True)
class Phase(Event):
    """The run's process entered `phase` (one of `PHASES`); `done`/`total` count its steps when known;
    `loss` is the training loss at step `done` of a phase that trains (healing with LoRA)."""

    kind: ClassVar[str] = "phase"
    phase: str
    done: int | None = None
    total: int | None = None
    detail: str = ""
    loss: float | None = None

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"unknown phase {self.phase!r}")


@dataclass(frozen=True, kw_only=True)
class Candidate(Event):
    """One removal set scored by the objective. `n`: computed evaluations so far, this one included.
    `aborted`: scoring stopped early, `value` is only a lower bound. `cached`: the value came from
    the memo shared with other runs, no model time was spent. `terms`: for an objective made of terms
    (a mix), each term's dense-normalised value {term: t} (`value` is their weighted sum); None for
    a single objective, an aborted candidate, and candidates stored before terms were recorded."""

    kind: ClassVar[str] = "candidate"
    n: int
    removed: list[int]
    value: float
    seconds: float
    status: str = ""
    aborted: bool = False
    cached: bool = False
    terms: dict[str, float] | None = None


@dataclass(frozen=True, kw_only=True)
class Importance(Event):
    """The searcher's per-block scores (block index as a string -> score; lower = more removable)."""

    kind: ClassVar[str] = "importance"
    importance: dict[str, float]
    label: str = "searcher score"


@dataclass(frozen=True, kw_only=True)
class Stopped(Event):
    """The search was stopped (signal, stop key, Ctrl-C); `--resume` continues it."""

    kind: ClassVar[str] = "stopped"
    evaluations: int


@dataclass(frozen=True, kw_only=True)
class Finished(Event):
    """The search ended with `removed` and its objective value (also in result.json). `front`: a
    multi-objective searcher's Pareto front, as result.json's `front` ({"removed", "terms", "value"}
    per member); None for the other searchers."""

    kind: ClassVar[str] = "finished"
    removed: list[int]
    value: float
    evaluations: int
    front: list[dict[str, Any]] | None = None


@dataclass(frozen=True, kw_only=True)
class Benchmarked(Event):
    """Held-out benchmark scores of `removed`: task -> metrics as `core.evaluate` reports them.
    `suite`: the study's evaluation-suite hash when a study appended it. `model`: how the scored
    model ran (dtype, device, device_map, revision). `harness`: set when lm-evaluation-harness computed
    the scores (`eval --harness lm-eval`): its version, task versions, n-shot, limit and configs.
    `items`: the file of per-item results behind the scores (`core.items`), relative to the run
    directory; None for scores recorded before such files (or by the harness)."""

    kind: ClassVar[str] = "benchmarked"
    removed: list[int]
    tasks: dict[str, dict]
    limit: int | None = None
    seq_len: int = 2048
    seconds: float = 0.0
    suite: str | None = None
    model: dict[str, Any] = field(default_factory=dict)
    harness: dict[str, Any] | None = None
    items: str | None = None


@dataclass(frozen=True, kw_only=True)
class Usage(Event):
    """The machine as the run's process sees it (`core.usage.measure`): resident memory now and its
    high-water mark; on CUDA, torch's allocated memory now and its peak; calibration tokens per
    second through the blocks since the phase began."""

    kind: ClassVar[str] = "usage"
    device: str
    dtype: str
    rss_bytes: int
    peak_rss_bytes: int
    gpu_bytes: int | None = None
    gpu_peak_bytes: int | None = None
    tokens_per_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class SpeedMeasured(Event):
    """Inference speed of the dense and the pruned (`removed`) model measured in one process
    (`depthprune speed`). `settings`: device, dtype, threads, prompt/gen lengths, batch sizes,
    repeats; `dense`/`pruned`: metric -> figures; `ratios`: metric -> pruned/dense; `ideal`:
    what the block count alone would give (N/(N-k) of the blocks' share)."""

    kind: ClassVar[str] = "speed"
    removed: list[int]
    settings: dict[str, Any]
    dense: dict[str, Any]
    pruned: dict[str, Any]
    ratios: dict[str, Any]
    ideal: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Exported(Event):
    """The pruned (or healed) model written to `out` in `format` (hf | gguf): file -> sha256, sizes
    on disk, and the quality gate's verdict (`gate`, None when no gate was asked; `forced` when a
    failed gate was overridden)."""

    kind: ClassVar[str] = "exported"
    removed: list[int]
    out: str
    format: str
    files: dict[str, str]
    bytes_before: int | None = None
    bytes_after: int | None = None
    gate: dict[str, Any] | None = None
    forced: bool = False


@dataclass(frozen=True, kw_only=True)
class Healed(Event):
    """`removed` recovered by `method` (linear | lora): calibration data hash, settings, held-out
    metrics before/after (task -> metrics), the training losses (lora), and where the checkpoint is."""

    kind: ClassVar[str] = "healed"
    method: str
    removed: list[int]
    data_hash: str
    settings: dict[str, Any]
    before: dict[str, dict] = field(default_factory=dict)
    after: dict[str, dict] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    out: str | None = None
    seconds: float = 0.0


KINDS: dict[str, type[Event]] = {}


def register(cls: type[Event]) -> type[Event]:
    """Add an event kind (a frozen, kw_only dataclass subclass of Event with a `kind`)."""
    if cls.kind in KINDS or cls.kind in LEGACY_KINDS:
        raise ValueError(f"event kind {cls.kind!r} registered twice")
    KINDS[cls.kind] = cls
    return cls


for _cls in (
    Started,
    Phase,
    Candidate,
    Importance,
    Stopped,
    Finished,
    Benchmarked,
    Usage,
    SpeedMeasured,
    Exported,
    Healed,
):
    register(_cls)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def loads(text: str | bytes) -> Any:
    """`json.loads` that refuses NaN and ±Infinity (which Python's json accepts by default)."""
    return json.loads(text, parse_constant=_refuse_constant)


def finite(value: Any) -> bool:
    """No float anywhere inside `value` is NaN or infinite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, list):
        return all(finite(v) for v in value)
    return True


def parse_event(line: str | bytes, where: str) -> Event:
    """The event of one stored line; a UserError naming `where` (file:line) for anything else."""
    try:
        data = loads(line)
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{where}: broken event line ({exc})") from None
    return event_from_dict(data, where)


def event_from_dict(data: Any, where: str) -> Event:
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise UserError(f"{where}: not a depthprune event")
    stored: str = data["type"]
    kind = LEGACY_KINDS.get(stored, stored)
    cls = KINDS.get(kind)
    if cls is None:
        raise UserError(f"{where}: unknown event type {data['type']!r}")
    if not isinstance(data.get("v", 1), int) or data.get("v", 1) > SCHEMA:
        raise UserError(f"{where}: event schema {data.get('v')!r} is newer than this depthprune reads ({SCHEMA})")
    known = {f.name: f for f in fields(cls)}
    renamed = LEGACY_FIELDS.get(kind, {})
    values = {}
    for name, value in data.items():
        name = renamed.get(name, name)
        if name in known:
            values[name] = value
    hints = _hints(cls)
    for name, f in known.items():
        if name not in values:
            if f.default is MISSING and f.default_factory is MISSING:
                raise UserError(f"{where}: {kind} event without {name!r}")
            continue
        if not has_type(values[name], hints[name]) or not finite(values[name]):
            raise UserError(f"{where}: {kind} event field {name}={values[name]!r} should be {type_name(hints[name])}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: bad {kind} event ({exc})") from None


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def stamp(event: Event) -> Event:
    """The event with `t` set to now (what `Run.append` writes)."""
    return replace(event, t=round(time.time(), 3))
