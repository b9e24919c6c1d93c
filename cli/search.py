"""`depthprune prune`: search for the blocks to remove, as a resumable run."""

from __future__ import annotations

import json
import math
import sys
import threading
from dataclasses import fields
from pathlib import Path

import typer
from rich.text import Text

from ..core.errors import UserError
from ..core.parsing import parse_indices, parse_list, parse_options
from ..objectives import OBJECTIVES
from ..pipeline.loop import Speedups
from ..pipeline.prune import FLAGS, PruneConfig, where
from ..searchers import SEARCHERS, searcher_class
from ..searchers.simple import OneShot
from .common import (
    DataDirOpt,
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    RevisionOpt,
    TrustOpt,
    app,
    check_data_dir,
    signals_handled,
    stderr,
    stdout,
)


def _search_listener(progress):
    """Candidate events -> one Rich status line on stderr (count, best so far, searcher phase)."""
    from ..core.events import Candidate, Phase

    best: list[tuple[float, list[int]]] = []

    def listen(event):
        if isinstance(event, Phase):
            step = f" {event.done}/{event.total}" if event.total else ""
            progress.update(Text(f"{event.phase}{step} {event.detail}".rstrip()))
        if not isinstance(event, Candidate) or event.aborted:
            return
        if not best or event.value < best[0][0]:
            best[:] = [(event.value, event.removed)]
        progress.update(
            Text(
                f"eval {event.n} · {event.status or 'scoring'} · best {best[0][0]:.4f} "
                f"removing {best[0][1]} · last {event.seconds:.2f}s"
            )
        )

    return listen


def _print_result(run, result: dict, objective: str, as_json: bool) -> None:
    from ..objectives import report

    summary = {
        "run": run.id,
        "path": str(run.path),
        "removed": result["removed"],
        "objective": objective,
        "value": result["value"],
        "report": report(objective, result["value"]),
        "evaluations": result["evaluations"],
        "aborted": result.get("aborted", 0),
        "cached_from_memo": result.get("cached_from_memo", 0),
        "block_forwards": result.get("block_forwards"),
        "seconds": result["seconds"],
    }
    if "front" in result:
        summary["front"] = result["front"]
    if as_json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        if key != "front":
            stdout.print(Text.assemble((f"{key:>12}", "bold"), f"  {value}"))
    if "front" in result:
        stdout.print(
            Text.assemble(
                ("Pareto front", "bold"), f"  {len(result['front'])} sets; terms relative to the dense model (0)"
            )
        )
        stdout.print(front_table(result["front"], result["removed"]))


def front_table(front: list[dict], chosen: list[int]):
    """A multi-objective run's Pareto front: one row per member (its removed blocks, each term, the
    mix value), the chosen result marked."""
    from rich.table import Table

    names = list(front[0]["terms"]) if front else []
    table = Table()
    for column in ["removed", *names, "mix value", ""]:
        table.add_column(column, justify="left" if column == "removed" else "right")
    for member in front:
        mark = "◀ result" if member["removed"] == chosen else ""
        cells = [f"{member['terms'][n]:.4g}" for n in names]
        table.add_row(" ".join(map(str, member["removed"])), *cells, f"{member['value']:.4g}", mark)
    return table


D = PruneConfig()  # the one declaration of the defaults (run.json and studies use the same dataclass)
SPEED = Speedups()


def _names(registry) -> str:
    return " | ".join(registry)


@app.command("prune")
def prune_cmd(
    model: str = typer.Option(D.model, "--model", "-m", help=ModelOpt.help),
    objective: str = typer.Option(
        D.objective,
        "--objective",
        "-O",
        help=_names(OBJECTIVES) + " | mix:ppl=0.5,margin=0.5 (weighted, dense-relative)",
    ),
    searcher: str = typer.Option(D.searcher, "--searcher", "-s", help=_names(SEARCHERS)),
    k: int = typer.Option(D.k, "--k", "-k", help="number of blocks to remove"),
    seed: int = typer.Option(D.seed, "--seed", help="searcher seed"),
    calib_seed: int = typer.Option(
        D.calib_seed, "--calib-seed", help="seed drawing the calibration items (sampling sources such as commonsense)"
    ),
    protect: str = typer.Option("", "--protect", help="blocks never removed, e.g. 0,-1 (negative counts from the end)"),
    calib: str | None = typer.Option(
        D.calib, "--calib", help="demo | c4 | lambada | commonsense | <task>-train | file.txt | file.jsonl"
    ),
    calib_samples: int | None = typer.Option(
        D.calib_samples, "--calib-samples", help="windows (ppl, kl) or questions (margin, acc)"
    ),
    calib_seq_len: int | None = typer.Option(
        D.calib_seq_len, "--calib-seq-len", help="calibration window / max input length"
    ),
    scorer: str | None = typer.Option(
        None, "--scorer", help="oneshot only: " + _names(OneShot.params["scorer"].choices)
    ),
    budget: int | None = typer.Option(
        None,
        "--budget",
        help="evaluation budget (" + ", ".join(name for name, cls in SEARCHERS.items() if "budget" in cls.params) + ")",
    ),
    option: list[str] = typer.Option([], "--option", help="searcher hyperparameter key=value (repeatable)"),
    data_dir: Path | None = DataDirOpt,
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir"),
    resume: str | None = typer.Option(None, "--resume", help="continue this run (id or directory)"),
    batch_size: int = typer.Option(D.batch_size, "--batch-size"),
    no_prefix_cache: bool = typer.Option(
        not SPEED.prefix_cache, "--no-prefix-cache", help="run every candidate from block 0"
    ),
    no_early_abort: bool = typer.Option(
        not SPEED.early_abort, "--no-early-abort", help="always score candidates completely"
    ),
    no_shared_context: bool = typer.Option(
        not SPEED.shared_context, "--no-shared-context", help="score each choice as its own sequence"
    ),
    no_memo: bool = typer.Option(not SPEED.memo, "--no-memo", help="ignore values stored by other runs"),
    cache_mem: float | None = typer.Option(None, "--cache-mem", help="prefix-cache budget in GiB"),
    eval_tasks: str = typer.Option("", "--eval-tasks", help="after the search, score the result on these benchmarks"),
    eval_limit: int | None = typer.Option(D.eval_limit, "--eval-limit", help="first N items / windows per eval task"),
    eval_seq_len: int | None = typer.Option(
        D.eval_seq_len,
        "--eval-seq-len",
        help="window and max input length for --eval-tasks (default: 2048 or the model's maximum, if smaller)",
    ),
    device: str | None = DeviceOpt,
    dtype: str | None = DtypeOpt,
    device_map: str | None = DeviceMapOpt,
    revision: str | None = RevisionOpt,
    trust_remote_code: bool = TrustOpt,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
):
    """Search for the k blocks whose removal hurts the objective least; every evaluation is stored.

    SIGTERM or SIGHUP stops the search between two candidates (Ctrl-C at once); either way the run
    is marked stopped and `--resume` continues it. Values are checked against PruneConfig's declared
    types and minimums and the searcher's declared option domains."""
    from ..pipeline.loop import SearchStopped
    from ..pipeline.prune import resume as resume_run
    from ..pipeline.prune import start

    if cache_mem is not None and not (math.isfinite(cache_mem) and cache_mem >= 0):
        raise UserError(f"--cache-mem {cache_mem!r} should be a finite number of GiB ≥ 0")
    options = parse_options(option)
    for flag, key, value in (("--scorer", "scorer", scorer), ("--budget", "budget", budget)):
        if value is not None:
            if key in options:
                raise UserError(f"{flag} and --option {key}= both given; give one")
            searcher_class(searcher).validate_options({key: value}, flag)
    if scorer is not None:
        options["scorer"] = scorer
    if budget is not None:
        options["budget"] = budget
    config = PruneConfig(
        model=model,
        objective=objective,
        searcher=searcher,
        k=k,
        seed=seed,
        calib_seed=calib_seed,
        protect=parse_indices(protect, "--protect"),
        calib=calib,
        calib_samples=calib_samples,
        calib_seq_len=calib_seq_len,
        data_dir=str(check_data_dir(data_dir)) if data_dir else None,
        batch_size=batch_size,
        options=options,
        device=device,
        trust_remote_code=trust_remote_code,
        dtype=dtype,
        device_map=device_map,
        revision=revision,
        speed={
            "prefix_cache": not no_prefix_cache,
            "early_abort": not no_early_abort,
            "shared_context": not no_shared_context,
            "memo": not no_memo,
            "cache_bytes": None if cache_mem is None else int(cache_mem * 2**30),
        },
        eval_tasks=parse_list(eval_tasks),
        eval_limit=eval_limit,
        eval_seq_len=eval_seq_len,
    )
    if resume:
        clashing = [
            where(FLAGS, f.name)
            for f in fields(PruneConfig)
            if f.name in SEARCH_FIELDS and getattr(config, f.name) != getattr(D, f.name)
        ]
        if clashing:
            raise UserError(
                f"{clashing[0]} cannot change a run being resumed (from --resume): it continues "
                f"with the configuration in its run.json"
            )
    stop = threading.Event()  # set by SIGTERM/SIGHUP: the search stops between two candidates
    with signals_handled(lambda *_: stop.set()), stderr.status(Text("preparing ...")) as status:
        listener = _search_listener(status)
        try:
            if resume:
                run, result = resume_run(resume, runs_dir, listener, stop, trust_remote_code=trust_remote_code)
            else:
                run, result = start(config, runs_dir, listener, stop=stop)
        except SearchStopped as stopped:
            stderr.print(
                f"stopped; everything evaluated is stored. Continue with: depthprune prune --resume {stopped} "
                f"--runs-dir {runs_dir}",
                soft_wrap=True,
            )
            sys.exit(130)
    _print_result(run, result, run.config["objective"]["objective"], as_json)


#: Fields a resumed run takes from its run.json (a flag setting one of them is refused); the others
#: (data_dir, batch_size, speed-ups, device, trust) belong to the invocation.
SEARCH_FIELDS = (
    "model",
    "objective",
    "searcher",
    "k",
    "seed",
    "calib_seed",
    "protect",
    "calib",
    "calib_samples",
    "calib_seq_len",
    "options",
    "eval_tasks",
    "eval_limit",
    "eval_seq_len",
    "dtype",
    "revision",
)
