"""Study mode: the analyses against hand-computed values and the paper's own numbers, the config
parser, and a whole study on a tiny model (resumable, every format, local and Ray executors agree)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depthprune.core.errors import UserError
from depthprune.core.runs import Run
from depthprune.study import analysis as A
from depthprune.study.config import StudyConfig, load_study, parse_study
from depthprune.study.report import FORMATS, best_line, write_report
from depthprune.study.results import collect, open_study
from depthprune.study.runner import run_study


def models(pairs):
    """Rows with the given (ppl_avg, acc_avg) pairs."""
    return [{"ppl_avg": p, "acc_avg": a} for p, a in pairs]


# -- analyses ----------------------------------------------------------------------------------


def test_spearman_and_kendall_match_a_worked_example():
    # ppl ranks 1,2,3,4; accuracy ranks (1 = highest) 1,4,2,3: Σd² = 6, ρ = 1 − 6·6/(4·15) = 0.4;
    # concordant pairs 4, discordant 2: τ = (4 − 2)/6.
    out = A.rank_agreement(models([(10, 40), (20, 10), (30, 30), (40, 20)]))
    assert out["spearman"] == pytest.approx(0.4)
    assert out["kendall"] == pytest.approx(1 / 3)


def test_spearman_uses_average_ranks_for_ties():
    # ppl ranks 1.5,1.5,3,4 vs accuracy ranks 1,4,2,3: Pearson of the ranks = 0.5 / sqrt(4.5·5).
    out = A.rank_agreement(models([(10, 40), (10, 10), (30, 30), (40, 20)]))
    assert out["spearman"] == pytest.approx(0.5 / math.sqrt(22.5))


# The paper's Figure 2: (perplexity rank, accuracy rank) of its seven searchers and the printed ρ.
FIGURE_2 = {
    -0.78: [(1, 6), (5, 3), (5, 3), (4, 5), (1, 6), (3, 2), (7, 1)],
    -0.08: [(7, 2), (3, 5), (3, 5), (3, 5), (1, 4), (2, 1), (6, 3)],
    -0.13: [(5, 5), (2, 2), (2, 2), (4, 4), (1, 6), (7, 1), (6, 7)],
    -0.42: [(5, 1), (4, 2), (2, 6), (1, 4), (2, 6), (6, 5), (7, 3)],
    -0.46: [(3, 2), (7, 3), (1, 7), (2, 6), (4, 1), (5, 5), (6, 4)],
    0.11: [(5, 3), (1, 5), (1, 5), (4, 2), (3, 1), (7, 7), (5, 3)],
}


@pytest.mark.parametrize("rho", list(FIGURE_2))
def test_spearman_reproduces_the_papers_figure_2(rho):
    pairs = [(ppl_rank, -acc_rank) for ppl_rank, acc_rank in FIGURE_2[rho]]  # accuracy rank 1 = highest
    assert round(A.rank_agreement(models(pairs))["spearman"], 2) == rho


def test_rank_agreement_is_undefined_for_constant_rankings():
    assert A.rank_agreement(models([(1, 5), (2, 5), (3, 5)]))["spearman"] is None
    assert A.rank_agreement(models([(1, 5), (2, 6)]))["spearman"] is None


def test_spread_is_the_population_variance_of_the_papers_figure_3():
    # Table 2 average perplexities of the seven searchers; the paper prints σ² = 1.1 and 1015.7.
    llama3_m7 = [19.35, 19.90, 19.90, 19.65, 19.35, 19.61, 22.55]
    qwen3_m9 = [32.42, 27.56, 27.56, 29.72, 27.58, 120.44, 32.42]
    assert round(A.spread(llama3_m7)["var"], 1) == 1.1
    assert round(A.spread(qwen3_m9)["var"], 1) == 1015.7
    s = A.spread([1, 2, 4])
    assert (s["min"], s["max"], s["range"], s["n"]) == (1, 4, 3, 3)
    assert s["mean"] == pytest.approx(7 / 3) and s["var"] == pytest.approx(42 / 27)


def test_variance_decomposition_of_a_two_by_two_grid():
    # cells 1, 3 (ppl) and 5, 7 (margin): grand mean 4, SS_total 20, SS_objective 16, SS_searcher 4.
    rows = [
        {"objective": o, "searcher": s, "acc_avg": v}
        for (o, s), v in {("ppl", "a"): 1, ("ppl", "b"): 3, ("margin", "a"): 5, ("margin", "b"): 7}.items()
    ]
    out = A.variance_decomposition(rows, "acc_avg")
    assert out["objective"] == pytest.approx(0.8) and out["searcher"] == pytest.approx(0.2)
    assert out["interaction"] == pytest.approx(0.0)
    assert A.variance_decomposition(rows[:3], "acc_avg") is None  # incomplete grid


def test_jaccard_matrix_separates_within_and_across_objectives():
    entries = [
        ("ppl", "a", frozenset({1, 2})),
        ("ppl", "b", frozenset({1, 3})),
        ("margin", "a", frozenset({7, 8})),
        ("margin", "b", frozenset({7, 8})),
    ]
    out = A.jaccard_matrix(entries)
    assert out["matrix"][0][1] == pytest.approx(1 / 3) and out["matrix"][2][3] == 1.0
    assert out["within_objective"] == pytest.approx((1 / 3 + 1) / 2)
    assert out["across_objectives"] == 0.0


def test_seed_variation_and_seed_means():
    rows = [
        {
            "model": "m",
            "k": 2,
            "objective": "ppl",
            "searcher": "ga",
            "baseline": False,
            "seed": s,
            "removed": r,
            "value": v,
            "acc_avg": a,
            "ppl_avg": 10.0,
            "seconds": 1.0,
            "evaluations": 5,
            "block_forwards": 9,
            "metrics": {"t": a},
        }
        for s, r, v, a in [(0, [1, 2], 1.0, 50.0), (1, [1, 3], 3.0, 40.0)]
    ]
    (var,) = A.seed_variation(rows)
    assert var["value"] == pytest.approx((2.0, math.sqrt(2))) and var["distinct_sets"] == 2
    (mean,) = A.seed_means(rows)
    assert mean["acc_avg"] == 45.0 and mean["metrics"]["t"] == 45.0 and mean["removed"] == [1, 2]


def test_summarize_reads_primary_metrics_in_percent():
    metrics, acc, ppl = A.summarize(
        {
            "wikitext2": {"ppl": 20.0},
            "lambada": {"ppl": 30.0},
            "arc_easy": {"acc": 0.5, "acc_norm": 0.25, "primary": "acc"},
            "hellaswag": {"acc": 0.1, "acc_norm": 0.3, "primary": "acc_norm"},
        }
    )
    assert metrics == {"wikitext2": 20.0, "lambada": 30.0, "arc_easy": 50.0, "hellaswag": 30.0}
    assert acc == 40.0 and ppl == 25.0


def test_mask_text_marks_removed_layers_with_a_glyph():
    text = A.mask_text([("ppl", "greedy", frozenset({0, 11})), ("margin", "beam", frozenset({5}))], 12)
    lines = text.split("\n")
    assert lines[1].endswith("012345678901")
    assert lines[2].endswith("█··········█") and lines[3].endswith("·····█······")


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table, message",
    [
        ({}, "needs a name"),
        ({"name": "a b"}, "must be letters"),
        ({"name": "s", "searcher": ["greedy"]}, "unknown key 'searcher'"),
        ({"name": "s", "k": [0]}, "k 0 should be an integer ≥ 1"),
        ({"name": "s", "k": "4"}, "k = '4' should be list"),
        ({"name": "s", "searchers": ["greedy", "greedy"]}, "listed twice"),
        ({"name": "s", "searchers": ["nope"]}, "unknown searcher 'nope'"),
        ({"name": "s", "objectives": ["ppl", "bleu"]}, "unknown objective 'bleu'"),
        ({"name": "s", "objectives": ["mix:ppl=1,bleu=1"]}, "unknown term 'bleu'"),
        ({"name": "s", "objectives": ["mix:ppl=1", "mix:ppl=1"]}, "objective listed twice"),
        ({"name": "s", "calibration": {"mix:ppl=0": {}}}, "weight '0' of ppl must be a finite number > 0"),
        ({"name": "s", "options": {"ga": {"population": 0}}}, "bad value 0 for option 'population'"),
        ({"name": "s", "options": {"ga": {"popsize": 3}}}, "unknown option 'popsize'"),
        ({"name": "s", "evaluation": {"tasks": ["mmlu"]}}, "unknown evaluation task 'mmlu'"),
        ({"name": "s", "evaluation": {"limit": True}}, "limit = True should be an integer"),
        ({"name": "s", "executor": {"kind": "slurm"}}, "kind 'slurm'"),
        ({"name": "s", "calibration": {"bleu": {}}}, "[calibration.bleu]"),
        ({"name": "s", "searchers": ["tail"], "baselines": ["tail"]}, "both as searcher and baseline"),
        ({"name": "s", "data_dir": "/no/such/dir"}, "data_dir '/no/such/dir'"),
        ({"name": "s", "heal": ["prune-harder"]}, "unknown heal method 'prune-harder'; available: linear, lora"),
        ({"name": "s", "heal": "linear"}, "heal = 'linear' should be list"),
        ({"name": "s", "heal": ["linear", "linear"]}, "heal method listed twice"),
        ({"name": "s", "heal_options": {"retrain": {}}}, "[heal_options.retrain] is not a heal method table"),
        (
            {"name": "s", "heal_options": {"lora": {"epochs": 3}}},
            "unknown key 'epochs' in study.toml [heal_options.lora]",
        ),
        ({"name": "s", "heal_options": {"lora": {"steps": 0}}}, "[heal_options.lora]: steps = 0 should be at least 1"),
        ({"name": "s", "heal_options": {"lora": {"lr": 0}}}, "[heal_options.lora]: lr = 0 should be above 0"),
        ({"name": "s", "heal_options": {"lora": {"rank": 2.5}}}, "rank = 2.5 should be an integer"),
        ({"name": "s", "heal_options": {"linear": {"ridge": -1}}}, "ridge = -1 should be at least 0"),
        ({"name": "s", "heal_options": {"linear": {"calib_samples": 0}}}, "calib_samples = 0 should be at least 1"),
        ({"name": "s", "heal_options": {"linear": {"ridge": float("inf")}}}, "ridge = inf should be a finite number"),
    ],
)
def test_bad_study_tables_name_the_value_and_the_source(table, message):
    with pytest.raises(UserError) as err:
        parse_study(table, "study.toml")
    assert message in str(err.value) and "study.toml" in str(err.value)


def test_a_mix_objective_is_a_study_axis_with_a_plain_run_name_and_its_own_calibration(tmp_path):
    mix = "mix:ppl=0.5,margin=0.5"
    config = tiny_study(
        objectives=["ppl", mix],
        searchers=["greedy"],
        baselines=[],
        k=[2],
        seeds=[0],
        calibration={mix: {"source": "demo", "samples": 3, "seq_len": 64}},
        evaluation={"tasks": ["demo-text"], "windows": 2, "seq_len": 64},
    )
    summary = run_study(config, tmp_path)
    assert summary["cells"] == summary["searched"] == 2
    (cell,) = [c for c in config.cells() if c.objective == mix]
    assert cell.run_name("tiny") == "tiny--tiny-llama-8-mix-ppl-0-5-margin-0-5-greedy-k2-s0"
    run = Run.open(tmp_path / cell.run_name("tiny"))
    assert run.config["objective"]["objective"] == mix and run.result() is not None
    assert {t["samples"] for t in run.config["calibration"]["terms"].values()} == {3}


def test_malformed_toml_names_the_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("name = 'x'\nk = [4,\n")
    with pytest.raises(UserError, match=r"s\.toml: malformed TOML"):
        load_study(path)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "name",
                "models",
                "objectives",
                "searchers",
                "k",
                "seeds",
                "protect",
                "batch_size",
                "evaluation",
                "executor",
                "options",
                "bogus",
            ]
        ),
        st.recursive(
            st.none() | st.booleans() | st.integers(-3, 40) | st.text(max_size=6),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
            max_leaves=6,
        ),
    )
)
def test_the_config_parser_accepts_or_names_the_problem(table):
    """Any TOML-shaped table either parses into a valid grid or raises one UserError."""
    try:
        config = parse_study(table, "study.toml")
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert config.cells() and all(c.k >= 1 for c in config.cells())


# -- a whole study on a tiny model -----------------------------------------------------------------


def tiny_study(**changes) -> StudyConfig:
    table = {
        "name": "tiny",
        "models": ["tiny:llama:8"],
        "objectives": ["ppl", "margin"],
        "searchers": ["oneshot", "greedy", "ga"],
        "k": [2, 3],
        "seeds": [0, 1],
        "options": {"ga": {"population": 4, "generations": 2}},
        "evaluation": {"tasks": ["demo-text", "demo-mc"], "limit": 12, "windows": 2, "seq_len": 64},
    }
    return parse_study(table | changes, "test")


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("runs")
    config = tiny_study()
    summary = run_study(config, runs_dir)
    return config, runs_dir, summary


def outcome(config, runs_dir):
    return {c.run_name(config.name): Run.open(runs_dir / c.run_name(config.name)).result() for c in config.cells()}


def test_a_study_runs_every_cell_and_evaluates_every_distinct_model(finished_study):
    config, runs_dir, summary = finished_study
    cells = config.cells()
    # 2 k × 2 objectives × (oneshot + greedy + tail + ga×2 seeds + random×2 seeds)
    assert len(cells) == summary["cells"] == summary["searched"] == 2 * 2 * 7
    results = outcome(config, runs_dir)
    distinct = {tuple(r["removed"]) for r in results.values()}
    assert summary["models_evaluated"] == len(distinct) + 1  # + the dense model
    for cell in cells:
        run = Run.open(runs_dir / cell.run_name(config.name))
        assert len(results[run.id]["removed"]) == cell.k
        (evaluated,) = [e for e in run.events() if e.kind == "benchmarked"]
        assert evaluated.removed == results[run.id]["removed"]
        assert set(evaluated.tasks) == {"demo-text", "demo-mc"}


def test_running_a_study_again_skips_what_is_done(finished_study):
    config, runs_dir, _ = finished_study
    before = outcome(config, runs_dir)
    again = run_study(config, runs_dir)
    assert again["searched"] == 0 and again["evaluations_run"] == 0
    assert outcome(config, runs_dir) == before
    for cell in config.cells():  # no second `evaluated` event either
        run = Run.open(runs_dir / cell.run_name(config.name))
        assert sum(e.kind == "benchmarked" for e in run.events()) == 1


def test_the_report_holds_every_analysis_in_every_format(finished_study, tmp_path):
    config, runs_dir, _ = finished_study
    data = collect(config, runs_dir)
    assert not data["missing"] and len(data["rows"]) == len(config.cells())
    paths = {fmt: write_report(config, data, fmt, tmp_path) for fmt in FORMATS}
    md = paths["md"].read_text()
    for heading in (
        "models pruned for `ppl`",
        "models pruned for `margin`",
        ": removed layers\n",
        "perplexity rank vs accuracy rank",
        "spread across searchers",
        "search cost",
        "Jaccard overlap",
        "variance decomposition",
        "seed-to-seed variation",
    ):
        assert md.count(heading) == 2, heading  # one per budget
    assert "| dense |" in md and "random (baseline) ×2 seeds" in md and "tail (baseline)" in md
    assert (tmp_path / "masks-tiny-llama-8-k2.png").stat().st_size > 1000
    report = json.loads(paths["json"].read_text())
    group = report["groups"][0]
    assert group["tables"]["ppl"][0]["searcher"] == "dense"
    for row in group["tables"]["ppl"][1:]:
        cell = next(
            r
            for r in data["rows"]
            if (r["objective"], r["searcher"], r["k"], r["seed"]) == ("ppl", row["searcher"].split()[0], group["k"], 0)
        )
        assert len(row["removed"]) == group["k"] and row["removed"] == cell["removed"]
    csv_lines = paths["csv"].read_text().strip().split("\n")
    assert len(csv_lines) == 1 + 1 + len(config.cells())  # header, dense, cells
    assert "<table>" in paths["html"].read_text()


def test_open_study_by_name_finds_the_stored_configuration(finished_study):
    config, runs_dir, _ = finished_study
    stored, folder = open_study("tiny", runs_dir)
    assert stored.cells() == config.cells() and folder == runs_dir / "studies" / "tiny"
    with pytest.raises(UserError, match="study 'nope'"):
        open_study("nope", runs_dir)


def test_worker_processes_give_the_same_study(finished_study, tmp_path):
    config, runs_dir, _ = finished_study
    small = tiny_study(k=[2], executor={"kind": "local", "workers": 2})
    run_study(small, tmp_path / "runs")
    reference = outcome(config, runs_dir)
    for name, result in outcome(small, tmp_path / "runs").items():
        assert (result["removed"], result["value"]) == (reference[name]["removed"], reference[name]["value"])
    noted = [json.loads(line) for line in (tmp_path / "runs/studies" / small.name / "workers.jsonl").open()]
    assert sorted(n["cell"] for n in noted) == sorted(c.run_name(small.name) for c in small.cells())
    for n in noted:  # each cell names the worker process that searched it (on CPU: no GPU list)
        assert n["pid"] != os.getpid() and n["gpus"] is None
        assert Run.open(tmp_path / "runs" / n["cell"]).config["pid"] == n["pid"]


def test_ray_tasks_give_the_same_study(finished_study, tmp_path):
    import ray  # the ray extra: installed by make test

    config, runs_dir, _ = finished_study
    small = tiny_study(k=[3], executor={"kind": "ray"})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run_study(small, tmp_path / "runs")
    finally:
        ray.shutdown()
    reference = outcome(config, runs_dir)
    for name, result in outcome(small, tmp_path / "runs").items():
        assert (result["removed"], result["value"]) == (reference[name]["removed"], reference[name]["value"])


def test_sigterm_stops_a_study_and_running_it_again_finishes_it(tmp_path):
    """SIGTERM acts as Ctrl-C: the cell in flight is marked stopped, exit code 130; the same command
    then resumes that cell and completes the grid."""
    import signal
    import subprocess
    import sys
    import time

    argv = [
        sys.executable,
        "-m",
        "depthprune.cli",
        "study",
        "--name",
        "long",
        "--models",
        "tiny:llama:12",
        "--objectives",
        "ppl",
        "--searchers",
        "exhaustive",
        "--k",
        "4",
        "--eval-tasks",
        "demo-text",
        "--eval-limit",
        "1",
        "--runs-dir",
        str(tmp_path),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cell = tmp_path / "long--tiny-llama-12-ppl-exhaustive-k4-s0"
    events = cell / "events.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not events.is_file() or events.read_text().count('"candidate"') < 5):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Run the same command to continue" in err and "Traceback" not in err
    assert Run.open(cell).state == "stopped"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert Run.open(cell).state == "finished"
    starts = [e for e in Run.open(cell).events() if e.kind == "started"]
    assert len(starts) == 2 and starts[1].resumed_evaluations >= 5  # continued, not restarted


# -- one calibration set per (model, objective); checks before the first cell; analyses apart --------


def test_every_cell_of_a_model_objective_group_records_the_same_calibration_hash(finished_study):
    config, runs_dir, _ = finished_study
    hashes: dict = {}
    for cell in config.cells():
        calibration = Run.open(runs_dir / cell.run_name(config.name)).config["calibration"]
        hashes.setdefault((cell.model, cell.objective), set()).add((calibration["hash"], calibration["seed"]))
    assert len(hashes) == 2 and all(len(h) == 1 for h in hashes.values()), hashes
    assert len({h for hs in hashes.values() for h in hs}) == 2, "ppl and margin calibrate on different data"


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_the_search_seed_never_draws_the_calibration_items(seed, tmp_path, monkeypatch):
    """The seed handed to the question sampler is the calibration seed, whatever the search seed
    (seeds 0 and 1 used to calibrate `margin` on disjoint commonsense questions)."""
    import depthprune.objectives as objectives
    from depthprune.pipeline.prune import PruneConfig, start

    drawn = []
    real = objectives.calibration_questions

    def recording(source, data_dir, n, seed=0):
        drawn.append(seed)
        return real(source, data_dir, n, seed)

    monkeypatch.setattr(objectives, "calibration_questions", recording)
    config = PruneConfig(
        model="tiny:llama:4",
        objective="margin",
        searcher="ga",
        k=1,
        seed=seed,
        calib="demo",
        calib_samples=4,
        calib_seq_len=64,
        options={"population": 2, "generations": 1},
    )
    run, _ = start(config, tmp_path)
    assert drawn == [0] and run.config["calibration"]["seed"] == 0


def test_a_refused_rerun_leaves_the_study_file_untouched(finished_study):
    config, runs_dir, _ = finished_study
    path = runs_dir / "studies" / config.name / "study.json"
    before = path.read_bytes()
    changed = tiny_study(options={"ga": {"population": 6, "generations": 2}})
    with pytest.raises(UserError, match="was run with options"):
        run_study(changed, runs_dir)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"k": [2, 10]}, r"k=10 \(from study 'tiny' k = 10 for tiny:llama:8\) must be smaller"),
        (
            {"evaluation": {"tasks": ["demo-text"], "seq_len": 4096}},
            r"sequence length 4096 \(from study 'tiny' \[evaluation\] seq_len\)",
        ),
        ({"calibration": {"ppl": {"seq_len": 5000}}}, r"\[calibration.ppl\] seq_len"),
    ],
)
def test_model_dependent_study_settings_are_refused_before_the_first_cell(changes, message, tmp_path):
    with pytest.raises(UserError, match=message):
        run_study(tiny_study(**changes), tmp_path)
    assert not any(tmp_path.iterdir()), "nothing may be written before the grid is known to be valid"


@pytest.mark.parametrize(
    "table,message",
    [
        ({"evaluation": {"limit": 0}}, "limit = 0 should be at least 1"),
        ({"evaluation": {"seq_len": -5}}, "seq_len = -5 should be at least 2"),
        ({"calibration": {"ppl": {"samples": 0}}}, "samples = 0 should be at least 1"),
        ({"options": {"ga": {"tau": 0}}}, r"test \[options.ga\].tau"),
        ({"options": {"anneal": {"final_ratio": 0}}}, r"\[options.anneal\].final_ratio"),
    ],
)
def test_evaluation_calibration_and_option_values_are_checked_when_the_study_is_read(table, message):
    with pytest.raises(UserError, match=message):
        parse_study({"name": "s", **table}, "test")


def test_jaccard_means_are_over_searchers_and_baselines_are_reported_apart():
    entries = [
        ("ppl", "a", frozenset({1, 2})),
        ("ppl", "b", frozenset({1, 3})),
        ("ppl", "random", frozenset({5, 6})),
        ("margin", "a", frozenset({1, 2})),
        ("margin", "b", frozenset({7, 8})),
        ("margin", "random", frozenset({1, 2})),
    ]
    out = A.jaccard_matrix(entries, frozenset({"random"}))
    assert out["within_objective"] == pytest.approx((1 / 3 + 0.0) / 2)  # ppl a-b, margin a-b
    assert out["across_objectives"] == pytest.approx((0.0 + 1 / 3) / 2)  # ppl a-margin b, ppl b-margin a
    # baselines with a searcher: within ppl 0, 0; within margin 1, 0; across: random(ppl) vs margin a, b and
    # random(margin) vs ppl a, b
    assert out["baseline_within_objective"] == pytest.approx((0 + 0 + 1 + 0) / 4)
    assert out["baseline_across_objectives"] == pytest.approx((0 + 0 + 1 + 1 / 3) / 4)


def test_the_cost_table_shows_memo_served_candidates_apart():
    rows = [
        {
            "model": "m",
            "k": 2,
            "objective": "ppl",
            "searcher": s,
            "baseline": False,
            "seed": 0,
            "removed": [1, 2],
            "value": 1.0,
            "acc_avg": None,
            "ppl_avg": None,
            "seconds": 1.0,
            "evaluations": e,
            "cached_from_memo": c,
            "block_forwards": 10,
            "metrics": {},
        }
        for s, e, c in [("greedy", 11, 0), ("beam", 4, 7)]
    ]
    cost = {c["searcher"]: c for c in A.cost_table(rows, "m", 2)}
    assert (cost["beam"]["evaluations"], cost["beam"]["served_by_memo"], cost["beam"]["candidates"]) == (4, 7, 11)
    assert cost["greedy"]["candidates"] == 11


# -- healing in a study: pruned vs healed on the same suite ------------------------------------------


def heal_rows(cells):
    """Rows of one (model, k) with pruned and `linear`-healed averages: (objective, searcher, removed,
    pruned, healed) -> a row as `results.collect` makes it."""
    return [
        {
            "objective": o,
            "searcher": s,
            "seed": 0,
            "removed": removed,
            "acc_avg": pruned,
            "ppl_avg": None,
            "healed": {"linear": {"acc_avg": healed, "ppl_avg": None}},
        }
        for o, s, removed, pruned, healed in cells
    ]


def test_best_after_healing_says_when_recovery_changes_the_best_removed_set():
    # pruned accuracy ranks the sets a > b > c; healing reverses it: ρ = -1 and the best set changes.
    rows = heal_rows(
        [
            ("ppl", "greedy", [1, 2], 40.0, 41.0),
            ("margin", "beam", [3, 4], 35.0, 45.0),
            ("ppl", "tail", [6, 7], 30.0, 50.0),
            ("margin", "greedy", [1, 2], 40.0, 41.0),  # the same set found twice is one candidate
        ]
    )
    flipped = A.best_after_healing(rows, "linear", "acc_avg")
    assert flipped["changed"] and flipped["n"] == 3 and flipped["spearman"] == pytest.approx(-1.0)
    assert flipped["pruned"]["removed"] == [1, 2] and flipped["pruned"]["cells"] == ["ppl greedy", "margin greedy"]
    assert (flipped["healed"]["removed"], flipped["healed"]["healed"]) == ([6, 7], 50.0)
    assert "linear, acc_avg: yes" in best_line(flipped)
    # healing lifts every set but keeps a first: no change, ρ = 0.5 (ranks 1,2,3 vs 1,3,2)
    kept = A.best_after_healing(
        heal_rows(
            [
                ("ppl", "greedy", [1, 2], 40.0, 60.0),
                ("ppl", "beam", [3, 4], 35.0, 45.0),
                ("ppl", "tail", [6, 7], 30.0, 50.0),
            ]
        ),
        "linear",
        "acc_avg",
    )
    assert not kept["changed"] and kept["pruned"]["removed"] == kept["healed"]["removed"] == [1, 2]
    assert kept["spearman"] == pytest.approx(0.5)
    assert "linear, acc_avg: no: [1, 2] (ppl greedy) is best pruned (40) and healed (60)" in best_line(kept)
    # lower perplexity is better
    ppl = [
        {
            **r,
            "acc_avg": None,
            "ppl_avg": r["acc_avg"],
            "healed": {"linear": {"ppl_avg": r["healed"]["linear"]["acc_avg"]}},
        }
        for r in rows
    ]
    assert A.best_after_healing(ppl, "linear", "ppl_avg")["pruned"]["removed"] == [6, 7]
    assert A.best_after_healing(rows, "lora", "acc_avg") is None  # nothing healed by lora


def heal_study(**changes) -> StudyConfig:
    table = {"objectives": ["ppl"], "searchers": ["oneshot", "greedy"], "k": [2], "seeds": [0], "protect": [0]}
    return tiny_study(**table | changes)


@pytest.fixture(scope="module")
def healed_study(tmp_path_factory):
    """The study searched and benchmarked first, then run again with heal = ["linear"]."""
    runs_dir = tmp_path_factory.mktemp("healed")
    plain = run_study(heal_study(), runs_dir)
    config = heal_study(heal=["linear"])
    return config, runs_dir, plain, run_study(config, runs_dir)


def healed_events(config, runs_dir) -> dict[str, list]:
    return {
        c.run_name(config.name): [
            e for e in Run.open(runs_dir / c.run_name(config.name)).events() if e.kind == "healed"
        ]
        for c in config.cells()
    }


def test_a_study_heals_every_distinct_removed_set_and_scores_it_on_the_suite(healed_study):
    config, runs_dir, plain, summary = healed_study
    assert plain["heals"] == 0 and summary["searched"] == 0 and summary["evaluations_run"] == 0
    results = outcome(config, runs_dir)
    distinct = {tuple(r["removed"]) for r in results.values()}
    assert summary["heals"] == summary["heals_run"] == len(distinct) >= 2
    kept = sorted(p.name for p in (runs_dir / "studies" / config.name).iterdir())
    assert kept == ["evaluations.jsonl", "items", "study.json", "workers.jsonl"]  # no heal state left behind
    data = collect(config, runs_dir)
    for name, events in healed_events(config, runs_dir).items():
        (event,) = events
        (benchmarked,) = [e for e in Run.open(runs_dir / name).events() if e.kind == "benchmarked"]
        assert event.method == "linear" and event.removed == results[name]["removed"] and event.out is None
        assert event.before == benchmarked.tasks and set(event.after) == {"demo-text", "demo-mc"}
        assert event.after["demo-text"]["ppl"] != event.before["demo-text"]["ppl"]  # the healed model differs
        row = next(r for r in data["rows"] if r["run"] == name)
        assert row["healed"]["linear"]["ppl_avg"] == pytest.approx(event.after["demo-text"]["ppl"])


def test_a_study_heal_scores_what_depthprune_heal_scores(healed_study, tmp_path):
    """The study's healed perplexity of one removed set equals `heal`'s own after-healing score."""
    from depthprune.core.loading import load_model
    from depthprune.heal.pipeline import HealRequest, heal

    config, runs_dir, _, _ = healed_study
    (event, *_), *_ = healed_events(config, runs_dir).values()
    record = heal(
        load_model("tiny:llama:8", device="cpu"),
        HealRequest(
            method="linear",
            removed=event.removed,
            out=tmp_path / "healed",
            eval_tasks=["demo-text"],
            eval_limit=config.evaluation["windows"],
            eval_seq_len=config.evaluation["seq_len"],
            batch_size=config.batch_size,
        ),
    )
    assert record["data_hash"] == event.data_hash
    assert record["after"]["demo-text"]["ppl"] == pytest.approx(event.after["demo-text"]["ppl"], rel=1e-5)
    assert record["before"]["demo-text"]["ppl"] == pytest.approx(event.before["demo-text"]["ppl"], rel=1e-5)


def test_running_a_healed_study_again_redoes_no_heal(healed_study):
    config, runs_dir, _, _ = healed_study
    before = healed_events(config, runs_dir)
    again = run_study(config, runs_dir)
    assert (again["searched"], again["evaluations_run"], again["heals_run"]) == (0, 0, 0)
    assert healed_events(config, runs_dir) == before and all(len(e) == 1 for e in before.values())


def test_the_report_compares_pruned_and_healed(healed_study, tmp_path):
    config, runs_dir, _, _ = healed_study
    data = collect(config, runs_dir)
    md = write_report(config, data, "md", tmp_path).read_text()
    assert md.count("pruned vs healed") == 1 and md.count("does healing change which removed set is best?") == 1
    assert "| objective | searcher | seed | removed | acc_avg | linear_acc_avg | ppl_avg | linear_ppl_avg |" in md
    best = A.best_after_healing(data["rows"], "linear", "ppl_avg")
    assert best_line(best) in md and f"linear, ppl_avg: {'yes' if best['changed'] else 'no'}:" in md
    healing = json.loads(write_report(config, data, "json", tmp_path).read_text())["groups"][0]["healing"]
    assert healing["best"][1] == json.loads(json.dumps(best))
    for row, cell in zip(healing["table"], data["rows"]):
        assert (row["removed"], row["ppl_avg"]) == (cell["removed"], cell["ppl_avg"])
        assert row["linear_ppl_avg"] == cell["healed"]["linear"]["ppl_avg"] != cell["ppl_avg"]
    header = write_report(config, data, "csv", tmp_path).read_text().split("\n")[0].split(",")
    assert "linear_acc_avg" in header and "linear_ppl_avg" in header


def test_the_report_pairs_each_healed_model_with_its_pruned_one_on_the_same_items(healed_study, tmp_path):
    from depthprune.study.report import build
    from depthprune.study.uncertainty import METRICS as U_METRICS

    config, runs_dir, _, _ = healed_study
    data = collect(config, runs_dir, with_items=True)
    table = build(config, data)["groups"][0]["healing"]["table"]
    for row, cell in zip(table, data["rows"]):
        d = row["linear_vs_pruned"]["ppl_avg"]
        assert d["diff"] == pytest.approx(cell["healed"]["linear"]["ppl_avg"] - cell["ppl_avg"], rel=1e-6)
        assert d["low"] <= d["diff"] <= d["high"] and 0 < d["p"] <= 1
    md = write_report(config, data, "md", tmp_path).read_text()
    section = md.split("healed − pruned, paired on the same items")[1].split("\n## ")[0]
    assert section.count(" p = ") == len(table) * len(U_METRICS)
    assert "healed − pruned, paired" in write_report(config, collect(config, runs_dir), "md", tmp_path).read_text()


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"models": ["tiny:gemma2:8"]}, r"heal = \['linear'\]: linear healing cannot be fused exactly into gemma2"),
        ({"protect": []}, r"heal = \['linear'\]: .* add protect = \[0\] to the study"),
    ],
)
def test_a_heal_that_cannot_apply_is_refused_before_the_first_cell(changes, message, tmp_path):
    with pytest.raises(UserError, match=message):
        run_study(heal_study(heal=["linear"], **changes), tmp_path)
    assert not any(tmp_path.iterdir()), "nothing may be written before the grid is known to be valid"


def test_a_bad_heal_key_in_a_study_file_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from .test_cli import run_cli

    path = tmp_path / "s.toml"
    path.write_text('name = "s"\nmodels = ["tiny:llama:8"]\nheal = ["retrain"]\n')
    code, out, err = run_cli(monkeypatch, capsys, "study", "--config", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and out == ""
    assert err.strip() == f"error: {path}: unknown heal method 'retrain'; available: linear, lora"
    assert not (tmp_path / "runs").exists()


# -- per-item results and intervals ----------------------------------------------------------------


def test_every_study_evaluation_stores_per_item_results_that_give_back_its_scores(finished_study):
    from depthprune.core.evaluate import perplexity_of, shares
    from depthprune.core.items import read_items

    config, runs_dir, _ = finished_study
    folder = runs_dir / "studies" / config.name
    rows = [json.loads(line) for line in (folder / "evaluations.jsonl").read_text().splitlines()]
    for row in rows:
        items = read_items(folder, row["items"], "test")
        assert perplexity_of(items["demo-text"]["nll"], items["demo-text"]["tokens"]) == row["tasks"]["demo-text"]
        assert shares(items["demo-mc"])["acc"] == row["tasks"]["demo-mc"]["acc"]
    for cell in config.cells():  # each cell's run holds its own copy, named by its benchmarked event
        run = Run.open(runs_dir / cell.run_name(config.name))
        (event,) = [e for e in run.events() if e.kind == "benchmarked"]
        row = next(r for r in rows if r["removed"] == event.removed)
        assert read_items(run.path, event.items, "test") == read_items(folder, row["items"], "test")
    assert all(s is not None for s in collect(config, runs_dir, with_items=True)["samples"].values())


def test_the_report_of_a_study_from_before_per_item_files_shows_intervals_unavailable(finished_study, tmp_path):
    import shutil

    config, runs_dir, _ = finished_study
    old = tmp_path / "runs"
    shutil.copytree(runs_dir / "studies", old / "studies")
    for cell in config.cells():
        shutil.copytree(runs_dir / cell.run_name(config.name), old / cell.run_name(config.name))
    path = old / "studies" / config.name / "evaluations.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "items"}) + "\n" for r in rows))
    data = collect(config, old, with_items=True)
    assert set(data["samples"].values()) == {None}
    md = write_report(config, data, "md", tmp_path / "out").read_text()
    assert "## Findings of the seed paper" in md and "n/a" in md
    assert md.count("95 % intervals of the `ppl`-pruned models") == 2


def test_a_per_item_file_named_outside_the_study_is_refused(finished_study, tmp_path):
    import shutil

    config, runs_dir, _ = finished_study
    folder = tmp_path / "runs" / "studies" / config.name
    shutil.copytree(runs_dir / "studies" / config.name, folder)
    path = folder / "evaluations.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["items"] = "../../../../etc/passwd"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match="lies outside"):
        collect(config, tmp_path / "runs", with_items=True)


def test_cross_objective_table_averages_each_objectives_sets_and_measures_the_gap_to_the_best():
    from depthprune.study.analysis import cross_objective

    def row(objective, searcher, acc, ppl, seed=0, baseline=False):
        return {
            "model": "m",
            "k": 2,
            "objective": objective,
            "searcher": searcher,
            "seed": seed,
            "baseline": baseline,
            "removed": [1, 2],
            "metrics": {},
            **dict.fromkeys(("value", "seconds", "evaluations", "cached_from_memo", "block_forwards"), 0),
            "acc_avg": acc,
            "ppl_avg": ppl,
        }

    rows = [
        row("ppl", "greedy", 40.0, 20.0),
        row("ppl", "ga", 44.0, 22.0, seed=0),
        row("ppl", "ga", 48.0, 26.0, seed=1),  # seeds averaged first: ga counts once, 46 / 24
        row("margin", "greedy", 50.0, 30.0),
        row("margin", "tail", 10.0, 90.0, baseline=True),  # baselines are not an objective's choice
    ]
    table = {r["objective"]: r for r in cross_objective(rows)}
    assert table["ppl"]["searchers"] == 2 and table["ppl"]["acc_avg"] == 43.0 and table["ppl"]["ppl_avg"] == 22.0
    assert table["margin"]["acc_avg"] == 50.0 and table["margin"]["ppl_avg"] == 30.0
    assert table["ppl"]["acc_gap"] == 7.0 and table["margin"]["acc_gap"] == 0.0  # choosing by ppl costs accuracy
    assert table["margin"]["ppl_gap"] == 8.0 and table["ppl"]["ppl_gap"] == 0.0


def test_a_study_heals_with_its_heal_options_and_refuses_to_mix_other_options_into_its_store(tmp_path):
    from depthprune.study.runner import study_dir

    lora = {"steps": 2, "rank": 2, "batch_size": 1, "lr": 1e-3, "calib_samples": 3, "calib_seq_len": 24}
    table = {"searchers": ["greedy"], "baselines": [], "heal": ["lora"], "heal_options": {"lora": lora}}
    config = heal_study(**table)
    summary = run_study(config, tmp_path)
    assert summary["heals"] == summary["heals_run"] == 1
    (healed,) = [
        r
        for r in map(json.loads, (study_dir(tmp_path, "tiny") / "evaluations.jsonl").read_text().splitlines())
        if r.get("heal")
    ]
    assert healed["heal"]["options"] == lora and healed["heal"]["steps"] == 2
    assert len(healed["heal"]["losses"]) == 2 and healed["heal"]["settings"]["rank"] == 2
    assert (healed["heal"]["calibration"]["samples"], healed["heal"]["calibration"]["seq_len"]) == (3, 24)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in study_dir(tmp_path, "tiny").iterdir())
    changed = heal_study(**table | {"heal_options": {"lora": {**lora, "steps": 3}}})
    with pytest.raises(
        UserError, match=r"healed by lora with \[heal_options.lora\] .*'steps': 2.*now asks for .*'steps': 3"
    ):
        run_study(changed, tmp_path)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in study_dir(tmp_path, "tiny").iterdir()) == before


def test_the_committed_reproduction_study_files_parse_and_read_the_shared_benchmark_files():
    repo = Path(__file__).resolve().parents[1]
    files = sorted((repo / "docs" / "reproduction").rglob("*.toml"))
    assert [f.relative_to(repo / "docs" / "reproduction").as_posix() for f in files] == [
        "gemma3/study.toml",
        "smollm2/healed.toml",
        "smollm2/pareto.toml",
        "smollm2/study.toml",
    ]
    for f in files:
        config = load_study(f)
        assert config.cells() and Path(config.data_dir) == (repo.parent / "shared" / "data").resolve()
