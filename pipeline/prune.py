"""Running a search from a configuration: model + objective + searcher + run directory.

Shared by `depthprune prune`, the TUI and studies. `start` creates a run and searches; `resume`
rebuilds everything from a run's `run.json` and continues from its events.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import threading
import typing
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

from ..core.calibration import overlapping_tasks
from ..core.errors import UserError
from ..core.evaluate import evaluate
from ..core.events import Benchmarked, Phase
from ..core.items import write_items
from ..core.loading import LoadedModel, check_device, load_model, parse_device_map, parse_dtype
from ..core.runs import Run, check_writable
from ..core.scoring import halving_on_oom
from ..core.tasks import TASKS, get_task
from ..core.typecheck import has_type, type_name
from ..objectives import build_mix, build_objective, is_mix, mix_terms, objective_class
from ..objectives.base import Objective
from ..objectives.signals import SegmentMI, block_proxies, gate_gradients
from ..searchers import Space, searcher_class
from .loop import Listener, SignalMakers, Speedups, run_search
from .memo import SharedMemo

# (calibration source, samples, sequence length): the paper's settings on a GPU; on a CPU small
# enough that greedy removing 3 blocks of the demo model takes a few minutes.
GPU_CALIBRATION = {
    "ppl": ("c4", 64, 2048),
    "kl": ("c4", 64, 2048),
    "margin": ("commonsense", 128, 2048),
    "acc": ("commonsense", 128, 2048),
}
CPU_CALIBRATION = {
    "ppl": ("demo", 2, 256),
    "kl": ("demo", 2, 256),
    "margin": ("demo", 12, 512),
    "acc": ("demo", 12, 512),
}
PACKAGES = ("depthprune", "torch", "transformers", "numpy", "scipy", "datasets")


FLAGS = "flags"  # `source` of a configuration typed on the command line: errors name each field's flag


@dataclass
class PruneConfig:
    """Everything that determines a search (stored in run.json). The defaults are the command line's
    (`depthprune prune` reads them from here). `seed` drives the searcher; `calib_seed` draws the
    calibration items (sources that sample, like `commonsense`), so runs with different search seeds
    score candidates on the same data."""

    model: str = "demo"
    objective: str = "ppl"
    searcher: str = "greedy"
    k: int = 3
    seed: int = 0
    calib_seed: int = 0
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
    dtype: str | None = None  # bfloat16 | float16 | float32; None: the device's default (bf16 on GPU)
    device_map: str | None = None  # "auto", or a JSON object / .json file of accelerate's module -> device map
    speed: dict = field(
        default_factory=dict
    )  # Speedups switches: prefix_cache, early_abort, shared_context, memo, cache_bytes
    eval_tasks: list[str] = field(default_factory=list)  # benchmarks scored on the result and the dense model
    eval_limit: int | None = None
    eval_seq_len: int | None = None  # None: 2048 or the model's maximum positions, whichever is smaller

    def check(self, source: str = FLAGS) -> None:
        """Every field holds its declared type and lies above its minimum (a run.json or a study file
        may hold anything); a UserError naming the field, its value and where it came from otherwise."""
        hints = typing.get_type_hints(PruneConfig)
        for f in fields(self):
            value = getattr(self, f.name)
            if not has_type(value, hints[f.name]):
                raise UserError(
                    f"{f.name}={value!r} (from {where(source, f.name)}) should be {type_name(hints[f.name])}"
                )
            low = _MINIMUM.get(f.name)
            if low is not None and value is not None and value < low:
                raise UserError(f"{f.name}={value!r} (from {where(source, f.name)}) must be at least {low}")

    def speedups(self, source: str = FLAGS) -> Speedups:
        hints = typing.get_type_hints(Speedups)
        for key, value in self.speed.items():
            place = "--cache-mem" if source == FLAGS and key == "cache_bytes" else f"{where(source, 'speed')}.{key}"
            if key not in hints:
                raise UserError(f"unknown speed setting {key!r} (from {place}); known: {', '.join(hints)}")
            if not has_type(value, hints[key]) or (key == "cache_bytes" and value is not None and value < 0):
                raise UserError(
                    f"speed setting {key}={value!r} (from {place}) should be {type_name(hints[key])}"
                    + (" ≥ 0" if key == "cache_bytes" else "")
                )
        return Speedups(**self.speed)

    def calibrations(self, device: str, source: str = FLAGS) -> dict[str, tuple[str, int, int]]:
        """(source, samples, seq_len) of each objective the search calibrates — the objective, or each
        term of a mix — the configured ones, else the defaults for the device. For a mix, `calib` is
        one source for every term or `term=source,...` pairs (a term without one takes its default)."""
        terms = mix_terms(self.objective)
        sources = dict.fromkeys(terms, self.calib)
        if self.calib and "=" in self.calib:
            if not is_mix(self.objective):
                raise UserError(
                    f"calib={self.calib!r} (from {where(source, 'calib')}): term=source pairs are for a mix objective"
                )
            sources = dict.fromkeys(terms)
            for part in self.calib.split(","):
                term, _sep, chosen = part.partition("=")
                if term.strip() not in sources:
                    raise UserError(
                        f"calib={self.calib!r} (from {where(source, 'calib')}): {term.strip()!r} is not a term of "
                        f"{self.objective!r}"
                    )
                sources[term.strip()] = chosen.strip() or None
        return {term: self._calibration(term, sources[term], device) for term in terms}

    def _calibration(self, objective: str, calib: str | None, device: str) -> tuple[str, int, int]:
        table = GPU_CALIBRATION if device.startswith("cuda") else CPU_CALIBRATION
        if calib and self.calib_samples and self.calib_seq_len:
            return calib, self.calib_samples, self.calib_seq_len
        if objective not in table:
            raise UserError(
                f"objective {objective!r} has no default calibration (a missing entry of "
                f"{'GPU' if table is GPU_CALIBRATION else 'CPU'}_CALIBRATION); give --calib, "
                f"--calib-samples and --calib-seq-len"
            )
        default, samples, seq_len = table[objective]
        return calib or default, self.calib_samples or samples, self.calib_seq_len or seq_len


_MINIMUM = {"k": 1, "batch_size": 1, "calib_samples": 1, "calib_seq_len": 2, "eval_limit": 1, "eval_seq_len": 2}


def where(source: str, name: str) -> str:
    """Where field `name` of a configuration came from: its flag (`--calib-seq-len`) for the command
    line, else `<source>.<name>` (e.g. `runs/x/run.json config.k`)."""
    if source == FLAGS:
        return "--option" if name == "options" else "--" + name.replace("_", "-")
    return f"{source}.{name}"


def max_positions(lm: LoadedModel) -> int | None:
    """The longest input the model's position embeddings allow (None when it declares no limit)."""
    config = lm.model.config
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def resolve_seq_len(lm: LoadedModel, given: int | None, default: int, source: str) -> int:
    """A length the user gave (`given`, checked against the model: `check_seq_len`), else `default`
    shortened to the model's maximum positions."""
    if given is not None:
        check_seq_len(lm, given, source)
        return given
    limit = max_positions(lm)
    return min(default, limit) if limit else default


def check_seq_len(lm: LoadedModel, seq_len: int, source: str) -> None:
    """A window/input length the model can take: 2 ≤ seq_len ≤ its maximum positions."""
    limit = max_positions(lm)
    if seq_len < 2 or (limit is not None and seq_len > limit):
        raise UserError(
            f"sequence length {seq_len} (from {source}) must lie between 2 and {lm.spec}'s {limit} positions"
            if limit
            else f"sequence length {seq_len} (from {source}) must be at least 2"
        )


def calibration_hash(objective: Objective) -> str:
    """sha256 (16 hex digits) of the calibration tokens the objective scores, row by row: equal for
    runs calibrated on the same data whatever their batch size."""
    digest = hashlib.sha256()
    for batch in objective.batches:
        mask = batch.token_mask()
        for row, keep in zip(batch.input_ids, mask):
            digest.update(row[keep.to(row.device)].cpu().numpy().astype("int64").tobytes())
            digest.update(b"|")
    return digest.hexdigest()[:16]


def resolve_protected(protect: list[int], n_blocks: int, source: str = "--protect") -> frozenset[int]:
    out = set()
    for i in protect:
        j = i + n_blocks if i < 0 else i
        if not 0 <= j < n_blocks:
            raise UserError(f"protected block {i} out of range (from {source}): the model has {n_blocks} blocks")
        if j in out:
            raise UserError(f"protected block {i} given twice (from {source})")
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


def validate(config: PruneConfig, source: str = FLAGS) -> None:
    """Every check that needs no model: field types, searcher options (in their declared domains),
    tasks, objective, device, speed-ups; errors name each value's true source (`source`)."""
    config.check(source)
    for name, registry in (("searcher", searcher_class), ("objective", objective_class)):
        try:
            registry(getattr(config, name))
        except UserError as exc:
            raise UserError(str(exc).replace(f"(from --{name})", f"(from {where(source, name)})")) from None
    searcher_class(config.searcher).validate_options(config.options, where(source, "options"))
    check_objective_for(config.searcher, config.objective, source)
    for name in config.eval_tasks:
        get_task(name, where(source, "eval_tasks"))
    config.calibrations("cpu", source)
    if config.device is not None:
        check_device(config.device, where(source, "device"))
    config.speedups(source)


def searches_objective(searcher: str, objective: str) -> bool:
    """Whether `searcher` can search `objective`: a multi-objective searcher compares term vectors,
    so it needs a mix of at least two terms; every other searcher takes any objective."""
    return not searcher_class(searcher).multi_objective or len(mix_terms(objective)) >= 2


def check_objective_for(searcher: str, objective: str, source: str = FLAGS) -> None:
    """A UserError naming the searcher and the objective given when `searches_objective` says no."""
    if not searches_objective(searcher, objective):
        raise UserError(
            f"searcher {searcher} (from {where(source, 'searcher')}) needs a mix objective of at least two terms "
            f"(--objective mix:ppl=1,margin=1); got {objective!r}"
        )


def preliminary(config: PruneConfig) -> dict:
    """What run.json holds while the model loads (`prepare` completes it)."""
    return {
        "config": asdict(config),
        "model": config.model,
        "objective": {"objective": config.objective},
        "searcher": config.searcher,
        "k": config.k,
        "seed": config.seed,
        "versions": _versions(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pid": os.getpid(),
    }


def prepare(
    config: PruneConfig,
    lm: LoadedModel | None = None,
    phase: Callable[[str], None] = lambda _name: None,
    source_of: str = FLAGS,
):
    """(model, objective, searcher, provenance) for a configuration; validates before any heavy work
    (`source_of`: where the configuration came from, named in errors). `phase(name)` is told when
    loading and calibrating begin."""
    validate(config, source_of)
    cls = searcher_class(config.searcher)
    phase("loading")
    lm = lm or load_model(
        config.model,
        device=config.device,
        trust_remote_code=config.trust_remote_code,
        revision=config.revision,
        dtype=parse_dtype(config.dtype, "dtype of the run"),
        device_map=parse_device_map(config.device_map, "device_map of the run"),
    )
    space = Space(
        lm.n_blocks,
        config.k,
        resolve_protected(config.protect, lm.n_blocks, where(source_of, "protect")),
        source=where(source_of, "k"),
    )
    data_dir = Path(config.data_dir) if config.data_dir else None
    calibrations = {
        name: (source, samples, resolve_seq_len(lm, config.calib_seq_len, seq_len, where(source_of, "calib_seq_len")))
        for name, (source, samples, seq_len) in config.calibrations(lm.device, source_of).items()
    }
    eval_seq_len = resolve_seq_len(lm, config.eval_seq_len, 2048, where(source_of, "eval_seq_len"))
    shared_context = config.speedups().shared_context

    def build(size: int) -> Objective:
        if is_mix(config.objective):
            return build_mix(
                config.objective,
                lm,
                calibrations,
                data_dir=data_dir,
                calib_seed=config.calib_seed,
                batch_size=size,
                shared_context=shared_context,
            )
        source, samples, seq_len = calibrations[config.objective]
        options: dict[str, typing.Any] = (
            {"shared_context": shared_context} if objective_class(config.objective).multiple_choice else {}
        )
        return build_objective(
            config.objective,
            lm,
            calib=source,
            data_dir=data_dir,
            samples=samples,
            seq_len=seq_len,
            calib_seed=config.calib_seed,
            batch_size=size,
            **options,
        )

    phase("calibrating")
    objective = halving_on_oom(build, config.batch_size, "capturing the calibration batches")
    described = objective.describe()
    for calibrated in described.get("terms", [described]):
        biased = overlapping_tasks(calibrated["calib"], list(TASKS), data_dir)
        if biased:
            warnings.warn(
                f"CALIBRATING ON EVALUATION DATA: {calibrated['calib']!r} is the evaluation file of "
                f"{', '.join(biased)}; scores on {', '.join(biased)} will be biased",
                stacklevel=2,
            )
    drawn = {
        name: {"source": source, "samples": samples, "seq_len": seq_len}
        for name, (source, samples, seq_len) in calibrations.items()
    }
    searcher = cls(space, seed=config.seed, **config.options)
    provenance = preliminary(config) | {
        "model_id": lm.model_id,
        "revision": lm.revision,
        "n_blocks": lm.n_blocks,
        "protected": sorted(space.protected),
        "searcher_options": dict(searcher.options),
        "objective": described,
        "calibration": {
            **drawn.get(config.objective, {"terms": drawn}),
            "seed": config.calib_seed,
            "hash": calibration_hash(objective),
        },
        "eval_seq_len": eval_seq_len,
        "dtype": lm.dtype,
        "device": lm.device,
        "device_map": lm.device_map,
        "notes": lm.notes,
    }
    return lm, objective, searcher, provenance


def signal_makers(objective: Objective, lm: LoadedModel, seed: int, options: dict) -> SignalMakers:
    """How to compute each engine signal a searcher may ask for (the loop calls only those needed);
    `options`: the searcher's, for the MI estimator's token count and rank (fbs)."""
    return {
        "proxy": lambda: block_proxies(objective),
        "gradients": lambda: gate_gradients(objective, lm.tokenizer.pad_token_id),
        "segment_mi": lambda: SegmentMI(
            objective, tokens=options.get("mi_tokens", 32768), rank=options.get("mi_rank", 256), seed=seed
        ),
    }


def record_benchmark(
    run: Run,
    lm: LoadedModel,
    removed,
    tasks: list[str],
    *,
    limit: int | None,
    seq_len: int,
    data_dir: str | None,
    batch_size: int = 8,
    progress=None,
    listener: Listener | None = None,
) -> dict:
    """Score `removed` on benchmark `tasks` and append the scores to `run` as a `benchmarked` event;
    the phase and its progress are events too."""
    emit = listener or (lambda _event: None)
    finished: list[str] = []
    whose = "" if removed else "dense · "  # the phase says when the reference is being scored

    def step(label: str, done: int, total: int) -> None:
        if progress is not None:
            progress(label, done, total)
        if done >= total and label not in finished:  # one phase event per completed task
            finished.append(label)
            emit(run.append(Phase(phase="benchmarking", done=len(finished), total=len(tasks), detail=whose + label)))

    emit(run.append(Phase(phase="benchmarking", done=0, total=len(tasks), detail=whose + ", ".join(tasks))))
    report = evaluate(
        lm,
        tasks,
        sorted(removed),
        limit=limit,
        seq_len=seq_len,
        data_dir=Path(data_dir) if data_dir else None,
        batch_size=batch_size,
        progress=step,
    )
    emit(
        run.append(
            Benchmarked(
                removed=report["removed"],
                tasks=report["tasks"],
                limit=limit,
                seq_len=seq_len,
                seconds=report["seconds"],
                model=model_settings(lm),
                items=write_items(run.path, report["items"]),
            )
        )
    )
    return report


def model_settings(lm: LoadedModel) -> dict:
    """How a model ran, recorded next to every score it produced."""
    return {"dtype": lm.dtype, "device": lm.device, "device_map": lm.device_map, "revision": lm.revision}


def benchmarked(run: Run, removed: list[int], suite: str | None = None) -> bool:
    """Whether `run` holds benchmark scores of `removed` (of the study suite `suite` when given)."""
    return any(
        isinstance(e, Benchmarked) and e.removed == sorted(removed) and (suite is None or e.suite == suite)
        for e in run.events()
    )


def _search(config: PruneConfig, lm: LoadedModel, run: Run, objective, searcher, provenance, listener, stop):
    """Search (the caller holds the run's write lock), then score the result on `config.eval_tasks` (once)."""
    speed = config.speedups()
    shared = None
    if speed.memo:
        identity = {k: provenance[k] for k in ("model_id", "revision", "dtype", "objective")}
        shared = SharedMemo(run.path.parent, identity | {"device": provenance["device"].split(":")[0]})
    try:
        result = run.result() or run_search(
            objective,
            searcher,
            run,
            listener,
            speed,
            shared,
            stop,
            signal_makers(objective, lm, config.seed, searcher.options),
        )
    except torch.OutOfMemoryError:
        raise UserError(
            f"out of GPU memory evaluating a candidate (from --batch-size {config.batch_size}); "
            f"everything evaluated is stored: free GPU memory and continue with "
            f"depthprune prune --resume {run.path}"
        ) from None
    for removed in unbenchmarked(config, run, result["removed"]):
        record_benchmark(
            run,
            lm,
            removed,
            config.eval_tasks,
            limit=config.eval_limit,
            seq_len=provenance["eval_seq_len"],
            data_dir=config.data_dir,
            batch_size=config.batch_size,
            listener=listener,
        )
    return result


def unbenchmarked(config: PruneConfig, run: Run, removed: list[int]) -> list[list[int]]:
    """The removal sets still to score on `config.eval_tasks`: the result, then the dense model (no block
    removed, the reference every pruned score is read against), each once per run."""
    if not config.eval_tasks:
        return []
    return [r for r in (sorted(removed), []) if not benchmarked(run, r)]


def _phases(run: Run, listener: Listener | None) -> Callable[[str], None]:
    emit = listener or (lambda _event: None)
    return lambda name: emit(run.append(Phase(phase=name)))


def start(
    config: PruneConfig,
    runs_dir: Path,
    listener: Listener | None = None,
    lm: LoadedModel | None = None,
    stop: threading.Event | None = None,
    name: str | None = None,
):
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


def resume(
    ref: str,
    runs_dir: Path,
    listener: Listener | None = None,
    stop: threading.Event | None = None,
    lm: LoadedModel | None = None,
    trust_remote_code: bool = False,
):
    """Continue a run from its stored configuration and events (a finished run returns its result).
    Trust comes from this invocation only (`trust_remote_code`), never from the stored run.json."""
    run = Run.open(ref, runs_dir, source="--resume")
    stored = run.config.get("config")
    if not isinstance(stored, dict):
        raise UserError(f"{run.path / 'run.json'}: no search configuration to resume (from --resume)")
    if "calib_seed" not in stored:  # runs from before the separate calibration seed drew with the search seed
        stored = stored | {"calib_seed": stored.get("seed", 0)}
    try:
        config = PruneConfig(**stored)
    except TypeError as exc:
        raise UserError(f"{run.path / 'run.json'}: unreadable configuration ({exc}) (from --resume)") from None
    source = f"{run.path / 'run.json'} config"
    config.trust_remote_code = trust_remote_code
    validate(config, source)  # everything that needs no model, before anything is written
    run.events()  # an unreadable event line refuses the run before the lock or a phase event is written
    run.refuse_if_written()
    run.refuse_if_linked()
    check_writable(run.path, "--resume")
    existing = run.result()
    if existing is not None and not unbenchmarked(config, run, existing["removed"]):
        return run, existing
    config.revision = run.config.get("revision")
    with run.writing():
        lm, objective, searcher, provenance = prepare(config, lm, _phases(run, listener), source)
        if "model_id" in run.config:  # else the first session ended while loading: nothing to compare
            for key in ("model_id", "revision", "n_blocks", "dtype", "objective"):
                if provenance[key] != run.config.get(key):
                    raise UserError(
                        f"run {run.id} (from --resume) cannot continue here: its {key} was "
                        f"{run.config.get(key)!r}, now {provenance[key]!r}; start a new run"
                    )
        run.update_config(provenance | {"started": run.config.get("started", provenance["started"])})
        return run, _search(config, lm, run, objective, searcher, provenance, listener, stop)
