"""Per-item results of one benchmark evaluation, stored beside the scores so analyses can resample.

A file holds `{"v": 1, "tasks": {task: results}}`, where a multiple-choice task's results are
`{"acc": [0|1, ...], "acc_norm": [0|1, ...]}` (one entry per item, in item order, lm-eval's
definitions: `core.evaluate.correct`) and a perplexity task's are `{"nll": [...], "tokens": [...]}`
(per window: the summed negative log-likelihood of its scored tokens and their count). The task's
stored accuracy is the mean of its list; its perplexity is `core.evaluate.perplexity_of(nll, tokens)`.

Files are written once, under `items/` of the run (or study) directory, named by the hash of their
content, so a second write of the same results is a no-op and no file is ever rewritten. The event
or evaluation line that owns a file names it relative to that directory; a name that leads outside
the directory is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import UserError
from .events import finite, loads
from .runs import write_json_atomic
from .typecheck import has_type

VERSION = 1
FOLDER = "items"
_SHAPES = {("acc", "acc_norm"): list[int], ("nll", "tokens"): list[float]}


def write_items(folder: Path, tasks: dict[str, dict[str, list]]) -> str:
    """Store `tasks` (see module doc) under `folder/items/`; returns the file's name relative to `folder`."""
    data = {"v": VERSION, "tasks": tasks}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    name = f"{FOLDER}/{hashlib.sha256(text.encode()).hexdigest()[:20]}.json"
    target = folder / FOLDER
    if target.is_symlink():
        raise UserError(f"{str(target)!r} is a symbolic link; per-item results are written only inside {str(folder)!r}")
    target.mkdir(exist_ok=True)
    if not (folder / name).is_file():
        write_json_atomic(folder / name, data, indent=None)
    return name


def resolve(folder: Path, name: str, source: str) -> Path:
    """`folder/name`, refused (UserError naming `source`) unless it lies inside `folder`."""
    path = (folder / name).resolve()
    if Path(name).is_absolute() or not path.is_relative_to(folder.resolve()):
        raise UserError(f"per-item file {name!r} (from {source}) lies outside {str(folder)!r}; refused")
    return path


def read_items(folder: Path, name: object, source: str) -> dict[str, dict[str, list]] | None:
    """The per-task results stored as `name` inside `folder`; None when `name` is None (an evaluation
    from before per-item files) or the file is gone. A malformed file is a UserError naming it."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise UserError(f"per-item file name {name!r} (from {source}) is not a file name")
    path = resolve(folder, name, source)
    if not path.is_file():
        return None
    try:
        data = loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UserError(f"{path}: corrupt per-item file (from {source})") from None
    tasks = data.get("tasks") if isinstance(data, dict) and data.get("v") == VERSION else None
    if not isinstance(tasks, dict) or not all(_valid(r) for r in tasks.values()) or not finite(tasks):
        raise UserError(f"{path}: not a depthprune per-item file (from {source})")
    return tasks


def copy_items(source_folder: Path, name: str | None, folder: Path, source: str) -> str | None:
    """The file `name` of `source_folder` stored in `folder` too (its name there); None without one."""
    tasks = read_items(source_folder, name, source)
    return None if tasks is None else write_items(folder, tasks)


def _valid(results) -> bool:
    if not isinstance(results, dict):
        return False
    hint = _SHAPES.get(tuple(sorted(results)))
    if hint is None or not all(has_type(v, hint) for v in results.values()):
        return False
    if hint == list[int] and not all(x in (0, 1) for v in results.values() for x in v):
        return False
    return len({len(v) for v in results.values()}) == 1 and len(next(iter(results.values()))) > 0
