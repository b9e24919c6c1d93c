"""A study: the grid models × objectives × searchers × k × seeds, read from TOML (or built from flags).

Schema (every key optional except `name`; unknown keys are errors naming the file and key):

    name = "smollm2-cpu"                 # study id: letters, digits, - and _
    models = ["demo"]
    objectives = ["ppl", "margin"]      # or mixes: "mix:ppl=0.5,margin=0.5" (each term's default calibration,
                                         # or its own [calibration."mix:ppl=0.5,margin=0.5"] table)
    searchers = ["oneshot", "greedy", "beam", "ga", "bo", "cbo", "fbs"]   # nsga2 too, with mix objectives only
    baselines = ["random", "tail"]       # run in every cell group: a random k-set per seed, the last k blocks
    k = [4, 7]
    seeds = [0]                          # seed-dependent searchers run every seed, the others seed 0 only
    protect = []                         # blocks never removed (negative counts from the end)
    heal = ["linear"]                    # heal every cell's removed set: linear | lora (default [] = none);
                                         # linear needs protect = [0, ...] and a family where fusion is exact
    [heal_options.lora]                  # per heal method its settings (default: depthprune heal's)
    steps = 50                           # lora: rank alpha targets steps lr batch_size distill seed;
                                         # linear: ridge skip_positions; both: calib_samples calib_seq_len
    data_dir = "../shared/data"          # relative paths are relative to the TOML file
    device = "cpu"                       # default: cuda when available
    batch_size = 8
    [calibration.ppl]                    # per objective: source, samples, seq_len (default: prune's)
    source = "demo"
    [options.ga]                         # per searcher: its hyperparameters
    population = 8
    [evaluation]                         # one suite for every pruned model, whatever its objective
    tasks = ["wikitext2", "arc_easy", "piqa"]
    limit = 100                          # first N items of each multiple-choice task
    windows = 16                         # first N windows of each perplexity task (default: limit)
    seq_len = 512
    [executor]
    kind = "local"                       # local | ray
    workers = 1                          # local: processes (default one per GPU, else 1)
    address = ""                         # ray: cluster address ("" starts a local one)
"""

from __future__ import annotations

import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.errors import UserError
from ..core.parsing import read_toml
from ..core.runs import slug
from ..core.tasks import TASKS
from ..heal import METHODS as HEAL_METHODS
from ..objectives import OBJECTIVES, is_mix, objective_class
from ..pipeline.prune import PruneConfig, searches_objective
from ..searchers import SEARCHERS

PAPER_SEARCHERS = ["oneshot", "greedy", "beam", "ga", "bo", "cbo", "fbs"]
BASELINE_OPTIONS = {"random": {"budget": 1}}  # the random-set baseline is one uniform draw, not a search
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Cell:
    """One search of the grid; its run directory is named `run_name` inside the runs directory."""

    model: str
    objective: str
    searcher: str
    k: int
    seed: int
    baseline: bool = False

    def run_name(self, study: str) -> str:
        return f"{study}--{slug(self.model)}-{slug(self.objective)}-{self.searcher}-k{self.k}-s{self.seed}"


@dataclass
class StudyConfig:
    name: str
    models: list[str] = field(default_factory=lambda: ["demo"])
    objectives: list[str] = field(default_factory=lambda: ["ppl", "margin"])
    searchers: list[str] = field(default_factory=lambda: list(PAPER_SEARCHERS))
    baselines: list[str] = field(default_factory=lambda: ["random", "tail"])
    k: list[int] = field(default_factory=lambda: [4, 7])
    seeds: list[int] = field(default_factory=lambda: [0])
    protect: list[int] = field(default_factory=list)
    heal: list[str] = field(default_factory=list)  # heal methods applied to every cell's removed set
    heal_options: dict = field(default_factory=dict)  # heal method -> {setting: value} (`HEAL_OPTIONS`)
    data_dir: str | None = None
    device: str | None = None
    dtype: str | None = None  # bfloat16 | float16 | float32; None: the device's default
    batch_size: int = 8
    calibration: dict = field(default_factory=dict)  # objective -> {source, samples, seq_len}
    options: dict = field(default_factory=dict)  # searcher -> {hyperparameter: value}
    evaluation: dict = field(
        default_factory=lambda: {"tasks": ["demo-text", "demo-mc"], "limit": None, "windows": None, "seq_len": 512}
    )
    executor: dict = field(default_factory=lambda: {"kind": "local", "workers": None, "address": ""})

    def cells(self) -> list[Cell]:
        """Every search of the grid, in a stable order (model, k, objective, searcher, seed)."""
        out = []
        for model in self.models:
            for k in self.k:
                for objective in self.objectives:
                    for searcher in self.searchers + self.baselines:
                        seeds = self.seeds if SEARCHERS[searcher].stochastic else self.seeds[:1]
                        out += [Cell(model, objective, searcher, k, s, searcher in self.baselines) for s in seeds]
        return out

    def prune_config(self, cell: Cell) -> PruneConfig:
        calib = self.calibration.get(cell.objective, {})
        options = {
            **(BASELINE_OPTIONS.get(cell.searcher, {}) if cell.baseline else {}),
            **self.options.get(cell.searcher, {}),
        }
        return PruneConfig(
            model=cell.model,
            objective=cell.objective,
            searcher=cell.searcher,
            k=cell.k,
            seed=cell.seed,
            protect=list(self.protect),
            calib=calib.get("source"),
            calib_samples=calib.get("samples"),
            calib_seq_len=calib.get("seq_len"),
            data_dir=self.data_dir,
            batch_size=self.batch_size,
            options=options,
            device=self.device,
            dtype=self.dtype,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _container(hint) -> type:
    """The JSON/TOML type a field annotation asks for at the top level: list[int] -> list, str | None -> str."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


#: The study file's top-level keys and their types: StudyConfig's fields, the one declaration.
_TOP = {name: _container(hint) for name, hint in typing.get_type_hints(StudyConfig).items()}
_CALIBRATION = {"source": str, "samples": int, "seq_len": int}
_EVALUATION = {"tasks": list, "limit": int, "windows": int, "seq_len": int}
_EXECUTOR = {"kind": str, "workers": int, "address": str}


def _typed(table: dict, schema: dict, where: str) -> dict:
    for key, value in table.items():
        if key not in schema:
            raise UserError(f"unknown key {key!r} in {where}; known: {', '.join(schema)}")
        want = schema[key]
        if value is None:  # JSON's null (a stored study.json): the default
            continue
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise UserError(f"{where}: {key} = {value!r} should be {'an integer' if want is int else want.__name__}")
    return table


_MINIMUMS = {"samples": 1, "limit": 1, "windows": 1, "seq_len": 2}
# Settings a study file may give each heal method ([heal_options.<method>]), with (type, lowest value, strict):
# `linear` maps to heal.pipeline.HealRequest's fields, `lora` to heal.lora.LoraSettings'.
HEAL_CALIBRATION: dict[str, tuple[type, float | None, bool]] = {
    "calib_samples": (int, 1, False),  # calibration windows (default: depthprune heal's 64)
    "calib_seq_len": (int, 2, False),  # tokens per window (default 256)
}
HEAL_OPTIONS: dict[str, dict[str, tuple[type, float | None, bool]]] = {
    "linear": {"ridge": (float, 0, False), "skip_positions": (int, 0, False), **HEAL_CALIBRATION},
    "lora": {
        **HEAL_CALIBRATION,
        "rank": (int, 1, False),
        "alpha": (float, 0, True),
        "targets": (str, None, False),
        "steps": (int, 1, False),
        "lr": (float, 0, True),
        "batch_size": (int, 1, False),
        "distill": (bool, None, False),
        "seed": (int, None, False),
    },
}


def _heal_options(method: str, table, where: str) -> dict:
    """`table` of [heal_options.`method`], checked against HEAL_OPTIONS (an int is a float too)."""
    if method not in HEAL_OPTIONS or not isinstance(table, dict):
        raise UserError(f"{where} is not a heal method table; methods: {', '.join(HEAL_OPTIONS)}")
    for key, value in table.items():
        if key not in HEAL_OPTIONS[method]:
            raise UserError(f"unknown key {key!r} in {where}; known: {', '.join(HEAL_OPTIONS[method])}")
        want, low, strict = HEAL_OPTIONS[method][key]
        ok = isinstance(value, (int, float) if want is float else want) and (
            want is bool or not isinstance(value, bool)
        )
        if not ok or (want is float and not math.isfinite(value)):
            kind = {int: "an integer", float: "a finite number"}.get(want, want.__name__)
            raise UserError(f"{where}: {key} = {value!r} should be {kind}")
        if low is not None and (value <= low if strict else value < low):
            raise UserError(f"{where}: {key} = {value!r} should be {'above' if strict else 'at least'} {low}")
    return {key: float(v) if HEAL_OPTIONS[method][key][0] is float else v for key, v in table.items()}


def _minimums(table: dict, minimums: dict, where: str) -> dict:
    for key, low in minimums.items():
        if table.get(key) is not None and table[key] < low:
            raise UserError(f"{where}: {key} = {table[key]!r} should be at least {low}")
    return table


def _objective(name, where: str) -> str:
    """`name` when it is one of OBJECTIVES or a valid mix of them; a UserError naming `where` otherwise."""
    if isinstance(name, str) and is_mix(name):
        try:
            objective_class(name)
        except UserError as exc:
            raise UserError(f"{where}: {str(exc).replace(' (from --objective)', '')}") from None
        return name
    return _names([name], list(OBJECTIVES), "objective", where)[0]


def _names(values: list, known, what: str, where: str) -> list:
    for v in values:
        if not isinstance(v, str) or v not in known:
            raise UserError(f"{where}: unknown {what} {v!r}; available: {', '.join(known)}")
    if len(set(values)) != len(values):
        raise UserError(f"{where}: {what} listed twice in {values}")
    return values


def _ints(values: list, what: str, where: str, minimum: int | None = None) -> list[int]:
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or (minimum is not None and v < minimum):
            bound = f" ≥ {minimum}" if minimum is not None else ""
            raise UserError(f"{where}: {what} {v!r} should be an integer{bound}")
    if len(set(values)) != len(values):
        raise UserError(f"{where}: {what} listed twice in {values}")
    return values


def parse_study(data: dict, source: str, base: Path | None = None) -> StudyConfig:
    """Validate a study table (from TOML or flags); `source` names where it came from in errors."""
    data = {key: value for key, value in _typed(data, _TOP, source).items() if value is not None}
    if "name" not in data:
        raise UserError(f'{source}: the study needs a name (name = "...")')
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", data["name"]):
        raise UserError(f"{source}: study name {data['name']!r} must be letters, digits, - and _ (≤ 64)")
    config = StudyConfig(name=data["name"])
    for key in ("models", "objectives", "searchers", "baselines"):
        if key in data and not data[key] and key != "baselines":
            raise UserError(f"{source}: {key} is empty")
    config.models = data.get("models", config.models)
    if not all(isinstance(m, str) and m for m in config.models):
        raise UserError(f"{source}: models must be non-empty strings, got {config.models!r}")
    config.objectives = [_objective(o, source) for o in data.get("objectives", config.objectives)]
    if len(set(config.objectives)) != len(config.objectives):
        raise UserError(f"{source}: objective listed twice in {config.objectives}")
    config.searchers = _names(data.get("searchers", config.searchers), list(SEARCHERS), "searcher", source)
    config.baselines = _names(data.get("baselines", config.baselines), list(SEARCHERS), "baseline", source)
    if set(config.searchers) & set(config.baselines):
        raise UserError(
            f"{source}: {sorted(set(config.searchers) & set(config.baselines))} listed both as searcher and baseline"
        )
    for searcher in config.searchers + config.baselines:
        for objective in config.objectives:
            if not searches_objective(searcher, objective):
                raise UserError(
                    f"{source}: searcher {searcher} needs mix objectives of at least two terms "
                    f'(as "mix:ppl=1,margin=1"); objective {objective!r} is not one'
                )
    config.k = _ints(data.get("k", config.k), "k", source, minimum=1)
    config.seeds = _ints(data.get("seeds", config.seeds), "seed", source, minimum=0)
    if not config.k or not config.seeds:
        raise UserError(f"{source}: k and seeds need at least one value")
    config.protect = _ints(data.get("protect", []), "protected block", source)
    config.heal = _names(data.get("heal", []), list(HEAL_METHODS), "heal method", source)
    for method, table in data.get("heal_options", {}).items():
        config.heal_options[method] = _heal_options(method, table, f"{source} [heal_options.{method}]")
    if "data_dir" in data:
        path = Path(data["data_dir"]).expanduser()
        path = path if path.is_absolute() or base is None else base / path
        if not path.is_dir():
            raise UserError(f"{source}: data_dir {data['data_dir']!r} is not a directory")
        config.data_dir = str(path.resolve())
    config.device = data.get("device")
    config.dtype = data.get("dtype")
    if config.dtype is not None:
        from ..core.loading import parse_dtype

        parse_dtype(config.dtype, f"{source} dtype")
    config.batch_size = data.get("batch_size", config.batch_size)
    if config.batch_size < 1:
        raise UserError(f"{source}: batch_size {config.batch_size} should be ≥ 1")
    for objective, table in data.get("calibration", {}).items():
        where = f"{source} [calibration.{objective}]"
        if not isinstance(table, dict) or not (is_mix(objective) or objective in OBJECTIVES):
            raise UserError(
                f"{source}: [calibration.{objective}] is not an objective table; objectives: {', '.join(OBJECTIVES)}"
            )
        _objective(objective, where)
        config.calibration[objective] = _minimums(_typed(table, _CALIBRATION, where), _MINIMUMS, where)
    for searcher, table in data.get("options", {}).items():
        if searcher not in SEARCHERS or not isinstance(table, dict):
            raise UserError(
                f"{source}: [options.{searcher}] is not a searcher table; searchers: {', '.join(SEARCHERS)}"
            )
        SEARCHERS[searcher].validate_options(table, f"{source} [options.{searcher}]")
        config.options[searcher] = table
    evaluation = {
        **config.evaluation,
        **_minimums(
            _typed(data.get("evaluation", {}), _EVALUATION, f"{source} [evaluation]"),
            _MINIMUMS,
            f"{source} [evaluation]",
        ),
    }
    _names(evaluation["tasks"], list(TASKS), "evaluation task", f"{source} [evaluation]")
    config.evaluation = evaluation
    executor = {**config.executor, **_typed(data.get("executor", {}), _EXECUTOR, f"{source} [executor]")}
    if executor["kind"] not in EXECUTORS:
        raise UserError(f"{source} [executor]: kind {executor['kind']!r} should be one of {', '.join(EXECUTORS)}")
    config.executor = executor
    return config


def load_study(path: Path, overrides: dict | None = None) -> StudyConfig:
    """A study from a TOML file, with `overrides` (tables merge key by key) on top; a UserError
    naming the file for anything unreadable or invalid."""
    data = read_toml(path, "study file", "--config")
    for key, value in (overrides or {}).items():
        data[key] = data.get(key, {}) | value if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return parse_study(data, str(path), path.parent)
