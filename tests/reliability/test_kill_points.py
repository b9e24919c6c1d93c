"""SIGKILL at seeded random points of a search, then `resume`: the same result as an uninterrupted run,
and no stored candidate evaluated again.

Kill points come from the test-only fault hook (`core.runs.fault_point`, armed by $DEPTHPRUNE_FAULT):
after a candidate is computed but before it is recorded (`evaluate`), before a line is written
(`append`), with half a line written (`torn-append`), after a line is fsynced (`appended`), and with
result.json's temporary copy complete but not renamed (`rename`). Lines are those of events.jsonl and of
the shared memo. Each search runs in a child forked from a clean forkserver (torch imported once)."""

import multiprocessing
import random
import signal

import pytest

from depthprune.core.runs import Run, list_runs
from depthprune.pipeline.prune import PruneConfig, resume, start

CONFIG = PruneConfig(
    model="tiny:llama:8",
    objective="ppl",
    searcher="greedy",
    k=3,
    seed=3,
    calib="demo",
    calib_samples=2,
    calib_seq_len=64,
    batch_size=1,
)
SEED = 20261130
PER_KIND = {"evaluate": 5, "append": 5, "torn-append": 5, "appended": 5}

CHILD = """
import os, torch
os.environ["DEPTHPRUNE_FAULT"] = fault
torch.set_num_threads(1)
from depthprune.pipeline.prune import start
start(config, runs_dir)
"""


def evaluations(run: Run) -> list[tuple]:
    """(removed, aborted) of every evaluation event, in order."""
    return [(tuple(e.removed), e.aborted) for e in run.events() if e.kind == "candidate"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run, result = start(CONFIG, tmp_path_factory.mktemp("reference"))
    memo_lines = sum(1 for e in run.events() if e.kind == "candidate" and not e.aborted)
    return {"result": result, "evaluations": evaluations(run), "appends": len(run.events()) + memo_lines}


def kill_points(reference) -> list[str]:
    rng = random.Random(SEED)
    limits = {
        "evaluate": len(reference["evaluations"]),
        "append": reference["appends"],
        "torn-append": reference["appends"],
        "appended": reference["appends"],
    }
    points = [
        f"{kind}:{n}" for kind, count in PER_KIND.items() for n in sorted(rng.sample(range(1, limits[kind] + 1), count))
    ]
    return points + ["rename:2"]  # rename 1 is run.json (no run yet); 2 is result.json


@pytest.fixture(scope="module")
def forkserver():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["depthprune.pipeline.prune", "depthprune.core.tiny", "transformers.models.llama.modeling_llama"]
    )
    warm = ctx.Process(target=int)  # starts the server (its preload takes seconds) before any child is timed
    warm.start()
    warm.join()
    return ctx


def test_resume_after_sigkill_at_random_points_gives_the_uninterrupted_result(reference, forkserver, tmp_path, tally):
    points = kill_points(reference)
    assert len(points) >= 20
    for i, fault in enumerate(points):
        runs_dir = tmp_path / str(i)
        child = forkserver.Process(target=exec, args=(CHILD, {"fault": fault, "config": CONFIG, "runs_dir": runs_dir}))
        child.start()
        child.join(120)
        assert child.exitcode == -signal.SIGKILL, f"{fault}: the search was not killed (exit {child.exitcode})"
        (run,) = list_runs(runs_dir)
        before = evaluations(run)  # a torn last line is tolerated here
        assert before == reference["evaluations"][: len(before)], fault
        run, result = resume(str(run.path), runs_dir)
        assert result["removed"] == reference["result"]["removed"], fault
        assert result["value"] == pytest.approx(reference["result"]["value"], rel=1e-6), fault
        assert evaluations(run) == reference["evaluations"], f"{fault}: the resumed trajectory differs"
        complete = [tuple(e.removed) for e in run.events() if e.kind == "candidate" and not e.aborted]
        assert len(complete) == len(set(complete)), f"{fault}: a stored candidate was evaluated again"
        assert run.state == "finished"
        tally["kill points"] += 1


def test_kill_points_are_spread_over_evaluations_event_writes_and_result_writing(reference):
    kinds = {p.split(":")[0] for p in kill_points(reference)}
    assert kinds == {"evaluate", "append", "torn-append", "appended", "rename"}


# -- the memo race and memo counts across resume -----------------------------------------------

MEMO_CONFIG = PruneConfig(
    model="tiny:llama:6",
    objective="ppl",
    searcher="beam",
    k=2,
    seed=0,
    calib="demo",
    calib_samples=1,
    calib_seq_len=32,
    batch_size=1,
    options={"width": 2},
)
FILLER = PruneConfig(**{**MEMO_CONFIG.__dict__, "searcher": "greedy", "options": {}})  # fills the shared memo


def _child(forkserver, fault: str, config: PruneConfig, runs_dir) -> int:
    child = forkserver.Process(target=exec, args=(CHILD, {"fault": fault, "config": config, "runs_dir": runs_dir}))
    child.start()
    child.join(120)
    return child.exitcode


def _counts(result: dict) -> tuple:
    """What a resumed run must share with the uninterrupted one (a multi-objective run: its front too)."""
    front = [(m["removed"], round(m["value"], 6)) for m in result.get("front", [])]
    return result["removed"], round(result["value"], 6), result["evaluations"], result["cached_from_memo"], front


def test_a_kill_between_the_runs_event_and_the_shared_memo_leaves_the_counts_of_an_uninterrupted_run(
    forkserver, tmp_path, tally
):
    """Fault point `memo`: the candidate is in the run's events, not yet in the shared memo. On resume
    it is the run's own computed candidate, not a memo hit (the other order of the two writes gave
    evaluations n-1 and cached_from_memo 1)."""
    _, reference = start(MEMO_CONFIG, tmp_path / "reference")
    for n in (1, 4, 9):
        runs_dir = tmp_path / f"memo-{n}"
        assert _child(forkserver, f"memo:{n}", MEMO_CONFIG, runs_dir) == -signal.SIGKILL
        (run,) = list_runs(runs_dir)
        stored = [e for e in run.events() if e.kind == "candidate"]
        assert len(stored) == n and not any(e.cached for e in stored)
        _, result = resume(str(run.path), runs_dir)
        assert _counts(result) == _counts(reference), f"memo:{n}"
        tally["kill points"] += 1


def test_cached_from_memo_survives_a_resume(forkserver, tmp_path, tally):
    """A run served partly by the shared memo, killed and resumed: its memo count is rebuilt from its
    stored candidates (it restarted at 0 on every resume)."""
    start(FILLER, tmp_path / "reference")
    _, reference = start(MEMO_CONFIG, tmp_path / "reference")
    assert reference["cached_from_memo"] > 0 and reference["evaluations"] > 0
    runs_dir = tmp_path / "killed"
    start(FILLER, runs_dir)
    assert _child(forkserver, "evaluate:2", MEMO_CONFIG, runs_dir) == -signal.SIGKILL
    (run,) = [r for r in list_runs(runs_dir) if r.state != "finished"]
    assert any(e.kind == "candidate" and e.cached for e in run.events()), "the kill came after a memo hit"
    _, result = resume(str(run.path), runs_dir)
    assert _counts(result) == _counts(reference)
    tally["kill points"] += 1


# -- random-time SIGKILL / resume cycles -------------------------------------------------------

CYCLE_CONFIGS = {
    "greedy": PruneConfig(
        model="tiny:llama:6",
        objective="ppl",
        searcher="greedy",
        k=2,
        calib="demo",
        calib_samples=1,
        calib_seq_len=32,
        batch_size=1,
    ),
    "beam": PruneConfig(
        model="tiny:llama:6",
        objective="ppl",
        searcher="beam",
        k=3,
        calib="demo",
        calib_samples=1,
        calib_seq_len=32,
        batch_size=1,
        options={"width": 2},
    ),
    "ga": PruneConfig(
        model="tiny:llama:6",
        objective="ppl",
        searcher="ga",
        k=2,
        seed=1,
        calib="demo",
        calib_samples=1,
        calib_seq_len=32,
        batch_size=1,
        options={"population": 6, "generations": 3},
    ),
    "bo": PruneConfig(
        model="tiny:llama:6",
        objective="ppl",
        searcher="bo",
        k=2,
        seed=2,
        calib="demo",
        calib_samples=1,
        calib_seq_len=32,
        batch_size=1,
        options={"trials": 10, "initial": 4, "pool": 40},
    ),
    "nsga2": PruneConfig(
        model="tiny:llama:6",
        objective="mix:ppl=1,margin=1",
        searcher="nsga2",
        k=2,
        seed=3,
        calib="demo",
        calib_samples=2,
        calib_seq_len=64,
        batch_size=1,
        options={"population": 6, "generations": 3},
    ),
}
CYCLES_PER_SEARCHER = 10
TIMED_CHILD = """
import torch
torch.set_num_threads(1)
from depthprune.pipeline.prune import start
start(config, runs_dir)
"""


def test_sigkill_at_random_times_then_resume_gives_the_uninterrupted_run(forkserver, tmp_path, tally):
    """50 cycles (10 per searcher: greedy, beam, ga, bo, nsga2): a search in a forked child is killed with
    SIGKILL at a random time within its uninterrupted duration, then resumed (or started again when
    the kill came before the run existed). Removed set, value, evaluation count, cached_from_memo and
    (nsga2) the Pareto front must equal the uninterrupted run's."""
    import time

    rng = random.Random(SEED)
    for name, config in CYCLE_CONFIGS.items():
        durations = []
        for attempt in ("ref", "timed"):  # the second run is the one timed: the first warms every cache
            t = time.perf_counter()
            child = forkserver.Process(
                target=exec, args=(TIMED_CHILD, {"config": config, "runs_dir": tmp_path / name / attempt})
            )
            child.start()
            child.join(300)
            durations.append(time.perf_counter() - t)
        duration = durations[-1]
        (reference_run,) = list_runs(tmp_path / name / "ref")
        reference = reference_run.result()
        killed = 0
        for cycle in range(3 * CYCLES_PER_SEARCHER):  # a child that finished before its kill time is not a cycle
            if killed == CYCLES_PER_SEARCHER:
                break
            runs_dir = tmp_path / name / str(cycle)
            child = forkserver.Process(target=exec, args=(TIMED_CHILD, {"config": config, "runs_dir": runs_dir}))
            child.start()
            child.join(rng.uniform(0.05, 0.9) * duration)
            if child.exitcode is not None:
                continue
            child.kill()
            child.join()
            killed += 1
            runs = list_runs(runs_dir)
            _, result = resume(str(runs[0].path), runs_dir) if runs else start(config, runs_dir)
            assert _counts(result) == _counts(reference), f"{name} cycle {cycle}"
            tally["random kill cycles"] += 1
        assert killed == CYCLES_PER_SEARCHER, f"{name}: only {killed} children were still running at their kill time"
