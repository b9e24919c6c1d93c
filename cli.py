"""`depthprune`: the headless command line (Typer). Data goes to stdout, progress to stderr.

Any user mistake ends with one line `error: ...` naming the bad value and its source, exit code 2.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .core.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Study which Transformer blocks of a causal LM can be removed, and why.")
stderr = Console(stderr=True)
stdout = Console()

ModelOpt = typer.Option("demo", "--model", "-m", help="demo | tiny:<family> | local HF dir | .gguf file | hub id")
DataDirOpt = typer.Option(None, "--data-dir", help="folder with the official benchmark files (layout of shared/data)")
DeviceOpt = typer.Option(None, "--device", help="cpu | cuda | cuda:N (default: cuda if available)")
TrustOpt = typer.Option(False, "--trust-remote-code", help="allow model repositories to run their own code")


def parse_indices(text: str, source: str) -> list[int]:
    """'3,7,9' -> [3, 7, 9]; empty -> []."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            out.append(int(part))
        except ValueError:
            raise UserError(f"block index {part!r} (from {source}) is not an integer") from None
    return out


def parse_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


@contextmanager
def progress_bars():
    """A progress callback (label, done, total) drawing Rich bars on stderr."""
    bars: dict[str, int] = {}
    with Progress(TextColumn("{task.description:>14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=stderr, transient=True) as progress:
        def update(label: str, done: int, total: int):
            if label not in bars:
                bars[label] = progress.add_task(label, total=total)
            progress.update(bars[label], completed=done)

        yield update


def _load(model: str, device: str | None, trust_remote_code: bool):
    from .core.loading import load_model

    with stderr.status(f"loading {model} ..."):
        return load_model(model, device=device, trust_remote_code=trust_remote_code)


def _finished_run(ref: str, runs_dir: Path, source: str):
    """(run, model spec, removed blocks as '3,7,9') of a finished run; 'latest' is the newest in runs_dir."""
    from .core.runs import Run, list_runs

    if ref == "latest":
        runs = [r for r in list_runs(runs_dir) if r.state == "finished"]
        if not runs:
            raise UserError(f"no finished run in {str(runs_dir)!r} (from {source} latest)")
        run = max(runs, key=lambda r: r.config.get("started", ""))
    else:
        run = Run.open(ref, runs_dir, source)
    result = run.result()
    if result is None:
        raise UserError(f"run {run.id} (from {source}) has no result yet; finish it with: depthprune prune --resume {run.id}")
    return run, run.config["model"], ",".join(map(str, result["removed"]))


def _check_data_dir(data_dir: Optional[Path]) -> Optional[Path]:
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"data directory {str(data_dir)!r} (from --data-dir) not found")
    return data_dir


@app.command("eval")
def eval_cmd(
    model: str = ModelOpt,
    remove: str = typer.Option("", "--remove", "-r", help="blocks to remove, original 0-based indices: 3,7,9"),
    tasks: str = typer.Option("demo-text,demo-mc", "--tasks", "-t", help="comma-separated benchmark names"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="first N items (ppl: first N windows)"),
    seq_len: int = typer.Option(2048, "--seq-len", min=2, help="perplexity window and max input length"),
    data_dir: Optional[Path] = DataDirOpt,
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    device: Optional[str] = DeviceOpt,
    trust_remote_code: bool = TrustOpt,
    run: Optional[str] = typer.Option(None, "--run", help="evaluate what a finished run found (id, directory or 'latest')"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
):
    """Evaluate the dense or pruned model on perplexity and zero-shot multiple-choice tasks."""
    from .core.evaluate import evaluate
    from .core.surgery import validate_removed
    from .core.tasks import get_task

    source_run = None
    if run is not None:
        if remove:
            raise UserError("give either --run or --remove, not both")
        source_run, model, remove = _finished_run(run, runs_dir, "--run")

    task_names = parse_list(tasks)
    if not task_names:
        raise UserError("no task given (from --tasks)")
    for name in task_names:
        get_task(name)
    removed_raw = parse_indices(remove, "--remove")
    data_dir = _check_data_dir(data_dir)
    lm = _load(model, device, trust_remote_code)
    removed = validate_removed(removed_raw, lm.n_blocks)
    with progress_bars() as progress:
        if source_run is None:
            report = evaluate(lm, task_names, removed, limit=limit, seq_len=seq_len, data_dir=data_dir,
                              batch_size=batch_size, progress=progress)
        else:  # the scores also become an `evaluated` event of the run
            from .prune import record_evaluation

            with source_run.writing():
                report = record_evaluation(source_run, lm, removed, task_names, limit=limit, seq_len=seq_len,
                                           data_dir=str(data_dir) if data_dir else None, batch_size=batch_size,
                                           progress=progress)
    if as_json:
        print(json.dumps(report))
        return
    table = Table(title=f"{lm.spec}  removed={list(removed) or 'none'}  seq_len={seq_len}  {lm.dtype}")
    for col in ("task", "metric", "value", "n"):
        table.add_column(col)
    for name, metrics in report["tasks"].items():
        if "ppl" in metrics:
            table.add_row(name, "ppl", f"{metrics['ppl']:.3f}", f"{metrics['windows']} windows")
        else:
            for m in ("acc", "acc_norm"):
                if m in metrics:
                    star = " *" if m == metrics["primary"] else ""
                    table.add_row(name, m + star, f"{metrics[m]:.4f}", f"{metrics['items']} items")
    stdout.print(table)
    stdout.print(f"[dim]* metric used in averages · {report['seconds']:.1f} s[/dim]")


def parse_options(items: list[str]) -> dict:
    """`--option width=3 --option mode=mi` -> {"width": 3, "mode": "mi"} (values read as JSON when they parse)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"searcher option {item!r} (from --option) is not key=value")
        if key in out:
            raise UserError(f"searcher option {key!r} (from --option) given twice")
        try:
            out[key] = json.loads(value)
        except (ValueError, RecursionError):  # not JSON (or nested too deeply): the text itself
            out[key] = value
    return out


def _search_listener(progress):
    """Evaluation events -> one Rich status line on stderr (count, best so far, searcher phase)."""
    best = [None]

    def listen(event):
        if event["type"] != "evaluation":
            return
        if not event.get("aborted") and (best[0] is None or event["value"] < best[0][0]):
            best[0] = (event["value"], event["removed"])
        if event.get("aborted"):
            return
        progress.update(f"eval {event['n']} · {event['status'] or 'scoring'} · best {best[0][0]:.4f} "
                        f"removing {best[0][1]} · last {event['seconds']:.2f}s")

    return listen


@contextmanager
def signals_handled(handler):
    """`handler` for SIGTERM and SIGHUP (a closed SSH session) while the block runs; the previous
    handlers come back afterwards."""
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _print_result(run, result: dict, objective: str, as_json: bool) -> None:
    from .objectives import report

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
    from .core.search import SearchStopped
    from .prune import PruneConfig, resume as resume_run, start

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
                run, result = resume_run(resume, runs_dir, listener, stop)
            else:
                options = parse_options(option)
                if scorer is not None:
                    options["scorer"] = scorer
                if budget is not None:
                    options["budget"] = budget
                config = PruneConfig(
                    model=model, objective=objective, searcher=searcher, k=k, seed=seed,
                    protect=parse_indices(protect, "--protect"), calib=calib, calib_samples=calib_samples,
                    calib_seq_len=calib_seq_len, data_dir=str(_check_data_dir(data_dir)) if data_dir else None,
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


runs_app = typer.Typer(help="List, show and compare runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
RunsDirOpt = typer.Option(Path("runs"), "--runs-dir")
FormatOpt = typer.Option("md", "--format", "-f", help="md | csv | json")


@runs_app.command("ls")
def runs_ls(runs_dir: Path = RunsDirOpt, fmt: str = FormatOpt):
    """All runs in the runs directory."""
    from .core.runs import list_runs
    from .report import render, run_row

    rows = [run_row(r) for r in list_runs(runs_dir)]
    print(render(rows, fmt))


@runs_app.command("show")
def runs_show(run: str = typer.Argument(..., help="run id or directory"), runs_dir: Path = RunsDirOpt):
    """One run: configuration, state, result."""
    from .core.runs import Run

    r = Run.open(run, runs_dir)
    print(json.dumps({"id": r.id, "state": r.state, "config": r.config, "result": r.result(),
                      "evaluations": len(r.memo())}, indent=2))


@runs_app.command("compare")
def runs_compare(runs: list[str] = typer.Argument(..., help="two or more run ids or directories"),
                 runs_dir: Path = RunsDirOpt, fmt: str = FormatOpt):
    """Removed-set overlap (Jaccard), objective values and evaluation counts, relative to the first run."""
    from .core.runs import Run
    from .report import compare_rows, render

    if len(runs) < 2:
        raise UserError("runs compare needs at least two runs (from RUN...)")
    print(render(compare_rows([Run.open(r, runs_dir) for r in runs]), fmt))


@app.command("export")
def export_cmd(
    run: Optional[str] = typer.Argument(None, help="a finished run (id or directory): export its pruned model"),
    out: Path = typer.Option(..., "--out", "-o", help="new directory for the pruned checkpoint"),
    model: str = ModelOpt,
    remove: str = typer.Option("", "--remove", "-r", help="without RUN: blocks to remove, original 0-based indices"),
    runs_dir: Path = RunsDirOpt,
    device: Optional[str] = DeviceOpt,
    trust_remote_code: bool = TrustOpt,
):
    """Write the pruned model as a stock Hugging Face checkpoint (safetensors) and verify it reloads."""
    from .core.surgery import export_pruned

    provenance = {}
    if run is not None:
        r, model, removed_text = _finished_run(run, runs_dir, "RUN")
        removed = parse_indices(removed_text, "RUN")
        trust_remote_code = r.config["config"].get("trust_remote_code", False)
        provenance = {"run": r.id, "run_config": r.config, "objective_value": r.result()["value"]}
    else:
        removed = parse_indices(remove, "--remove")
        if not removed:
            raise UserError("nothing to remove: give a RUN or --remove")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output directory {str(out)!r} (from --out) exists and is not empty")
    lm = _load(model, device, trust_remote_code)
    with stderr.status("exporting ..."):
        info = export_pruned(lm, removed, out, provenance)
    print(json.dumps({k: v for k, v in info.items() if k != "run_config"}))


def _study_overrides(name, models, objectives, searchers, k, seeds, eval_tasks, eval_limit, data_dir) -> dict:
    """Grid flags as a study table (only those given)."""
    table = {"name": name, "models": parse_list(models or ""), "objectives": parse_list(objectives or ""),
             "searchers": parse_list(searchers or ""), "k": parse_indices(k or "", "--k"),
             "seeds": parse_indices(seeds or "", "--seeds"), "data_dir": data_dir}
    table = {key: v for key, v in table.items() if v}
    evaluation = {"tasks": parse_list(eval_tasks or ""), "limit": eval_limit}
    evaluation = {key: v for key, v in evaluation.items() if v}
    return table | ({"evaluation": evaluation} if evaluation else {})


@app.command("study")
def study_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="study TOML file (see docs/reproduction/)"),
    name: Optional[str] = typer.Option(None, "--name", help="study name (overrides the file)"),
    models: Optional[str] = typer.Option(None, "--models", help="comma-separated model specs"),
    objectives: Optional[str] = typer.Option(None, "--objectives", help="e.g. ppl,margin"),
    searchers: Optional[str] = typer.Option(None, "--searchers", help="e.g. oneshot,greedy,beam"),
    k: Optional[str] = typer.Option(None, "--k", help="budgets, e.g. 4,7"),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="e.g. 0,1,2"),
    eval_tasks: Optional[str] = typer.Option(None, "--eval-tasks", help="the evaluation suite"),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit", min=1, help="first N items / windows per task"),
    data_dir: Optional[Path] = DataDirOpt,
    executor: Optional[str] = typer.Option(None, "--executor", help="local | ray"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="local worker processes"),
    runs_dir: Path = RunsDirOpt,
):
    """Run a grid of searches (every cell a resumable run), evaluate every pruned model on one suite,
    and write the study's report. Running it again continues where it stopped."""
    from .core.search import SearchStopped
    from .study.config import load_study, parse_study
    from .study.report import write_report
    from .study.results import collect
    from .study.runner import run_study, study_dir

    overrides = _study_overrides(name, models, objectives, searchers, k, seeds, eval_tasks, eval_limit,
                                 str(_check_data_dir(data_dir)) if data_dir else None)
    if executor or workers:
        overrides["executor"] = {key: v for key, v in {"kind": executor, "workers": workers}.items() if v}
    study = load_study(config, overrides) if config is not None else parse_study(overrides, "flags")
    with progress_bars() as progress, signals_handled(signal.default_int_handler):  # as Ctrl-C
        try:
            summary = run_study(study, runs_dir, progress)
        except SearchStopped as stopped:
            stderr.print(f"stopped in {stopped}; everything evaluated is stored. Run the same command to continue.",
                         markup=False, highlight=False, soft_wrap=True)
            sys.exit(130)
    path = write_report(study, collect(study, runs_dir), "md", study_dir(runs_dir, study.name) / "report")
    print(json.dumps(summary | {"report": str(path)}))


@app.command("report")
def report_cmd(
    study: str = typer.Argument(..., help="study name (in RUNS_DIR/studies) or its directory"),
    fmt: str = typer.Option("md", "--format", "-f", help="md | csv | json | html"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for the report and figures "
                                                                  "(default: the study's report/ folder)"),
    runs_dir: Path = RunsDirOpt,
):
    """Tables, removed-layer masks, rank agreement, spread, cost, overlap and variance shares of a study."""
    from .study.report import write_report
    from .study.results import collect, open_study

    config, folder = open_study(study, runs_dir)
    runs_root = folder.parent.parent
    path = write_report(config, collect(config, runs_root), fmt, out or folder / "report")
    if fmt == "md":
        print(path.read_text())
    print(path)


def main() -> None:
    """Entry point: Typer without its tracebacks; user errors as one line and exit code 2."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own Rich bars report progress
    try:
        app(standalone_mode=False)
    except UserError as exc:
        stderr.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        stderr.print("interrupted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad option values, unknown options
        if type(exc).__name__ == "NoArgsIsHelpError":  # help was already printed
            sys.exit(0)
        message = " ".join(exc.format_message().split())
        stderr.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
