"""The Study view model on the fixture study of conftest (11 of 16 cells finished, 9 of 10 models
evaluated): progress, the report's tables as shown, and unreadable files as problems."""

import json

from depthprune.study.results import open_study
from depthprune.study.runner import study_dir
from depthprune.tui.study_view import (
    agreement_lines,
    cost_table,
    list_studies,
    load,
    progress,
    results_table,
)

from .conftest import STUDY


def group(view, k):
    return next(g for g in view.groups if g["k"] == k)


def test_studies_are_listed_by_name(recorded_study, tmp_path):
    assert list_studies(recorded_study) == [STUDY]
    assert list_studies(tmp_path / "nowhere") == []


def test_progress_counts_cells_by_state_and_the_models_known_so_far(recorded_study):
    config, _ = open_study(STUDY, recorded_study)
    grid = progress(config, recorded_study)
    assert grid.cells == {
        "finished": 11,
        "running": 0,
        "stopped": 1,
        "incomplete": 1,
        "not started": 3,
        "unreadable": 0,
    }
    # dense + 6 distinct k=2 sets + 3 k=3 sets needed; {4,5,6} (ppl tail k=3) not scored yet
    assert (grid.models_evaluated, grid.models_needed) == (9, 10)
    assert grid.line() == "cells 11/16 finished · 1 stopped · 1 incomplete · 3 not started · models evaluated 9/10"
    assert grid.others_text() == "1 stopped · 1 incomplete · 3 not started"


def test_report_groups_hold_the_scored_cells_only(recorded_study):
    view = load(STUDY, recorded_study)
    assert view.problem is None
    assert [(g["k"], list(g["tables"])) for g in view.groups] == [(2, ["ppl", "margin"]), (3, ["ppl"])]
    header, rows = results_table(group(view, 3), "ppl")
    assert header == ["searcher", "removed", "demo-text", "demo-mc", "acc avg", "ppl avg", "value"]
    assert [r[:2] for r in rows] == [["dense", "—"], ["oneshot", "2,3,4"], ["greedy", "3,4,5"]]  # tail k=3 unscored
    assert load(STUDY, recorded_study, with_report=False).report is None


def test_table_rows_show_the_suite_scores_in_percent_and_perplexity(recorded_study):
    _, rows = results_table(group(load(STUDY, recorded_study), 2), "ppl")
    # conftest.suite_scores: dense ppl 20, acc 0.5; {3,4}: ppl 20 + 8·(0.1375 + 0.1) + 1 = 22.9, acc 0.5 − 0.06 − 0.03
    assert rows[0] == ["dense", "—", "20", "50", "50", "20", "—"]
    assert rows[1] == ["oneshot", "3,4", "22.9", "41", "41", "22.9", "10.285"]
    assert [r[0] for r in rows] == ["dense", "oneshot", "greedy", "beam", "tail (baseline)"]


def test_rank_agreement_spread_and_cost_of_one_objective(recorded_study):
    k2 = group(load(STUDY, recorded_study), 2)
    # ppl: oneshot (22.9, 41), greedy (23.8, 44), beam (25.1, 43). ppl ranks 1 2 3, accuracy ranks 3 1 2:
    # Σd² = 4 + 1 + 1 = 6, ρ = 1 − 6·6 / (3·8) = −0.5; pairs: 1 concordant, 2 discordant, τ = −1/3.
    # σ² of accuracy: mean 128/3, deviations −5/3, 4/3, 1/3 → (25 + 16 + 1) / 27 = 1.5556
    assert agreement_lines(k2, "ppl")[:2] == [
        "perplexity rank vs accuracy rank (3 models): Spearman ρ -0.500 · Kendall τ -0.333",
        "spread of acc avg across 3 searchers: σ² 1.5556 · range 3 · mean 42.667",
    ]
    assert cost_table(k2, "margin") == (
        ["searcher", "seconds", "evaluations", "block-forwards"],
        [
            ["oneshot", "2.5", "9", "54"],
            ["greedy", "6", "15", "90"],
            ["beam", "14", "41", "246"],
            ["tail", "0.5", "1", "6"],
        ],
    )
    k3 = group(load(STUDY, recorded_study), 3)
    assert (
        agreement_lines(k3, "ppl")[0]
        == "perplexity rank vs accuracy rank: — (2 models; needs ≥ 3 with differing scores)"
    )


def test_a_study_without_runs_is_all_not_started_and_has_no_report(recorded_study, tmp_path):
    runs_dir = tmp_path / "empty"
    study_dir(runs_dir, STUDY).mkdir(parents=True)
    (study_dir(runs_dir, STUDY) / "study.json").write_bytes(
        (study_dir(recorded_study, STUDY) / "study.json").read_bytes()
    )
    view = load(STUDY, runs_dir)
    assert view.progress.line() == "cells 0/16 finished · 16 not started · models evaluated 0/1"
    assert view.report is None and view.groups == [] and view.problem is None


def test_unreadable_files_are_problems_not_exceptions(recorded_study):
    cell = recorded_study / f"{STUDY}--tiny-llama-8-ppl-greedy-k2-s0"
    (cell / "result.json").write_text("{")
    view = load(STUDY, recorded_study)
    assert view.progress.cells["unreadable"] == 1 and view.progress.cells["finished"] == 10
    assert view.report is None and "corrupt result.json" in view.problem
    (study_dir(recorded_study, STUDY) / "study.json").write_text(json.dumps(["not", "a", "study"]))
    view = load(STUDY, recorded_study)
    assert view.progress is None and "not a depthprune study" in view.problem
    assert load("nope", recorded_study).problem.startswith("study 'nope' (from STUDY) not found")
