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

CONFIG = PruneConfig(model="tiny:llama:8", objective="ppl", searcher="greedy", k=3, seed=3, calib="demo",
                     calib_samples=2, calib_seq_len=64, batch_size=1)
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
    limits = {"evaluate": len(reference["evaluations"]), "append": reference["appends"],
              "torn-append": reference["appends"], "appended": reference["appends"]}
    points = [f"{kind}:{n}" for kind, count in PER_KIND.items() for n in sorted(rng.sample(range(1, limits[kind] + 1), count))]
    return points + ["rename:2"]  # rename 1 is run.json (no run yet); 2 is result.json


@pytest.fixture(scope="module")
def forkserver():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["depthprune.pipeline.prune", "depthprune.core.tiny", "transformers.models.llama.modeling_llama"])
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
