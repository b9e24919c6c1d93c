"""Collect a study's results from disk: one row per cell (its run's result and suite scores) and the
dense model's scores, ready for `analysis`."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import UserError
from ..core.events import Candidate
from ..core.items import read_items
from ..core.runs import Run
from ..core.tables import latest_speed, speed_summary
from .analysis import summarize
from .config import StudyConfig, parse_study
from .runner import EvaluationStore, study_dir, suite_key
from .uncertainty import samples


def open_study(ref: str, runs_dir: Path) -> tuple[StudyConfig, Path]:
    """A study by name (inside `<runs_dir>/studies/`) or by its directory."""
    folder = Path(ref) if (Path(ref) / "study.json").is_file() else study_dir(runs_dir, ref)
    path = folder / "study.json"
    if not path.is_file():
        raise UserError(f"study {ref!r} (from STUDY) not found in {str(runs_dir / 'studies')!r}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path}: corrupt study.json (from STUDY)") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a depthprune study (from STUDY)")
    data = {k: v for k, v in data.items() if v is not None}
    data.pop("data_dir", None)  # already resolved when the study ran; it need not exist here
    return parse_study(data, str(path)), folder


def _healed(store: EvaluationStore, model: str, removed: list[int], methods: list[str]) -> dict:
    """{method: {"metrics", "acc_avg", "ppl_avg", "seconds"}} of the stored heals of `removed`."""
    out = {}
    for method in methods:
        row = store.healed.get((model, tuple(removed), method))
        if row is not None:
            metrics, acc_avg, ppl_avg = summarize(row["tasks"])
            out[method] = {
                "metrics": metrics,
                "acc_avg": acc_avg,
                "ppl_avg": ppl_avg,
                "seconds": row["heal"]["seconds"],
            }
    return out


def collect(config: StudyConfig, runs_dir: Path, with_items: bool = False) -> dict:
    """{"rows": [...], "dense": {model: {...}}, "n_blocks": {model: n}, "missing": [run names]}; a row's
    `healed` holds its removed set's suite scores after each of the study's heal methods (when stored);
    `with_items` adds "samples": {(model, removed) or, healed, (model, removed, method):
    `uncertainty.Samples`, None for an evaluation without per-item results}."""
    store = EvaluationStore(study_dir(runs_dir, config.name) / "evaluations.jsonl", suite_key(config))
    rows, missing, n_blocks = [], [], {}
    for cell in config.cells():
        name = cell.run_name(config.name)
        path = runs_dir / name
        run = Run.open(path) if (path / "run.json").is_file() else None
        result = run.result() if run else None
        scores = store.scores.get((cell.model, tuple(result["removed"]))) if result else None
        if result is None or scores is None:
            missing.append(name)
            continue
        metrics, acc_avg, ppl_avg = summarize(scores["tasks"])
        n_blocks[cell.model] = scores["n_blocks"]
        rows.append(
            {
                "model": cell.model,
                "k": cell.k,
                "objective": cell.objective,
                "searcher": cell.searcher,
                "baseline": cell.baseline,
                "seed": cell.seed,
                "run": name,
                "removed": result["removed"],
                "value": result["value"],
                "seconds": result["seconds"],
                "evaluations": result["evaluations"],
                "cached_from_memo": result.get("cached_from_memo", 0),
                "block_forwards": result.get("block_forwards"),
                "metrics": metrics,
                "acc_avg": acc_avg,
                "ppl_avg": ppl_avg,
                "decode_x": speed_summary(latest_speed(run) if run else None)["decode_x"],
                "healed": _healed(store, cell.model, result["removed"], config.heal),
            }
        )
        if run is not None and "front" in result:
            rows[-1]["front"] = front_of(run, result, cell.k)
    dense = {}
    for model in config.models:
        scores = store.scores.get((model, ()))
        if scores is not None:
            metrics, acc_avg, ppl_avg = summarize(scores["tasks"])
            dense[model] = {"metrics": metrics, "acc_avg": acc_avg, "ppl_avg": ppl_avg}
    data = {"rows": rows, "dense": dense, "n_blocks": n_blocks, "missing": missing}
    return data | {"samples": item_samples(store)} if with_items else data


def front_of(run: Run, result: dict, k: int) -> dict:
    """A multi-objective run's front for the report: its `members` and `dense` point (result.json)
    and the term vectors of every complete k-set it evaluated (`evaluated`, each set once)."""
    evaluated = {
        tuple(e.removed): e.terms
        for e in run.events()
        if isinstance(e, Candidate) and e.terms is not None and len(e.removed) == k
    }
    return {"members": result["front"], "dense": result.get("dense"), "evaluated": list(evaluated.values())}


def item_samples(store: EvaluationStore) -> dict:
    """Every stored evaluation's per-item results as `uncertainty.Samples` (None where it has none):
    the pruned and dense models keyed (model, removed), the healed ones (model, removed, method)."""
    rows: dict[tuple, dict] = {**store.scores, **store.healed}
    return {
        key: samples(row["tasks"], read_items(store.path.parent, row.get("items"), str(store.path)))
        for key, row in rows.items()
    }
