"""The Setup form as data: its fields, their validation, and the `depthprune prune` command they make.

Plain Python (no Textual), so the rules are unit-tested directly. Validation reuses the engine's
own registries and parsers (searchers, objectives, tasks, tiny-model specs, protected indices), so
a value accepted here is one `depthprune prune` accepts too; what only loading the model can tell
(a hub id that does not exist, the demo model's block count) is reported by the child process.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.parsing import parse_indices, parse_list
from ..core.errors import UserError
from ..core.loading import resolve_spec
from ..core.tasks import TASKS, get_task
from ..core.tiny import parse_tiny
from ..objectives import OBJECTIVES
from ..pipeline.prune import resolve_protected
from ..searchers import SEARCHERS, Space


@dataclass(frozen=True)
class Field:
    """One form field: its name (also the `prune` option, `--name` with - for _), label, hint."""

    name: str
    label: str
    hint: str
    choices: tuple[str, ...] = ()  # completion suggestions


FIELDS = (
    Field("model", "Model", "demo | tiny:llama:8 | dir | hub", ("demo", "tiny:llama:8")),
    Field("objective", "Objective", " | ".join(OBJECTIVES), tuple(OBJECTIVES)),
    Field("searcher", "Searcher", " ".join(SEARCHERS), tuple(SEARCHERS)),
    Field("k", "Blocks to remove", "k ≥ 1"),
    Field("seed", "Seed", "integer"),
    Field("protect", "Protected blocks", "never removed, e.g. 0,-1"),
    Field("budget", "Budget", "random/anneal/exhaustive only"),
    Field("calib", "Calibration", "empty: the objective's default"),
    Field("eval_tasks", "Eval tasks", "benchmarks scored afterwards", tuple(TASKS)),
    Field("eval_seq_len", "Eval seq len", "eval window, tokens"),
    Field("data_dir", "Data dir", "empty: built-in data + hub"),
)

DEFAULTS = {"model": "demo", "objective": "ppl", "searcher": "greedy", "k": "3", "seed": "0", "protect": "",
            "budget": "", "calib": "", "eval_tasks": "demo-text,demo-mc", "eval_seq_len": "512", "data_dir": ""}


def _integer(text: str, minimum: int | None = None) -> int:
    if not re.fullmatch(r"-?\d+", text.strip()):
        raise UserError(f"{text!r} is not an integer")
    value = int(text)
    if minimum is not None and value < minimum:
        raise UserError(f"must be at least {minimum}")
    return value


def model_blocks(spec: str) -> int | None:
    """The block count of a model spec when it is known without loading: tiny models and local
    directories (their config.json); None otherwise. A UserError for a spec that cannot work."""
    if spec == "demo":
        return None
    if spec.startswith("tiny:"):
        return parse_tiny(spec)[1]
    if not spec.strip():
        raise UserError("a model is required")
    path, _gguf, _notes = resolve_spec(spec)
    config = Path(path) / "config.json"
    if config.is_file():
        blocks = json.loads(config.read_text()).get("num_hidden_layers")
        return blocks if isinstance(blocks, int) else None
    return None


def validate(values: dict[str, str]) -> dict[str, str]:
    """{field name: why its value is bad} for every bad field; {} when the form can start."""
    errors: dict[str, str] = {}

    def check(name, fn):
        try:
            return fn()
        except UserError as exc:
            errors[name] = str(exc)
            return None

    blocks = check("model", lambda: model_blocks(values["model"].strip()))
    check("objective", lambda: _registered("objective", values["objective"], OBJECTIVES))
    searcher = check("searcher", lambda: _registered("searcher", values["searcher"], SEARCHERS))
    k = check("k", lambda: _integer(values["k"], 1))
    check("seed", lambda: _integer(values["seed"]))
    protected = check("protect", lambda: parse_indices(values["protect"], "protected blocks"))
    if protected is not None and blocks is not None:
        protected = check("protect", lambda: resolve_protected(protected, blocks))
    if k is not None and blocks is not None and protected is not None:
        check("k", lambda: Space(blocks, k, frozenset(protected)))
    if values["budget"].strip():
        budget = check("budget", lambda: _integer(values["budget"], 1))
        if searcher is not None and budget is not None and "budget" not in searcher.defaults:
            errors["budget"] = f"searcher {searcher.name!r} takes no budget; leave empty"
    for task in parse_list(values["eval_tasks"]):
        check("eval_tasks", lambda task=task: get_task(task, "eval tasks"))
    check("eval_seq_len", lambda: _integer(values["eval_seq_len"], 2))
    data_dir = values["data_dir"].strip()
    if data_dir and not Path(data_dir).expanduser().is_dir():
        errors["data_dir"] = f"directory {data_dir!r} not found"
    return errors


def _registered(what: str, name: str, registry: dict):
    if name not in registry:
        raise UserError(f"unknown {what} {name!r}; available: {', '.join(registry)}")
    return registry[name]


def prune_argv(values: dict[str, str], runs_dir: Path) -> list[str]:
    """The command line of the child process that runs the search (values must be valid)."""
    argv = [sys.executable, "-m", "depthprune.cli", "prune", "--model", values["model"].strip(),
            "--objective", values["objective"], "--searcher", values["searcher"], "--k", values["k"].strip(),
            "--seed", values["seed"].strip(), "--runs-dir", str(runs_dir)]
    optional = {"protect": "--protect", "budget": "--budget", "calib": "--calib", "data_dir": "--data-dir"}
    for name, flag in optional.items():
        if values[name].strip():
            argv += [flag, values[name].strip()]
    if parse_list(values["eval_tasks"]):
        argv += ["--eval-tasks", ",".join(parse_list(values["eval_tasks"])), "--eval-seq-len", values["eval_seq_len"].strip()]
    return argv
