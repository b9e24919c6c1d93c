"""Searches end to end: every searcher on every family, runs that survive SIGKILL, the prune CLI."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from depthprune.core.runs import Run, list_runs
from depthprune.pipeline.loop import SearchStopped
from depthprune.pipeline.prune import PruneConfig, prepare, resume, start
from depthprune.searchers import SEARCHERS

from .conftest import FAMILY_NAMES
from .test_cli import run_cli

SMALL = dict(calib="demo", calib_samples=2, calib_seq_len=64)


def options_for(name):
    return {"scorer": "bi"} if name == "oneshot" else {}


def objective_for(name):
    """ppl, or a two-term mix for a multi-objective searcher (nsga2 refuses anything else)."""
    return "mix:ppl=1,margin=1" if SEARCHERS[name].multi_objective else "ppl"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_searcher_runs_end_to_end_on_every_family(family, tmp_path):
    from depthprune.core.loading import load_model

    lm = load_model(f"tiny:{family}", device="cpu")
    for name in SEARCHERS:
        config = PruneConfig(
            model=f"tiny:{family}",
            objective=objective_for(name),
            searcher=name,
            k=2,
            protect=[0],
            **SMALL,
            options=options_for(name),
        )
        run, result = start(config, tmp_path, lm=lm)
        assert len(result["removed"]) == 2 and 0 not in result["removed"], name
        assert run.memo()[frozenset(result["removed"])] == result["value"]
        evaluations = [e for e in run.events() if e.kind == "candidate" and not e.cached]
        assert len(evaluations) == result["evaluations"]
        assert len({tuple(e.removed) for e in evaluations if not e.aborted}) == len(evaluations) - result["aborted"]


@pytest.mark.parametrize("objective", ["margin", "acc", "kl"])
def test_searches_run_under_every_objective(objective, tmp_path):
    config = PruneConfig(
        model="tiny:qwen3", objective=objective, searcher="greedy", k=2, calib="demo", calib_samples=4, calib_seq_len=64
    )
    run, result = start(config, tmp_path)
    assert len(result["removed"]) == 2 and run.config["objective"]["objective"] == objective


def test_a_mix_searches_with_a_source_per_term_and_resumes_to_the_same_result(tmp_path):
    config = PruneConfig(
        model="tiny:llama:6",
        objective="mix:ppl=0.5,margin=0.5",
        searcher="greedy",
        k=2,
        calib="ppl=demo,margin=demo",
        calib_samples=3,
        calib_seq_len=64,
    )
    import threading

    _, reference = start(config, tmp_path / "uninterrupted")
    stop = threading.Event()
    seen = []

    def stop_after_four(event):
        seen.append(event.kind)
        if seen.count("candidate") == 4:
            stop.set()

    with pytest.raises(SearchStopped):
        start(config, tmp_path / "runs", listener=stop_after_four, stop=stop)
    (run,) = list_runs(tmp_path / "runs")
    assert run.id.endswith("-mix-ppl-0-5-margin-0-5-greedy-k2")  # a plain directory name
    assert set(run.config["calibration"]["terms"]) == {"ppl", "margin"}
    assert [t["objective"] for t in run.config["objective"]["terms"]] == ["ppl", "margin"]
    result = resume(run.id, tmp_path / "runs")[1]  # the mix is rebuilt from run.json and must match
    assert result["removed"] == reference["removed"] and result["value"] == pytest.approx(reference["value"], rel=1e-9)


def test_cbo_works_on_the_margin_objective_and_refuses_accuracy(tmp_path):
    margin = PruneConfig(
        model="tiny:llama",
        objective="margin",
        searcher="cbo",
        k=2,
        calib="demo",
        calib_samples=4,
        options={"first_order": True, "rescore_top": 3},
    )
    _, result = start(margin, tmp_path)
    assert result["evaluations"] == 3 and len(result["lowest_energy_states"]) >= 3
    with pytest.raises(Exception, match="cbo needs ppl or margin"):
        start(
            PruneConfig(model="tiny:llama", objective="acc", searcher="cbo", k=2, calib="demo", calib_samples=4),
            tmp_path,
        )


def uninterrupted(tmp_path, searcher, extra):
    config = PruneConfig(
        model="tiny:llama:10",
        objective="ppl",
        searcher=searcher,
        k=3,
        seed=3,
        calib="demo",
        calib_samples=6,
        calib_seq_len=128,
        **extra,
    )
    return start(config, tmp_path / "reference")


@pytest.mark.parametrize("kill_after", [3, 9, 16])
def test_sigkill_mid_search_then_resume_gives_the_uninterrupted_result(kill_after, tmp_path):
    runs_dir = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "depthprune.cli",
        "prune",
        "--model",
        "tiny:llama:10",
        "--objective",
        "ppl",
        "--searcher",
        "greedy",
        "--k",
        "3",
        "--seed",
        "3",
        "--calib",
        "demo",
        "--calib-samples",
        "6",
        "--calib-seq-len",
        "128",
        "--runs-dir",
        str(runs_dir),
        "--json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    killed = False
    while time.time() < deadline and proc.poll() is None:
        events = list(runs_dir.glob("*/events.jsonl"))
        if events and events[0].read_text().count('"candidate"') >= kill_after:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.01)
    proc.wait()
    assert killed, "the search finished before the kill point; make the calibration larger"
    (run_dir,) = [r.path for r in list_runs(runs_dir)]
    assert Run.open(run_dir).result() is None
    stored = len(Run.open(run_dir).memo())
    run, result = resume(str(run_dir), runs_dir)
    evaluations = [tuple(e.removed) for e in run.events() if e.kind == "candidate"]
    assert len(evaluations) == len(set(evaluations)), "a stored candidate was evaluated again"
    _, reference = uninterrupted(tmp_path, "greedy", {})
    assert result["removed"] == reference["removed"]
    assert result["value"] == pytest.approx(reference["value"], rel=1e-6)
    assert result["evaluations"] == reference["evaluations"] and stored >= kill_after


def test_interrupted_stochastic_search_resumes_to_the_same_result(tmp_path, monkeypatch):
    import depthprune.pipeline.loop as search

    calls = {"n": 0}
    original = search.run_search

    def interrupting(objective, searcher, run, *args):
        real = objective.evaluate

        def flaky(removed, cutoff=None, branches=frozenset()):
            calls["n"] += 1
            if calls["n"] == 25:
                raise KeyboardInterrupt
            return real(removed, cutoff, branches)

        objective.evaluate = flaky
        return original(objective, searcher, run, *args)

    config = PruneConfig(
        model="tiny:llama:10",
        objective="ppl",
        searcher="ga",
        k=3,
        seed=5,
        calib="demo",
        calib_samples=2,
        calib_seq_len=64,
    )
    import depthprune.pipeline.prune as prune_module

    monkeypatch.setattr(prune_module, "run_search", interrupting)
    with pytest.raises(SearchStopped):
        start(config, tmp_path / "a")
    (run_dir,) = [r.path for r in list_runs(tmp_path / "a")]
    assert Run.open(run_dir).state == "stopped"
    monkeypatch.setattr(prune_module, "run_search", original)
    _, resumed = resume(str(run_dir), tmp_path / "a")
    _, reference = start(config, tmp_path / "b")
    assert resumed["removed"] == reference["removed"] and resumed["evaluations"] == reference["evaluations"]


def digest(directory: Path) -> dict:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def runs_dir(tmp_path):
    config = PruneConfig(model="tiny:llama", objective="ppl", searcher="oneshot", k=2, **SMALL)
    start(config, tmp_path / "runs")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign/notes.txt").write_text("not a run")
    return tmp_path / "runs"


BAD_PRUNE = [
    (["--searcher", "simplex"], "unknown searcher 'simplex' (from --searcher)"),
    (["--objective", "bleu"], "unknown objective 'bleu' (from --objective)"),
    (["--k", "0"], "k=0 (from --k) must be at least 1"),
    (["--k", "6"], "k=6 (from --k) must be smaller than the 6 removable blocks"),
    (["--k", "5", "--protect", "0,-1"], "k=5 (from --k) must be smaller than the 4 removable blocks"),
    (["--protect", "0,9"], "protected block 9 out of range (from --protect)"),
    (["--protect", "1,1"], "protected block 1 given twice (from --protect)"),
    (["--protect", "0,1,2,3,4,5"], "must be smaller than the 0 removable blocks"),
    (["--resume", "{tmp}/foreign"], "is not a depthprune run directory (no run.json)"),
    (["--resume", "nope"], "run 'nope' (from --resume) not found"),
    (["--calib", "nowhere.txt"], "nowhere.txt' (from --calib) not found"),
    (["--objective", "margin", "--calib", "c0ffee"], "unknown question calibration source 'c0ffee' (from --calib)"),
    (["--option", "width"], "searcher option 'width' (from --option) is not key=value"),
    (["--option", "width=3"], "unknown option 'width' for searcher 'greedy'"),
    (["--searcher", "exhaustive", "--budget", "3"], "over the budget of 3"),
    (["--searcher", "beam", "--option", "width=0"], "bad value 0 for option 'width' of searcher 'beam'"),
    (["--searcher", "cbo", "--option", "gradients=[1]"], "unknown option 'gradients' for searcher 'cbo'"),
    (["--device", "quantum"], "unknown device 'quantum' (from --device)"),
    (["--runs-dir", "{tmp}/foreign/notes.txt"], "(from --runs-dir) is not writable"),
    (["--resume", "{tmp}/foreign", "--k", "2"], "--k cannot change a run being resumed"),
]


@pytest.mark.parametrize("args,message", BAD_PRUNE, ids=[" ".join(a) for a, _ in BAD_PRUNE])
def test_bad_prune_input_is_one_line_and_leaves_runs_untouched(args, message, runs_dir, monkeypatch, capsys):
    before = digest(runs_dir.parent)
    tmp = str(runs_dir.parent)
    base = [
        "--model",
        "tiny:llama",
        "--runs-dir",
        str(runs_dir),
        "--calib",
        "demo",
        "--calib-samples",
        "1",
        "--calib-seq-len",
        "32",
    ]
    if "--resume" in args:
        base = ["--runs-dir", str(runs_dir)]
    argv = ["prune", *base, *[a.replace("{tmp}", tmp) for a in args]]
    code, _out, err = run_cli(monkeypatch, capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert digest(runs_dir.parent) == before


def test_prune_json_contract_runs_listing_compare_and_export(tmp_path, monkeypatch, capsys):
    runs = str(tmp_path / "runs")
    ids = []
    for searcher in ("greedy", "tail"):
        code, out, _ = run_cli(
            monkeypatch,
            capsys,
            "prune",
            "--model",
            "tiny:gemma3_text",
            "--searcher",
            searcher,
            "--k",
            "2",
            "--runs-dir",
            runs,
            "--calib-samples",
            "2",
            "--calib-seq-len",
            "64",
            "--json",
        )
        assert code == 0
        summary = json.loads(out)
        assert summary["removed"] == sorted(summary["removed"]) and len(summary["removed"]) == 2
        assert {"run", "value", "evaluations", "seconds"} <= set(summary) and summary["report"]["ppl"] > 1
        ids.append(summary["run"])
    code, out, _ = run_cli(monkeypatch, capsys, "runs", "ls", "--runs-dir", runs, "--format", "json")
    assert code == 0 and [r["run"] for r in json.loads(out)] == sorted(ids)
    code, out, _ = run_cli(monkeypatch, capsys, "runs", "compare", *ids, "--runs-dir", runs, "--format", "json")
    rows = json.loads(out)
    assert rows[0]["jaccard_vs_first"] == 1.0 and 0 <= rows[1]["jaccard_vs_first"] <= 1
    assert rows[1]["value_delta"] == pytest.approx(rows[1]["value"] - rows[0]["value"])
    code, out, _ = run_cli(monkeypatch, capsys, "runs", "compare", *ids, "--runs-dir", runs, "--format", "csv")
    assert out.splitlines()[0].startswith("run,state,model")
    code, out, _ = run_cli(monkeypatch, capsys, "export", ids[0], "--out", str(tmp_path / "ckpt"), "--runs-dir", runs)
    info = json.loads(out)
    assert code == 0 and info["run"] == ids[0] and info["verified_max_logit_diff"] < 1e-4
    saved = json.loads((tmp_path / "ckpt/depthprune.json").read_text())
    assert saved["removed"] == json.loads((Path(runs) / ids[0] / "result.json").read_text())["removed"]
    assert saved["run_config"]["searcher"] == "greedy"


@pytest.mark.demo
@pytest.mark.parametrize("name", sorted(SEARCHERS))
def test_every_searcher_runs_on_the_real_demo_model(name, demo, tmp_path):
    protect = list(range(0, 22))  # 8 removable blocks keep this quick on a CPU
    config = PruneConfig(
        model="demo",
        objective=objective_for(name),
        searcher=name,
        k=2,
        protect=protect,
        calib="demo",
        calib_samples=1,
        calib_seq_len=48,
        options=options_for(name),
    )
    _, result = start(config, tmp_path, lm=demo)
    assert len(result["removed"]) == 2 and min(result["removed"]) >= 22
    assert list_runs(tmp_path)[0].state == "finished"


def test_a_search_with_eval_tasks_benchmarks_its_result_and_the_dense_model_once(tmp_path):
    config = PruneConfig(
        model="tiny:llama:6", objective="ppl", searcher="tail", k=2, **SMALL, eval_tasks=["demo-text"], eval_limit=2
    )
    run, result = start(config, tmp_path / "runs")
    scored = [e.removed for e in run.events() if e.kind == "benchmarked"]
    assert scored == [result["removed"], []]  # the result, then its reference
    details = [e.detail for e in run.events() if e.kind == "phase" and e.phase == "benchmarking"]
    assert details[-1].startswith("dense · ")
    resume(run.id, tmp_path / "runs")
    assert [e.removed for e in run.events() if e.kind == "benchmarked"] == scored  # nothing scored twice


def test_resume_refuses_a_model_directory_whose_weights_changed(tmp_path):
    from depthprune.core.loading import load_model
    from depthprune.core.surgery import export_pruned

    model_dir = tmp_path / "model"
    export_pruned(load_model("tiny:llama", device="cpu"), (5,), model_dir)
    config = PruneConfig(model=str(model_dir), objective="ppl", searcher="greedy", k=1, **SMALL)
    _, _, _, provenance = prepare(config)
    run = Run.create(tmp_path / "runs", provenance)
    weights = model_dir / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    with pytest.raises(Exception, match="its revision was 'local:"):
        resume(str(run.path), tmp_path / "runs")
