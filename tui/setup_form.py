"""The Setup form as data: its fields, their validation, and the `depthprune prune` command they make.

Plain Python (no Textual), so the rules are unit-tested directly. Validation reuses the engine's
own registries and parsers (searchers, objectives, tasks, calibration sources, protected indices),
so a value accepted here is one `depthprune prune` accepts too. The block count for `k` and the
protected blocks comes from the model's config without loading weights (`model_info`). The
registries import torch, so `validate` and `hints` run in a worker, never before the first paint.
Errors name the form's fields (their labels), not command-line flags.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..core.parsing import parse_list


@dataclass(frozen=True)
class Field:
    """One form field: its name (also the `prune` option, `--name` with - for _), label, hint."""

    name: str
    label: str
    hint: str  # shown until `hints()` gives the registry's list


FIELDS = (
    Field("model", "Model", "demo | tiny:llama:8 | dir | .gguf | hub id"),
    Field("objective", "Objective", "ppl | kl | margin | acc | mix:ppl=0.5,margin=0.5"),
    Field("searcher", "Searcher", "greedy, beam, oneshot, ..."),
    Field("k", "Blocks to remove", "k ≥ 1, below the block count"),
    Field("seed", "Seed", "integer"),
    Field("protect", "Protected blocks", "never removed, e.g. 0,-1"),
    Field("budget", "Budget", "random/anneal/exhaustive only"),
    Field("options", "Searcher options", "key=value,... e.g. width=3"),
    Field("calib", "Calibration", "empty: the objective's default"),
    Field("calib_samples", "Calib samples", "empty: default (windows/questions)"),
    Field("calib_seq_len", "Calib seq len", "empty: default, tokens ≥ 8"),
    Field("device", "Device", "empty: cuda if available | cpu | cuda:N"),
    Field("eval_tasks", "Eval tasks", "benchmarks scored afterwards"),
    Field("eval_limit", "Eval limit", "empty: all items/windows"),
    Field("eval_seq_len", "Eval seq len", "eval window, tokens"),
    Field("data_dir", "Data dir", "empty: built-in data + hub"),
)
LABELS = {f.name: f.label for f in FIELDS}

DEFAULTS = {
    "model": "demo",
    "objective": "ppl",
    "searcher": "greedy",
    "k": "3",
    "seed": "0",
    "protect": "",
    "budget": "",
    "options": "",
    "calib": "",
    "calib_samples": "",
    "calib_seq_len": "",
    "device": "",
    "eval_tasks": "demo-text,demo-mc",
    "eval_limit": "",
    "eval_seq_len": "512",
    "data_dir": "",
}

TEXT_SOURCES = ("demo", "c4", "lambada")  # and .txt/.md files
FLAG = re.compile(r"\s*\(from --[\w-]+(?: [^)]*)?\)")


def field_message(text: str) -> str:
    """An engine error with its `(from --flag)` source removed: in Setup the field names the source."""
    return FLAG.sub("", text)


def hints() -> dict[str, str]:
    """Hints listing what the registries accept (imports the engine: call it in a worker)."""
    from ..core.calibration import COMMONSENSE_PARTS
    from ..core.tasks import TASKS
    from ..objectives import OBJECTIVES
    from ..searchers import SEARCHERS

    return {
        "objective": " | ".join(OBJECTIVES) + " | mix:ppl=0.5,margin=0.5",
        "searcher": " ".join(SEARCHERS),
        "calib": f"text: {' '.join(TEXT_SOURCES)} file.txt · questions: demo commonsense "
        f"{' '.join(COMMONSENSE_PARTS)} file.jsonl",
        "eval_tasks": " ".join(TASKS),
    }


def _integer(text: str, minimum: int | None = None) -> int:
    if not re.fullmatch(r"-?\d+", text.strip()):
        raise UserError(f"{text!r} is not an integer")
    value = int(text)
    if minimum is not None and value < minimum:
        raise UserError(f"must be at least {minimum}")
    return value


def check_calib(source: str, objective, data_dir: str) -> None:
    """`source` is a calibration source of `objective`'s kind (text or questions), without reading it."""
    from ..core.calibration import COMMONSENSE_PARTS

    needs_data = ("lambada", "commonsense", *COMMONSENSE_PARTS)
    if objective.multiple_choice:
        valid = source in ("demo", "commonsense", *COMMONSENSE_PARTS) or source.endswith(".jsonl")
        listed = f"demo, commonsense, {', '.join(COMMONSENSE_PARTS)} or a .jsonl file"
    else:
        valid = source in TEXT_SOURCES or source.endswith((".txt", ".md"))
        listed = f"{', '.join(TEXT_SOURCES)} or a .txt file"
    if not valid:
        kind = "question" if objective.multiple_choice else "text"
        raise UserError(f"unknown {kind} source {source!r} for {objective.name}; use {listed}")
    if source.endswith((".txt", ".md", ".jsonl")) and not Path(source).expanduser().is_file():
        raise UserError(f"file {source!r} not found")
    if source in needs_data and not data_dir:
        raise UserError(f"{source!r} reads the official files: set Data dir")


def calibrated_terms(objective: str, calib: str) -> list[tuple[str, str]]:
    """(objective, source) pairs the Calibration field names: the objective's own source, or for a mix
    one source for every term or `term=source` pairs (as `PruneConfig.calibrations` reads them)."""
    from ..objectives import mix_terms

    terms = mix_terms(objective)
    if "=" not in calib:
        return [(term, calib) for term in terms]
    pairs = [part.partition("=") for part in calib.split(",")]
    unknown = [term.strip() for term, _sep, _source in pairs if term.strip() not in terms]
    if unknown:
        raise UserError(f"{unknown[0]!r} is not a term of {objective!r}")
    return [(term.strip(), source.strip()) for term, _sep, source in pairs if source.strip()]


def validate(values: dict[str, str], blocks: int | None) -> dict[str, str]:
    """{field name: why its value is bad} for every bad field; {} when the form can start.
    `blocks`: the model's block count when known (`model_info.block_count`)."""
    from ..core.parsing import parse_indices, parse_options
    from ..core.tasks import get_task
    from ..objectives import OBJECTIVES, objective_class
    from ..pipeline.prune import check_objective_for, resolve_protected
    from ..searchers import SEARCHERS, Space

    errors: dict[str, str] = {}

    def check(name, fn):
        try:
            return fn()
        except UserError as exc:
            errors[name] = field_message(str(exc))
            return None

    objective = check("objective", lambda: objective_class(values["objective"].strip()))
    searcher = check("searcher", lambda: _registered("searcher", values["searcher"], SEARCHERS))
    if objective is not None and searcher is not None:
        check("searcher", lambda: check_objective_for(searcher.name, values["objective"].strip()))
    k = check("k", lambda: _integer(values["k"], 1))
    check("seed", lambda: _integer(values["seed"]))
    protected = check("protect", lambda: parse_indices(values["protect"], "protected blocks"))
    if protected is not None and blocks is not None:
        protected = check("protect", lambda: resolve_protected(protected, blocks))
    if k is not None and blocks is not None and protected is not None:
        check("k", lambda: Space(blocks, k, frozenset(protected)))
    options = check("options", lambda: parse_options([o for o in parse_list(values["options"])]))
    if values["budget"].strip():
        budget = check("budget", lambda: _integer(values["budget"], 1))
        if searcher is not None and budget is not None and "budget" not in searcher.defaults:
            errors["budget"] = f"searcher {searcher.name!r} takes no budget; leave empty"
    if searcher is not None and options:
        check("options", lambda: searcher.validate_options(options))
    data_dir = values["data_dir"].strip()
    if data_dir and not Path(data_dir).expanduser().is_dir():
        errors["data_dir"] = f"directory {data_dir!r} not found"
    if objective is not None and values["calib"].strip():
        terms = check("calib", lambda: calibrated_terms(values["objective"].strip(), values["calib"].strip()))
        for term, source in terms or []:
            check("calib", lambda term=term, source=source: check_calib(source, OBJECTIVES[term], data_dir))
    for name, minimum in (("calib_samples", 1), ("calib_seq_len", 8), ("eval_limit", 1)):
        if values[name].strip():
            check(name, lambda name=name, minimum=minimum: _integer(values[name], minimum))
    device = values["device"].strip()
    if device and not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        errors["device"] = f"unknown device {device!r}; use cpu, cuda or cuda:N"
    for task in parse_list(values["eval_tasks"]):
        check("eval_tasks", lambda task=task: get_task(task, "eval tasks"))
    check("eval_seq_len", lambda: _integer(values["eval_seq_len"], 2))
    return errors


def _registered(what: str, name: str, registry: dict):
    if name not in registry:
        raise UserError(f"unknown {what} {name!r}; available: {', '.join(registry)}")
    return registry[name]


def prune_argv(values: dict[str, str], runs_dir: Path) -> list[str]:
    """The command line of the child process that runs the search (values must be valid)."""
    argv = [
        sys.executable,
        "-m",
        "depthprune.cli",
        "prune",
        "--model",
        values["model"].strip(),
        "--objective",
        values["objective"],
        "--searcher",
        values["searcher"],
        "--k",
        values["k"].strip(),
        "--seed",
        values["seed"].strip(),
        "--runs-dir",
        str(runs_dir),
    ]
    optional = {
        "protect": "--protect",
        "budget": "--budget",
        "calib": "--calib",
        "data_dir": "--data-dir",
        "calib_samples": "--calib-samples",
        "calib_seq_len": "--calib-seq-len",
        "device": "--device",
    }
    for name, flag in optional.items():
        if values[name].strip():
            argv += [flag, values[name].strip()]
    for option in parse_list(values["options"]):
        argv += ["--option", option]
    if parse_list(values["eval_tasks"]):
        argv += [
            "--eval-tasks",
            ",".join(parse_list(values["eval_tasks"])),
            "--eval-seq-len",
            values["eval_seq_len"].strip(),
        ]
        if values["eval_limit"].strip():
            argv += ["--eval-limit", values["eval_limit"].strip()]
    return argv
