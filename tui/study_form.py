"""The New study form as data: a study TOML file, or the Setup fields crossed with lists of
objectives, searchers and baselines; its validation and the `depthprune study` command it makes.

Plain Python (no Textual). Definitions:
* *from a file*: the form's Study file field names a study TOML; it is validated by the engine's
  own `load_study` (the other fields are not used);
* *from Setup*: the study table is built from the Setup fields — model, k, seed, protected blocks,
  calibration (source, samples, length: for every objective), device, data dir, evaluation tasks,
  limit and length — and the form's comma-separated lists; Setup's searcher options go to Setup's
  searcher, its budget to every listed searcher that takes one. The table is validated by
  `parse_study` and written as `<runs_dir>/studies/<name>/study.toml` before the study starts, so
  `depthprune study --config` on that file reproduces or continues it.
Errors are one line per form field; they name the form's fields, the Setup field or the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..core.errors import UserError
from ..core.parsing import parse_indices, parse_list, parse_options
from ..study.config import StudyConfig, load_study, parse_study
from ..study.runner import study_dir
from .launch import cli
from .setup_form import LABELS, field_message

FIELDS = (  # (name, label): the form's inputs, in order
    ("file", "Study file"),
    ("name", "Name"),
    ("objectives", "Objectives"),
    ("searchers", "Searchers"),
    ("baselines", "Baselines"),
)
TOML_NAME = "study.toml"
SETUP = "Setup fields"  # where errors of the study table built from Setup are shown


def registries() -> dict[str, list[str]]:
    """The valid names of each list field (imports the engine's registries)."""
    from ..objectives import OBJECTIVES
    from ..searchers import SEARCHERS

    return {"objectives": list(OBJECTIVES), "searchers": list(SEARCHERS), "baselines": list(SEARCHERS)}


def _integer(setup: dict, name: str) -> int | None:
    text = setup.get(name, "").strip()
    if not text:
        return None
    if not re.fullmatch(r"-?[0-9]+", text):
        raise UserError(f"Setup's {LABELS[name]} {text!r} is not an integer")
    return int(text)


def study_table(values: dict[str, str], setup: dict[str, str]) -> dict:
    """The study table of the form's lists crossed with the Setup fields (see the module docstring);
    a UserError naming the Setup field for a value a study cannot take."""
    from ..objectives import split_objectives

    objectives = split_objectives(values["objectives"])
    searchers = parse_list(values["searchers"])
    table: dict = {
        "name": values["name"].strip(),
        "models": [setup["model"].strip()],
        "objectives": objectives,
        "searchers": searchers,
        "baselines": parse_list(values["baselines"]),
        "k": [_integer(setup, "k")],
        "seeds": [_integer(setup, "seed") or 0],
        "protect": parse_indices(setup.get("protect", ""), f"Setup's {LABELS['protect']}"),
    }
    if table["k"] == [None]:
        raise UserError(f"Setup's {LABELS['k']} is empty")
    for name in ("data_dir", "device"):
        if setup.get(name, "").strip():
            table[name] = setup[name].strip()
    if "data_dir" in table:
        table["data_dir"] = str(Path(table["data_dir"]).expanduser().resolve())
    calibration = {}
    source = setup.get("calib", "").strip()
    if source.endswith((".txt", ".md", ".jsonl")):
        source = str(Path(source).expanduser().resolve())
    for key, name in (("source", "calib"), ("samples", "calib_samples"), ("seq_len", "calib_seq_len")):
        value = source if key == "source" else _integer(setup, name)
        if value:
            calibration[key] = value
    if calibration:
        table["calibration"] = {objective: dict(calibration) for objective in objectives}
    options: dict[str, dict] = {}
    given = parse_options(parse_list(setup.get("options", "")))
    if given and setup.get("searcher") in searchers:
        options[setup["searcher"]] = given
    budget = _integer(setup, "budget")
    if budget is not None:
        from ..searchers import SEARCHERS

        for searcher in (s for s in searchers if s in SEARCHERS and "budget" in SEARCHERS[s].defaults):
            options.setdefault(searcher, {})["budget"] = budget
    if options:
        table["options"] = options
    tasks = parse_list(setup.get("eval_tasks", ""))
    if not tasks:
        raise UserError(f"Setup's {LABELS['eval_tasks']} is empty: a study scores every model on them")
    evaluation: dict = {"tasks": tasks}
    for key, name in (("limit", "eval_limit"), ("seq_len", "eval_seq_len")):
        if (value := _integer(setup, name)) is not None:
            evaluation[key] = value
    table["evaluation"] = evaluation
    return table


def check(values: dict[str, str], setup: dict[str, str], runs_dir: Path) -> dict[str, str]:
    """{form field: why it is bad}; {} when the study can start. A study file is checked alone;
    else the name and every list item, then the study table as a whole (under "setup")."""
    file = values["file"].strip()
    if file:
        try:
            load_study(Path(file).expanduser())
        except UserError as exc:
            return {"file": field_message(str(exc))}
        return {}
    errors: dict[str, str] = {}
    name = values["name"].strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", name):
        errors["name"] = f"{name!r}: letters, digits, - and _ (≤ 64), or give a Study file"
    elif (study_dir(runs_dir, name) / "study.json").is_file():
        errors["name"] = f"study {name!r} exists; to continue it give its file {study_file(runs_dir, name)}"
    from ..objectives import is_mix, split_objectives

    for field, known in registries().items():
        mixes = field == "objectives"  # a mix is checked with the whole table, below
        items = split_objectives(values[field]) if mixes else parse_list(values[field])
        unknown = [item for item in items if item not in known and not (mixes and is_mix(item))]
        if unknown:
            errors[field] = f"unknown {', '.join(map(repr, unknown))}; valid: {' '.join(known)}"
        elif len(set(items)) != len(items):
            errors[field] = "a name is listed twice"
        elif not items and field != "baselines":
            errors[field] = f"at least one of: {' '.join(known)}"
    if not errors:
        try:
            parse_study(study_table(values, setup), SETUP)
        except UserError as exc:
            errors[SETUP] = field_message(str(exc)).removeprefix(f"{SETUP}: ").removeprefix(f"{SETUP} ")
    return errors


def study_file(runs_dir: Path, name: str) -> Path:
    return study_dir(runs_dir, name) / TOML_NAME


def toml_value(value) -> str:
    """A TOML value for a str, bool, int, float or a list of them (JSON's string escapes are TOML's)."""
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, (str, bool, int, float)):
        return json.dumps(value)
    raise TypeError(f"no TOML value for {value!r}")


def to_toml(table: dict) -> str:
    """A study table as TOML: top-level keys first, then one `[section.name]` table per nested dict."""
    lines = [f"{key} = {toml_value(value)}" for key, value in table.items() if not isinstance(value, dict)]
    for key, value in table.items():
        if not isinstance(value, dict):
            continue
        flat = {k: v for k, v in value.items() if not isinstance(v, dict)}
        if flat:
            lines += ["", f"[{key}]", *(f"{k} = {toml_value(v)}" for k, v in flat.items())]
        for sub, inner in value.items():
            if isinstance(inner, dict):
                lines += ["", f"[{key}.{sub}]", *(f"{k} = {toml_value(v)}" for k, v in inner.items())]
    return "\n".join(lines) + "\n"


def prepare(values: dict[str, str], setup: dict[str, str], runs_dir: Path) -> tuple[StudyConfig, Path]:
    """(the study, its TOML file) for valid form values; from Setup, the file is written first."""
    file = values["file"].strip()
    if file:
        path = Path(file).expanduser()
        return load_study(path), path
    table = study_table(values, setup)
    path = study_file(runs_dir, table["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_toml(table))
    return load_study(path), path


def study_argv(path: Path, runs_dir: Path) -> list[str]:
    """`depthprune study --config FILE`: the same run as the command line's."""
    return cli("study", "--config", str(path), "--runs-dir", str(runs_dir))
