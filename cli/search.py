"""`depthprune prune`: search for the blocks to remove, as a resumable run."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Optional

import typer

from ..core.errors import UserError
from ..core.parsing import parse_indices, parse_list, parse_options
from .common import DataDirOpt, DeviceOpt, ModelOpt, TrustOpt, check_data_dir, app, signals_handled, stderr, stdout


def _search_listener(progress):
    """Candidate events -> one Rich status line on stderr (count, best so far, searcher phase)."""
    from ..core.events import Candidate, Phase

    best: list[tuple[float, list[int]]] = []

    def listen(event):
        if isinstance(event, Phase):
            step = f" {event.done}/{event.total}" if event.total else ""
            progress.update(f"{event.phase}{step} {event.detail}".rstrip())
        if not isinstance(event, Candidate) or event.aborted:
            return
        if not best or event.value < best[0][0]:
            best[:] = [(event.value, event.removed)]
        progress.update(f"eval {event.n} · {event.status or 'scoring'} · best {best[0][0]:.4f} "
                        f"removing {best[0][1]} · last {event.seconds:.2f}s")

    return listen


def _print_result(run, result: dict, objective: str, as_json: bool) -> None:
    from ..objectives import report

    summary = {"run": run.id, "path": str(run.path), "removed": result["removed"], "objective": objective,
               "value": result["value"], "report": report(objective, result["value"]),
               "evaluations": result["evaluations"], "aborted": result.get("aborted", 0),
               "cached_from_memo": result.get("cached_from_memo", 0), "block_forwards": result.get("block_forwards"),
               "seconds": result["seconds"]}
    if as_json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            stdout.print(f"[bold]{key:>12}[/bold]  {value}")


@app.command("prune")
def prune_cmd(
    model: str = ModelOpt,
    objective: str = typer.Option("ppl", "--objective", "-O", help="ppl | margin | acc | kl"),
    searcher: str = typer.Option("greedy", "--searcher", "-s",
                                 help="oneshot greedy beam ga bo cbo fbs random anneal window tail exhaustive"),
    k: int = typer.Option(3, "--k", "-k", help="number of blocks to remove"),
    seed: int = typer.Option(0, "--seed"),
    protect: str = typer.Option("", "--protect", help="blocks never removed, e.g. 0,-1 (negative counts from the end)"),
    calib: Optional[str] = typer.Option(None, "--calib", help="demo | c4 | lambada | commonsense | <task>-train | file.txt | file.jsonl"),
    calib_samples: Optional[int] = typer.Option(None, "--calib-samples", min=1, help="windows (ppl, kl) or questions (margin, acc)"),
    calib_seq_len: Optional[int] = typer.Option(None, "--calib-seq-len", min=8),
    scorer: Optional[str] = typer.Option(None, "--scorer", help="oneshot only: objective | bi | angular"),
    budget: Optional[int] = typer.Option(None, "--budget", min=1, help="evaluation budget (random, anneal, exhaustive)"),
    option: list[str] = typer.Option([], "--option", help="searcher hyperparameter key=value (repeatable)"),
    data_dir: Optional[Path] = DataDirOpt,
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir"),
    resume: Optional[str] = typer.Option(None, "--resume", help="continue this run (id or directory)"),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    no_prefix_cache: bool = typer.Option(False, "--no-prefix-cache", help="run every candidate from block 0"),
    no_early_abort: bool = typer.Option(False, "--no-early-abort", help="always score candidates completely"),
    no_shared_context: bool = typer.Option(False, "--no-shared-context", help="score each choice as its own sequence"),
    no_memo: bool = typer.Option(False, "--no-memo", help="ignore values stored by other runs"),
    cache_mem: Optional[float] = typer.Option(None, "--cache-mem", min=0.0, help="prefix-cache budget in GiB"),
    eval_tasks: str = typer.Option("", "--eval-tasks", help="after the search, score the result on these benchmarks"),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit", min=1, help="first N items / windows per eval task"),
    eval_seq_len: int = typer.Option(2048, "--eval-seq-len", min=2, help="window and max input length for --eval-tasks"),
    device: Optional[str] = DeviceOpt,
    trust_remote_code: bool = TrustOpt,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
):
    """Search for the k blocks whose removal hurts the objective least; every evaluation is stored.

    SIGTERM or SIGHUP stops the search between two candidates (Ctrl-C at once); either way the run
    is marked stopped and `--resume` continues it."""
    from ..pipeline.loop import SearchStopped
    from ..pipeline.prune import PruneConfig, resume as resume_run, start

    if resume:
        given = {"--model": model != "demo", "--objective": objective != "ppl", "--searcher": searcher != "greedy",
                 "--k": k != 3, "--seed": seed != 0, "--protect": bool(protect), "--calib": calib is not None,
                 "--calib-samples": calib_samples is not None, "--calib-seq-len": calib_seq_len is not None,
                 "--scorer": scorer is not None, "--budget": budget is not None, "--option": bool(option),
                 "--eval-tasks": bool(eval_tasks), "--eval-limit": eval_limit is not None, "--eval-seq-len": eval_seq_len != 2048}
        clashing = [flag for flag, set_ in given.items() if set_]
        if clashing:
            raise UserError(f"{clashing[0]} cannot change a run being resumed (from --resume): it continues "
                            f"with the configuration in its run.json")
    stop = threading.Event()  # set by SIGTERM/SIGHUP: the search stops between two candidates
    with signals_handled(lambda *_: stop.set()), stderr.status("preparing ...") as status:
        listener = _search_listener(status)
        try:
            if resume:
                run, result = resume_run(resume, runs_dir, listener, stop, trust_remote_code=trust_remote_code)
            else:
                options = parse_options(option)
                if scorer is not None:
                    options["scorer"] = scorer
                if budget is not None:
                    options["budget"] = budget
                config = PruneConfig(
                    model=model, objective=objective, searcher=searcher, k=k, seed=seed,
                    protect=parse_indices(protect, "--protect"), calib=calib, calib_samples=calib_samples,
                    calib_seq_len=calib_seq_len, data_dir=str(check_data_dir(data_dir)) if data_dir else None,
                    batch_size=batch_size, options=options, device=device, trust_remote_code=trust_remote_code,
                    speed={"prefix_cache": not no_prefix_cache, "early_abort": not no_early_abort,
                           "shared_context": not no_shared_context, "memo": not no_memo,
                           "cache_bytes": None if cache_mem is None else int(cache_mem * 2**30)},
                    eval_tasks=parse_list(eval_tasks), eval_limit=eval_limit, eval_seq_len=eval_seq_len)
                run, result = start(config, runs_dir, listener, stop=stop)
        except SearchStopped as stopped:
            stderr.print(f"stopped; everything evaluated is stored. Continue with: depthprune prune --resume {stopped} "
                         f"--runs-dir {runs_dir}", markup=False, highlight=False, soft_wrap=True)
            sys.exit(130)
    _print_result(run, result, run.config["objective"]["objective"], as_json)
