"""Running a search from a configuration: model + objective + searcher + run directory.

Shared by `depthprune prune`, the TUI and studies. `start` creates a run and searches; `resume`
rebuilds everything from a run's `run.json` and continues from its events.
"""

from __future__ import annotations

import os
import platform
import shutil
import threading
import typing
import warnings
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

import torch

from ..core.calibration import overlapping_tasks
from ..core.errors import UserError
from ..core.evaluate import evaluate
from ..core.events import Benchmarked, Phase
from ..core.loading import LoadedModel, load_model
from ..core.runs import Run, check_writable
from ..core.scoring import halving_on_oom
from ..core.tasks import TASKS, get_task
from ..core.typecheck import has_type, type_name
from ..objectives import build_objective, objective_class
from ..objectives.base import Objective
from ..objectives.signals import SegmentMI, block_proxies, gate_gradients
from ..searchers import Space, searcher_class
from .loop import Listener, SignalMakers, Speedups, run_search
from .memo import SharedMemo

# (calibration source, samples, sequence length): the paper's settings on a GPU; on a CPU small
# enough that greedy removing 3 blocks of the demo model takes a few minutes.
GPU_CALIBRATION = {"ppl": ("c4", 64, 2048), "kl": ("c4", 64, 2048), "margin": ("commonsense", 128, 2048),
                   "acc": ("commonsense", 128, 2048)}
CPU_CALIBRATION = {"ppl": ("demo", 2, 256), "kl": ("demo", 2, 256), "margin": ("demo", 12, 512), "acc": ("demo", 12, 512)}
PACKAGES = ("depthprune", "torch", "transformers", "numpy", "scipy", "datasets")


@dataclass
class PruneConfig:
    """Everything that determines a search (stored in run.json)."""

    model: str
    objective: str
    searcher: str
    k: int
    seed: int = 0
    protect: list[int] = field(default_factory=list)  # as given: negative indices count from the end
    calib: str | None = None
    calib_samples: int | None = None
    calib_seq_len: int | None = None
    data_dir: str | None = None
    batch_size: int = 8
    options: dict = field(default_factory=dict)
    device: str | None = None
    trust_remote_code: bool = False
    revision: str | None = None  # pinned on resume: the revision the run started with
    speed: dict = field(default_factory=dict)  # Speedups switches: prefix_cache, early_abort, shared_context, memo, cache_bytes
    eval_tasks: list[str] = field(default_factory=list)  # benchmarks scored on the result after the search
    eval_limit: int | None = None
    eval_seq_len: int = 2048

    def check(self, source: str) -> None:
        """Every field holds its declared type and the counts are positive (a run.json or a study file
        may hold anything); a UserError naming the field, its value and `source` otherwise."""
        hints = typing.get_type_hints(PruneConfig)
        for f in fields(self):
            value = getattr(self, f.name)
            if not has_type(value, hints[f.name]):
                raise UserError(f"{f.name}={value!r} (from {source}) should be {type_name(hints[f.name])}")
            if f.name in _POSITIVE and value is not None and value < 1:
                raise UserError(f"{f.name}={value!r} (from {source}) must be at least 1")

    def speedups(self) -> Speedups:
        try:
            return Speedups(**self.speed)
        except TypeError as exc:
            raise UserError(f"bad speed settings {self.speed} ({exc})") from None

    def calibration(self, device: str) -> tuple[str, int, int]:
        table = GPU_CALIBRATION if device.startswith("cuda") else CPU_CALIBRATION
        source, samples, seq_len = table.get(self.objective, CPU_CALIBRATION["ppl"])
        return self.calib or source, self.calib_samples or samples, self.calib_seq_len or seq_len


_POSITIVE = ("batch_size", "calib_samples", "calib_seq_len", "eval_limit", "eval_seq_len")


def resolve_protected(protect: list[int], n_blocks: int) -> frozenset[int]:
    out = set()
    for i in protect:
        j = i + n_blocks if i < 0 else i
        if not 0 <= j < n_blocks:
            raise UserError(f"protected block {i} out of range (from --protect): the model has {n_blocks} blocks")
        if j in out:
            raise UserError(f"protected block {i} given twice (from --protect)")
        out.add(j)
    return frozenset(out)


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def validate(config: PruneConfig, source: str = "the search configuration") -> None:
    """Every check that needs no model: field types, searcher options, tasks, objective, speed-ups."""
    config.check(source)
    searcher_class(config.searcher).validate_options(config.options)
    for name in config.eval_tasks:
        get_task(name, "--eval-tasks")
    objective_class(config.objective)
    config.speedups()


def preliminary(config: PruneConfig) -> dict:
    """What run.json holds while the model loads (`prepare` completes it)."""
    return {"config": asdict(config), "model": config.model, "objective": {"objective": config.objective},
            "searcher": config.searcher, "k": config.k, "seed": config.seed, "versions": _versions(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "pid": os.getpid()}


def prepare(config: PruneConfig, lm: LoadedModel | None = None, phase: Callable[[str], None] = lambda _name: None):
    """(model, objective, searcher, provenance) for a configuration; validates before any heavy work.
    `phase(name)` is told when loading and calibrating begin."""
    validate(config)
    cls = searcher_class(config.searcher)
    phase("loading")
    lm = lm or load_model(config.model, device=config.device, trust_remote_code=config.trust_remote_code,
                          revision=config.revision)
    space = Space(lm.n_blocks, config.k, resolve_protected(config.protect, lm.n_blocks))
    data_dir = Path(config.data_dir) if config.data_dir else None
    source, samples, seq_len = config.calibration(lm.device)
    options = {"shared_context": config.speedups().shared_context} if objective_class(config.objective).multiple_choice else {}
    phase("calibrating")
    objective = halving_on_oom(lambda size: build_objective(
        config.objective, lm, calib=source, data_dir=data_dir, samples=samples, seq_len=seq_len, seed=config.seed,
        batch_size=size, **options), config.batch_size, "capturing the calibration batches")
    biased = overlapping_tasks(objective.describe()["calib"], list(TASKS), data_dir)
    if biased:
        warnings.warn(f"CALIBRATING ON EVALUATION DATA: {source!r} is the evaluation file of {', '.join(biased)}; "
                      f"scores on {', '.join(biased)} will be biased", stacklevel=2)
    searcher = cls(space, seed=config.seed, **config.options)
    provenance = preliminary(config) | {
        "model_id": lm.model_id,
        "revision": lm.revision,
        "n_blocks": lm.n_blocks,
        "protected": sorted(space.protected),
        "searcher_options": dict(searcher.options),
        "objective": objective.describe(),
        "calibration": {"source": source, "samples": samples, "seq_len": seq_len},
        "dtype": lm.dtype,
        "device": lm.device,
        "notes": lm.notes,
    }
    return lm, objective, searcher, provenance


def signal_makers(objective: Objective, lm: LoadedModel, seed: int) -> SignalMakers:
    """How to compute each engine signal a searcher may ask for (the loop calls only those needed)."""
    return {"proxy": lambda: block_proxies(objective),
            "gradients": lambda: gate_gradients(objective, lm.tokenizer.pad_token_id),
            "segment_mi": lambda: SegmentMI(objective, seed=seed)}


def record_benchmark(run: Run, lm: LoadedModel, removed, tasks: list[str], *, limit: int | None, seq_len: int,
                     data_dir: str | None, batch_size: int = 8, progress=None, listener: Listener | None = None) -> dict:
    """Score `removed` on benchmark `tasks` and append the scores to `run` as a `benchmarked` event;
    the phase and its progress are events too."""
    emit = listener or (lambda _event: None)
    finished: list[str] = []

    def step(label: str, done: int, total: int) -> None:
        if progress is not None:
            progress(label, done, total)
        if done >= total and label not in finished:  # one phase event per completed task
            finished.append(label)
            emit(run.append(Phase(phase="benchmarking", done=len(finished), total=len(tasks), detail=label)))

    emit(run.append(Phase(phase="benchmarking", done=0, total=len(tasks), detail=", ".join(tasks))))
    report = evaluate(lm, tasks, sorted(removed), limit=limit, seq_len=seq_len,
                      data_dir=Path(data_dir) if data_dir else None, batch_size=batch_size, progress=step)
    emit(run.append(Benchmarked(removed=report["removed"], tasks=report["tasks"], limit=limit, seq_len=seq_len,
                                seconds=report["seconds"])))
    return report


def benchmarked(run: Run, removed: list[int], suite: str | None = None) -> bool:
    """Whether `run` holds benchmark scores of `removed` (of the study suite `suite` when given)."""
    return any(isinstance(e, Benchmarked) and e.removed == sorted(removed) and (suite is None or e.suite == suite)
               for e in run.events())


def _search(config: PruneConfig, lm: LoadedModel, run: Run, objective, searcher, provenance, listener, stop):
    """Search (the caller holds the run's write lock), then score the result on `config.eval_tasks` (once)."""
    speed = config.speedups()
    shared = None
    if speed.memo:
        identity = {k: provenance[k] for k in ("model_id", "revision", "dtype", "objective")}
        shared = SharedMemo(run.path.parent, identity | {"device": provenance["device"].split(":")[0]})
    try:
        result = run.result() or run_search(objective, searcher, run, listener, speed, shared, stop,
                                            signal_makers(objective, lm, config.seed))
    except torch.OutOfMemoryError:
        raise UserError(f"out of GPU memory evaluating a candidate (from --batch-size {config.batch_size}); "
                        f"everything evaluated is stored: free GPU memory and continue with "
                        f"depthprune prune --resume {run.path}") from None
    if config.eval_tasks and not benchmarked(run, result["removed"]):
        record_benchmark(run, lm, result["removed"], config.eval_tasks, limit=config.eval_limit,
                         seq_len=config.eval_seq_len, data_dir=config.data_dir, batch_size=config.batch_size,
                         listener=listener)
    return result


def _phases(run: Run, listener: Listener | None) -> Callable[[str], None]:
    emit = listener or (lambda _event: None)
    return lambda name: emit(run.append(Phase(phase=name)))


def start(config: PruneConfig, runs_dir: Path, listener: Listener | None = None, lm: LoadedModel | None = None,
          stop: threading.Event | None = None, name: str | None = None):
    """Create a run for `config` (named `name` when given) and search; returns (run, result)."""
    check_writable(runs_dir, "--runs-dir")
    validate(config)
    run = Run.create(runs_dir, preliminary(config), name)
    with run.writing():
        try:
            lm, objective, searcher, provenance = prepare(config, lm, _phases(run, listener))
        except BaseException:  # nothing was searched: a run that never got past loading is not kept
            shutil.rmtree(run.path, ignore_errors=True)
            raise
        run.update_config(provenance)
        return run, _search(config, lm, run, objective, searcher, provenance, listener, stop)


def resume(ref: str, runs_dir: Path, listener: Listener | None = None, stop: threading.Event | None = None,
           lm: LoadedModel | None = None, trust_remote_code: bool = False):
    """Continue a run from its stored configuration and events (a finished run returns its result).
    Trust comes from this invocation only (`trust_remote_code`), never from the stored run.json."""
    run = Run.open(ref, runs_dir, source="--resume")
    stored = run.config.get("config")
    if not isinstance(stored, dict):
        raise UserError(f"{run.path / 'run.json'}: no search configuration to resume (from --resume)")
    try:
        config = PruneConfig(**stored)
    except TypeError as exc:
        raise UserError(f"{run.path / 'run.json'}: unreadable configuration ({exc}) (from --resume)") from None
    config.check(f"{run.path / 'run.json'}")
    config.trust_remote_code = trust_remote_code
    run.refuse_if_written()
    check_writable(run.path, "--resume")
    existing = run.result()
    if existing is not None and (not config.eval_tasks or benchmarked(run, existing["removed"])):
        return run, existing
    config.revision = run.config.get("revision")
    with run.writing():
        lm, objective, searcher, provenance = prepare(config, lm, _phases(run, listener))
        if "model_id" in run.config:  # else the first session ended while loading: nothing to compare
            for key in ("model_id", "revision", "n_blocks", "dtype", "objective"):
                if provenance[key] != run.config.get(key):
                    raise UserError(f"run {run.id} (from --resume) cannot continue here: its {key} was "
                                    f"{run.config.get(key)!r}, now {provenance[key]!r}; start a new run")
        run.update_config(provenance | {"started": run.config.get("started", provenance["started"])})
        return run, _search(config, lm, run, objective, searcher, provenance, listener, stop)
