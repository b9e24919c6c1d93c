"""Any lm-evaluation-harness task on a pruned model: lm-eval's own `simple_evaluate`, its own numbers.

`run_lm_eval` removes the blocks from the loaded model in memory (core/surgery.remove_blocks: the
same model as one built without them, KV cache re-indexed, so generative tasks decode correctly),
wraps it in lm-eval's `HFLM` and runs `simple_evaluate` with lm-eval's task registry, plus the
task YAML folders of `include_path` (lm-eval's `--include_path`). `num_fewshot` and `limit` are
lm-eval's own (`limit`: the first N documents of each task). The result records lm-eval's version,
every task's version and n-shot, and its metrics as lm-eval names them (`acc,none`, `exact_match,strict-match`, …).

lm-eval is an optional dependency: `pip install 'depthprune[lmeval]'`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path

from .errors import UserError
from .loading import LoadedModel

INSTALL = "pip install 'depthprune[lmeval]'  (or: pip install lm_eval)"


def _finite(value):
    """lm-eval's numbers as JSON the run store accepts: NaN/inf (e.g. a stderr of one item) become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _with_primary(metrics: dict) -> dict:
    """lm-eval's metrics of one task, plus `primary`: the first metric it reports (`name,filter`,
    not a standard error, not `sample_len`) — what reports show for the task."""
    metrics = {k: v for k, v in metrics.items() if k != "alias"}
    numbers = [
        k
        for k, v in metrics.items()
        if "," in k and "_stderr" not in k and isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    return metrics | ({"primary": numbers[0]} if numbers else {})


def task_manager(include_path: Path | None):
    """lm-eval's task registry (its own tasks and those under `include_path`)."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise UserError(
            f"--harness lm-eval needs lm-evaluation-harness, which is not installed; run: {INSTALL}"
        ) from None
    if include_path is not None and not include_path.is_dir():
        raise UserError(f"task folder {str(include_path)!r} (from --include-path) not found")
    return TaskManager(include_path=str(include_path) if include_path else None)


def check_tasks(manager, tasks: list[str]) -> None:
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise UserError(
            f"unknown lm-eval task {unknown[0]!r} (from --tasks); see `lm_eval ls tasks`, or add its YAML "
            f"folder with --include-path"
        )


def run_lm_eval(
    lm: LoadedModel,
    removed: Iterable[int],
    tasks: list[str],
    *,
    include_path: Path | None = None,
    num_fewshot: int | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    log_samples: bool = False,
) -> dict:
    """lm-eval's scores of `lm` without `removed`; the model object is pruned in place."""
    import lm_eval
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from .surgery import remove_blocks

    manager = task_manager(include_path)
    check_tasks(manager, tasks)
    removed = sorted(set(removed))
    started = time.perf_counter()
    if removed:
        remove_blocks(lm.model, removed)
    model = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=batch_size)
    try:
        out = simple_evaluate(
            model=model,
            tasks=tasks,
            num_fewshot=num_fewshot,
            limit=limit,
            task_manager=manager,
            log_samples=log_samples,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
    except (FileNotFoundError, ConnectionError, ValueError) as exc:  # a task's dataset: offline, missing, bad config
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"lm-eval could not run {', '.join(tasks)} (from --tasks): {type(exc).__name__}: {first}"
        ) from None
    return {
        "removed": removed,
        "tasks": _finite({name: _with_primary(metrics) for name, metrics in out["results"].items()}),
        "harness": _finite(
            {
                "name": "lm-eval",
                "version": lm_eval.__version__,
                "task_versions": out.get("versions", {}),
                "n_shot": out.get("n-shot", {}),
                "num_fewshot": num_fewshot,
                "limit": limit,
                "include_path": str(include_path) if include_path else None,
                "seed": seed,
                "groups": sorted(out.get("groups", {})),
            }
        ),
        "samples": out.get("samples") if log_samples else None,
        "seconds": round(time.perf_counter() - started, 3),
    }
