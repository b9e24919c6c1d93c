"""Uncertainty and findings: bootstrap intervals against closed-form binomial intervals, the paired
test on planted and null differences, the findings flipping with the data, and per-item files from a
real evaluation that give back the stored scores exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest

from depthprune.core.errors import UserError
from depthprune.core.evaluate import perplexity_of, shares
from depthprune.core.items import read_items, write_items
from depthprune.study import findings as F
from depthprune.study import uncertainty as U
from depthprune.study.config import parse_study
from depthprune.study.report import NA, build, write_report

MC = {"acc": 0.0, "acc_norm": 0.0, "primary": "acc"}  # only the primary metric's name is read


def mc(hits) -> U.Samples:
    hits = [int(h) for h in hits]
    sample = U.samples({"q": MC}, {"q": {"acc": hits, "acc_norm": hits}})
    assert sample is not None
    return sample


def text(nll, tokens) -> U.Samples:
    sample = U.samples({"w": {"ppl": 1.0}}, {"w": {"nll": list(nll), "tokens": list(tokens)}})
    assert sample is not None
    return sample


def planted(n: int, correct: int, seed: int = 0) -> np.ndarray:
    """n items, exactly `correct` of them right, in a seeded random order."""
    hits = np.zeros(n, dtype=int)
    hits[:correct] = 1
    return np.random.default_rng(seed).permutation(hits)


# -- intervals ---------------------------------------------------------------------------------

TOLERANCE = 1.0  # accuracy points: Monte-Carlo error of 2000 resamples (≈ 0.15) plus the methods' differences


@pytest.mark.parametrize("n, correct", [(400, 220), (400, 320), (1000, 250)])
@pytest.mark.parametrize("method", ["wilson", "exact"])
def test_bootstrap_interval_of_an_accuracy_matches_the_binomial_interval(n, correct, method):
    low, high = U.interval(mc(planted(n, correct)), "acc_avg")
    closed = binomtest(correct, n).proportion_ci(0.95, method=method)  # exact: Clopper-Pearson
    assert low == pytest.approx(100 * closed.low, abs=TOLERANCE)
    assert high == pytest.approx(100 * closed.high, abs=TOLERANCE)
    assert low < 100 * correct / n < high


def test_perplexity_interval_resamples_windows_of_the_pooled_perplexity():
    rng = np.random.default_rng(3)
    nll = rng.normal(250, 25, size=200)
    sample = text(nll, [63] * 200)
    point = perplexity_of(list(nll), [63] * 200)["ppl"]
    low, high = U.interval(sample, "ppl_avg")
    assert low < point < high
    # delta method: ppl = exp(mean nll / 63), sd ≈ ppl · sd(nll) / (63 · sqrt(n))
    half = 1.96 * point * nll.std() / (63 * np.sqrt(200))
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    assert U.interval(text([5.0] * 20, [3] * 20), "ppl_avg") == pytest.approx((np.exp(5 / 3),) * 2)
    assert U.interval(mc([1]), "acc_avg") is None, "one item: no noise estimate"


# -- the paired test ---------------------------------------------------------------------------


def test_the_paired_test_detects_a_planted_difference_that_separate_intervals_miss():
    a = planted(500, 300)
    b = a.copy()
    b[np.flatnonzero(a == 0)[:15]] = 1  # b answers 15 more items: +3 points
    d = U.paired_difference(mc(b), mc(a), "acc_avg")
    assert d["diff"] == pytest.approx(3.0)
    assert 0 < d["low"] < 3.0 < d["high"] and d["p"] < 0.01
    a_high, b_low = U.interval(mc(a), "acc_avg")[1], U.interval(mc(b), "acc_avg")[0]
    assert b_low < a_high, "unpaired, the two intervals overlap"


def test_the_paired_test_finds_no_difference_where_there_is_none():
    a = planted(500, 300)
    b = a.copy()
    b[np.flatnonzero(a == 0)[:40]] = 1
    b[np.flatnonzero(a == 1)[:40]] = 0  # 80 items change, the accuracy does not
    d = U.paired_difference(mc(b), mc(a), "acc_avg")
    assert d["diff"] == 0.0 and d["low"] < 0 < d["high"] and d["p"] > 0.5
    assert U.paired_difference(mc(a), mc(a), "acc_avg") == {"diff": 0.0, "low": 0.0, "high": 0.0, "p": 1.0}


def test_the_paired_standard_error_is_the_closed_form_of_the_per_item_differences():
    a, b = planted(400, 220), planted(400, 240, seed=1)
    d = b - a
    assert U.paired_se(mc(b), mc(a)) == pytest.approx(100 * np.sqrt(d.var(ddof=1) / 400))
    assert U.paired_se(mc(a), mc(a)) == 0.0 and U.power_at(0.0) == 1.0


def test_the_stated_power_is_the_rejection_rate_of_the_test_on_simulated_suites():
    """Suites of 400 items where b is right on 30 % of the items a misses and vice versa on 20 %: a
    true difference of 5 points. The stated power must be the share of simulated suites whose paired
    difference a z test at the stated SE rejects (Monte-Carlo error of 2000 suites: about ±1 %), and the
    stated detectable difference must have the stated power."""
    rng = np.random.default_rng(7)
    n, suites = 400, 2000
    u = rng.random((suites, n))
    d = np.where(u < 0.15, 1, np.where(u < 0.25, -1, 0))  # P(+1) = .15, P(−1) = .10: 5 points
    se = 100 * np.sqrt((0.25 - 0.05**2) / n)
    a, b = planted(n, 200), planted(n, 200)
    b[:60] = a[:60] ^ 1  # one suite's realisation, only to get a Samples with nonzero SE
    rejected = np.abs(100 * d.mean(axis=1)) / se > 1.959964
    assert U.power_at(se) == pytest.approx(rejected.mean(), abs=0.03)
    assert U.power_at(se, U.detectable(se)) == pytest.approx(U.POWER, abs=1e-3)
    assert U.power_at(se, 0.0) == pytest.approx(1 - U.LEVEL)
    report = U.detectability([mc(a), mc(b)])
    assert report["pairs"] == 1 and report["items"] == {"q": n}
    assert report["se"] == pytest.approx(U.paired_se(mc(a), mc(b)))
    assert U.detectability([mc(a)]) is None and U.detectability([mc(a), mc(a)]) is None
    assert U.detectability([mc(a), mc(b), mc(b)])["pairs"] == 1  # b twice is one model


def test_the_paired_perplexity_test_detects_a_planted_ratio_and_not_a_reordering():
    rng = np.random.default_rng(4)
    nll = rng.normal(250, 40, size=60)
    worse = U.paired_difference(text(nll * 1.01, [63] * 60), text(nll, [63] * 60), "ppl_avg")
    assert worse["low"] > 0 and worse["p"] < 0.01
    swapped = nll.copy()
    swapped[[0, 1]] = swapped[[1, 0]]  # the same windows' NLL on each other: the pooled ppl is unchanged
    same = U.paired_difference(text(swapped, [63] * 60), text(nll, [63] * 60), "ppl_avg")
    assert same["low"] < 0 < same["high"] and same["p"] > 0.05
    assert U.paired_difference(text(nll, [63] * 60), text(nll[:50], [63] * 50), "ppl_avg") is None  # other items


def test_the_vectorised_kendall_tau_is_scipys_tau_b():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, size=(6, 40)).astype(float), rng.integers(0, 4, size=(6, 40)).astype(float)
    x[:, 0] = 1.0  # a constant column: undefined
    ours = U.kendall_tau_b(x, y)
    theirs = np.array([kendalltau(a, b).statistic for a, b in zip(x.T, y.T)])
    assert np.isnan(ours[0]) and np.isnan(theirs[0])
    np.testing.assert_allclose(ours[1:], theirs[1:], rtol=1e-12)


def test_the_spread_across_searchers_is_compared_with_item_noise():
    a = planted(400, 200)
    equal = []
    for shift in range(4):  # four searchers, each 20 items different, the same accuracy
        b = a.copy()
        b[np.flatnonzero(a == 0)[shift * 5 : shift * 5 + 5]] = 1
        b[np.flatnonzero(a == 1)[shift * 5 : shift * 5 + 5]] = 0
        equal.append(mc(b))
    noise = U.noise_spread(equal, "acc_avg")
    assert noise["var"] == 0.0 and noise["noise_var"] > 0 and noise["p"] == 1.0
    apart = [mc(planted(400, c, seed=1)) for c in (160, 200, 240, 280)]
    noise = U.noise_spread(apart, "acc_avg")
    assert noise["var"] == pytest.approx(np.var([40, 50, 60, 70])) and noise["p"] < 0.01
    assert noise["noise_var"] < noise["var_low"] <= noise["var"] <= noise["var_high"]


# -- findings flip with the data ---------------------------------------------------------------

SEARCHERS = ["oneshot", "greedy", "beam", "ga"]


def synthetic(supporting: bool):
    """A study of one (model, k) with four searchers under two objectives, made to agree with every
    finding of the paper (`supporting`) or to go against every one."""
    config = parse_study(
        {"name": "s", "models": ["m"], "objectives": ["ppl", "margin"], "searchers": SEARCHERS, "baselines": []},
        "test",
    )
    windows = np.random.default_rng(5).normal(300, 30, size=80)
    base = planted(1000, 600)
    wrong = np.flatnonzero(base == 0)
    rows, samples = [], {}
    for objective in ("ppl", "margin"):
        for i, searcher in enumerate(SEARCHERS):
            if supporting:  # sets: shared within an objective; accuracy 0.5 points apart, ppl rising with it
                removed = [1, 2 + i] if objective == "ppl" else [7, 8 + i]
                gain, nll = (5 * i, windows * (1 + 0.01 * i)) if objective == "ppl" else (0, windows)
            else:  # each searcher keeps its set under both objectives; 10 points apart, ppl falling
                removed = [1, 2 + i]
                gain, nll = 100 * i, windows * (1 - 0.01 * i)
            hits = base.copy()
            hits[wrong[:gain]] = 1
            sample = U.samples(
                {"q": MC, "w": {"ppl": 1.0}},
                {"q": {"acc": hits.tolist(), "acc_norm": hits.tolist()}, "w": {"nll": list(nll), "tokens": [63] * 80}},
            )
            samples[("m", tuple(removed))] = sample
            whole = sample.all_items()
            acc, ppl = float(sample.value("acc_avg", whole)), float(sample.value("ppl_avg", whole))
            rows.append(
                {
                    "model": "m",
                    "k": 2,
                    "objective": objective,
                    "searcher": searcher,
                    "baseline": False,
                    "seed": 0,
                    "run": f"{objective}-{searcher}",
                    "removed": removed,
                    "value": 0.0,
                    "seconds": 1.0,
                    "evaluations": 1,
                    "cached_from_memo": 0,
                    "block_forwards": 1,
                    "metrics": {"q": acc, "w": ppl},
                    "acc_avg": acc,
                    "ppl_avg": ppl,
                    "decode_x": None,
                }
            )
    dense_hits = base.tolist()
    samples[("m", ())] = U.samples(
        {"q": MC, "w": {"ppl": 1.0}},
        {"q": {"acc": dense_hits, "acc_norm": dense_hits}, "w": {"nll": list(windows), "tokens": [63] * 80}},
    )
    dense = {"m": {"metrics": {"q": 60.0, "w": 1.0}, "acc_avg": 60.0, "ppl_avg": 1.0}}
    return config, {"rows": rows, "dense": dense, "n_blocks": {"m": 12}, "missing": [], "samples": samples}


def verdicts(report) -> dict:
    return {f["finding"]: f["verdict"] for f in report["findings"]}


def test_the_findings_support_the_paper_on_data_made_to_agree_and_contradict_it_on_flipped_data():
    supported = verdicts(build(*synthetic(True)))
    assert set(supported.values()) == {F.SUPPORTS}, supported
    flipped = verdicts(build(*synthetic(False)))
    assert set(flipped.values()) == {F.CONTRADICTS}, flipped


def test_the_report_states_the_findings_and_every_interval(tmp_path):
    config, data = synthetic(True)
    md = write_report(config, data, "md", tmp_path).read_text()
    assert "## Findings of the seed paper" in md
    for claim in F.CLAIMS.values():
        assert f"| {claim} | supports |" in md
    assert "searcher vs searcher under `ppl`" in md
    assert "Spearman ρ = -1.00 [" in md and "against item noise" in md
    assert "what the suite can detect" in md and "power at 5 points" in md
    section = md.split("95 % intervals of the `ppl`-pruned models")[1].split("\n## ")[0].split("\n", 1)[1]
    assert NA not in section and section.count(" [") >= 5 * 4  # 5 models, 4 numbers each


def test_a_study_without_per_item_results_still_reports_with_intervals_unavailable(tmp_path):
    config, data = synthetic(True)
    data["samples"] = {key: None for key in data["samples"]}
    md = write_report(config, data, "md", tmp_path).read_text()
    assert md.count(NA) > 20
    report = build(config, data)
    assert verdicts(report)[F.CLAIMS["convergence"]] == F.UNCLEAR
    assert verdicts(report)[F.CLAIMS["objectives"]] == F.SUPPORTS  # needs only the removed sets
    del data["samples"]  # collected without per-item results (the TUI's view): no bootstrap at all
    assert build(config, data)["findings"] is None
    assert "## Findings" not in write_report(config, data, "md", tmp_path / "plain").read_text()


# -- per-item files ----------------------------------------------------------------------------


def test_per_item_files_refuse_names_outside_their_directory_and_damaged_content(tmp_path):
    name = write_items(tmp_path, {"q": {"acc": [1, 0], "acc_norm": [0, 0]}})
    assert write_items(tmp_path, {"q": {"acc": [1, 0], "acc_norm": [0, 0]}}) == name  # written once
    assert read_items(tmp_path, name, "test") == {"q": {"acc": [1, 0], "acc_norm": [0, 0]}}
    assert read_items(tmp_path, None, "test") is None and read_items(tmp_path, "items/gone.json", "test") is None
    (tmp_path / "run").mkdir()
    for outside in ["../" + name, str(tmp_path / name)]:
        with pytest.raises(UserError, match="outside"):
            read_items(tmp_path / "run", outside, "events.jsonl:3")
    (tmp_path / "items" / "bad.json").write_text(json.dumps({"v": 1, "tasks": {"q": {"acc": [2]}}}))
    with pytest.raises(UserError, match="not a depthprune per-item file"):
        read_items(tmp_path, "items/bad.json", "test")


def test_a_real_evaluation_stores_per_item_results_that_give_back_its_scores_exactly(tmp_path):
    from depthprune.core.loading import load_model
    from depthprune.core.runs import Run
    from depthprune.pipeline.prune import record_benchmark

    lm = load_model("tiny:llama:12", device="cpu")
    run = Run.create(tmp_path, {"model": lm.spec, "objective": {"objective": "ppl"}, "searcher": "greedy", "k": 2})
    with run.writing():
        record_benchmark(run, lm, [3, 7], ["demo-text", "demo-mc"], limit=6, seq_len=64, data_dir=None)
    (event,) = [e for e in Run.open(run.path).events() if e.kind == "benchmarked"]
    items = read_items(run.path, event.items, "test")
    assert event.items.startswith("items/") and set(items) == {"demo-text", "demo-mc"}
    text_items, mc_items = items["demo-text"], items["demo-mc"]
    assert len(text_items["nll"]) == event.tasks["demo-text"]["windows"] == 6
    assert perplexity_of(text_items["nll"], text_items["tokens"]) == event.tasks["demo-text"]
    assert len(mc_items["acc"]) == event.tasks["demo-mc"]["items"] == 6
    assert shares(mc_items) == {m: event.tasks["demo-mc"][m] for m in ("acc", "acc_norm")}
