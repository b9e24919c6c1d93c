"""nsga2: non-dominated sorting and crowding on hand-made points, the searcher on synthetic two-term
landscapes, and its front through the search loop (stored, resumed, served by the shared memo)."""

import json
import math
import threading
from itertools import combinations

import pytest

from depthprune.core.runs import Run, list_runs
from depthprune.pipeline.loop import SearchStopped
from depthprune.pipeline.prune import PruneConfig, resume, start
from depthprune.searchers import SEARCHERS, Space
from depthprune.searchers.pareto import crowding_distance, dominates, nondominated_sort, pareto_front

from .test_cli import run_cli
from .test_searchers import Landscape, run

POINTS = [(1, 5), (2, 2), (5, 1), (3, 3), (4, 4), (2, 6), (6, 6), (2, 2)]


def test_dominance_is_no_worse_everywhere_and_better_somewhere():
    assert dominates((1, 2), (1, 3)) and dominates((0, 0), (1, 1))
    assert not dominates((1, 2), (1, 2))  # equal points dominate neither way
    assert not dominates((1, 3), (2, 2)) and not dominates((2, 2), (1, 3))


def test_fast_non_dominated_sort_gives_the_known_fronts():
    assert nondominated_sort(POINTS) == [[0, 1, 2, 7], [3, 5], [4], [6]]
    assert pareto_front(POINTS) == [0, 1, 2, 7]  # a repeated point shares its front
    assert nondominated_sort([]) == [] and pareto_front([]) == []


def test_crowding_distance_by_hand():
    assert crowding_distance([(1, 5), (2, 2), (5, 1)]) == [math.inf, 2.0, math.inf]
    assert crowding_distance([(0, 4), (1, 2), (3, 1), (4, 0)]) == [math.inf, 1.5, 1.25, math.inf]
    assert crowding_distance([(1, 1), (1, 1), (1, 1)]) == [math.inf, 0.0, math.inf]  # no range adds nothing


def brute_front(landscape, space):
    sets = [frozenset(s) for s in combinations(space.allowed, space.k)]
    vectors = {s: tuple(landscape.terms(s).values()) for s in sets}
    return {s for s in sets if not any(dominates(vectors[o], vectors[s]) for o in sets)}


@pytest.mark.parametrize("seed", range(3))
def test_the_front_is_the_true_front_and_the_result_its_lowest_weighted_sum(seed):
    space = Space(9, 2, frozenset({0}))
    landscape = Landscape(9, seed=seed, interaction=0.4)
    searcher = SEARCHERS["nsga2"](space, seed=seed)
    result = run(searcher, landscape)
    front = {frozenset(m["removed"]) for m in searcher.front}
    assert front == brute_front(landscape, space)
    assert result in front and len(result) == 2 and 0 not in result
    assert searcher.front[0]["terms"]["landscape"] <= searcher.front[-1]["terms"]["landscape"]  # by the first term
    values = {frozenset(m["removed"]): m["value"] for m in searcher.front}
    assert values[result] == min(values.values()) == pytest.approx(landscape.value(result))


def test_on_a_larger_space_the_front_is_mutually_non_dominated_and_covers_every_evaluated_set():
    space = Space(14, 4)
    landscape = Landscape(14, seed=4, interaction=0.5)
    searcher = SEARCHERS["nsga2"](space, seed=1, generations=4)
    result = run(searcher, landscape)
    vectors = [tuple(m["terms"].values()) for m in searcher.front]
    assert not any(dominates(a, b) for a in vectors for b in vectors)
    evaluated = [s for s in searcher.terms if len(s) == 4]
    for s in evaluated:
        mine = tuple(searcher.terms[s].values())
        assert mine in vectors or any(dominates(v, mine) for v in vectors)
    assert sorted(result) in [m["removed"] for m in searcher.front]


def test_same_seed_same_trajectory_and_a_set_without_terms_is_refused():
    def trajectory(seed):
        landscape, asked = Landscape(12, seed=0, interaction=0.5), []
        searcher = SEARCHERS["nsga2"](Space(12, 3), seed=seed, generations=3)
        batch = searcher.ask()
        while batch:
            asked.append(sorted(sorted(s) for s in batch))
            batch = searcher.tell({s: landscape(s) for s in batch}, {s: landscape.terms(s) for s in batch})
        return asked

    assert trajectory(0) == trajectory(0) and trajectory(0) != trajectory(1)
    searcher = SEARCHERS["nsga2"](Space(12, 3))
    batch = searcher.ask()
    with pytest.raises(ValueError, match="no score or terms"):
        searcher.tell(dict.fromkeys(batch, 0.0))


# -- through the search loop, on a tiny model ------------------------------------------------------

MIX = "mix:ppl=1,margin=1"
SMALL_MIX = dict(calib="demo", calib_samples=3, calib_seq_len=64, options={"population": 6, "generations": 3})


def nsga2_config(**extra):
    return PruneConfig(model="tiny:llama:8", objective=MIX, searcher="nsga2", k=2, **SMALL_MIX, **extra)


def test_the_front_and_the_dense_point_are_stored_in_the_result_and_the_finished_event(tmp_path):
    run_, result = start(nsga2_config(), tmp_path)
    stored = json.loads((run_.path / "result.json").read_text())
    assert stored["front"] == result["front"] and len(stored["front"]) >= 1
    assert stored["removed"] in [m["removed"] for m in stored["front"]]
    assert stored["value"] == min(m["value"] for m in stored["front"])
    dense = {t["objective"]: t["dense"] for t in run_.config["objective"]["terms"]}
    assert stored["dense"] == {"terms": {"ppl": 0.0, "margin": 0.0}, "values": dense}
    candidates = [e for e in run_.events() if e.kind == "candidate"]
    assert all(set(e.terms) == {"ppl", "margin"} for e in candidates)
    for e in candidates:  # the value is the weighted sum of the stored terms
        assert e.value == pytest.approx(e.terms["ppl"] + e.terms["margin"], rel=1e-12, abs=1e-12)
    (finished,) = [e for e in run_.events() if e.kind == "finished"]
    assert finished.front == stored["front"]


def test_a_stopped_nsga2_run_resumes_to_the_same_front_and_a_second_run_gets_it_from_the_memo(tmp_path):
    _, reference = start(nsga2_config(speed={"memo": False}), tmp_path / "reference")
    stop = threading.Event()
    seen = []

    def stop_mid_search(event):
        seen.append(event.kind)
        if seen.count("candidate") == 17:  # after the one-shot sets and the first population
            stop.set()

    with pytest.raises(SearchStopped):
        start(nsga2_config(speed={"memo": False}), tmp_path / "runs", listener=stop_mid_search, stop=stop)
    (stopped,) = list_runs(tmp_path / "runs")
    assert 17 <= len(stopped.memo()) < reference["evaluations"]
    _, resumed = resume(stopped.id, tmp_path / "runs")
    for key in ("front", "removed", "value", "evaluations"):
        assert resumed[key] == reference[key], key

    start(nsga2_config(), tmp_path / "memo")  # fills the shared memo of that runs directory
    again, from_memo = start(nsga2_config(), tmp_path / "memo")
    assert from_memo["front"] == reference["front"] and from_memo["evaluations"] == 0
    assert all(e.cached and e.terms for e in again.events() if e.kind == "candidate")


def test_memo_lines_and_candidates_stored_without_terms_still_read_and_nsga2_recomputes_them(tmp_path):
    from depthprune.core.events import parse_event

    old = parse_event('{"type": "candidate", "v": 2, "n": 1, "removed": [1], "value": 2.5, "seconds": 0.1}', "x")
    assert old.terms is None
    _, first = start(nsga2_config(), tmp_path)
    (memo,) = (tmp_path / "memo").glob("*.jsonl")
    rows = [json.loads(line) for line in memo.read_text().splitlines()]
    assert all(set(row["terms"]) == {"ppl", "margin"} for row in rows)
    without_terms = "".join(json.dumps({"removed": r["removed"], "value": r["value"]}) + "\n" for r in rows)
    memo.write_text(without_terms)
    _, second = start(nsga2_config(), tmp_path)  # values without terms: no hit for a multi-objective searcher
    assert second["evaluations"] == first["evaluations"] and second["cached_from_memo"] == 0
    assert second["front"] == first["front"]
    memo.write_text(without_terms)
    greedy = PruneConfig(model="tiny:llama:8", objective=MIX, searcher="greedy", k=2, **SMALL_MIX | {"options": {}})
    _, third = start(greedy, tmp_path)  # any other searcher takes them
    assert third["cached_from_memo"] > 0


@pytest.mark.parametrize("objective", ["ppl", "mix:ppl=1"])
def test_nsga2_refuses_an_objective_without_two_terms_in_one_line_and_writes_nothing(
    objective, tmp_path, monkeypatch, capsys
):
    runs = tmp_path / "runs"
    code, out, err = run_cli(
        monkeypatch, capsys, "prune", "--model", "tiny:llama", "--searcher", "nsga2", "--objective", objective,
        "--k", "2", "--runs-dir", str(runs),
    )  # fmt: skip
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"error: searcher nsga2 (from --searcher) needs a mix objective of at least two terms "
        f"(--objective mix:ppl=1,margin=1); got {objective!r}"
    ]
    assert not runs.exists() or not any(runs.iterdir())


def test_the_cli_prints_the_front_after_the_result(tmp_path, monkeypatch, capsys):
    code, out, err = run_cli(
        monkeypatch, capsys, "prune", "--model", "tiny:llama", "--searcher", "nsga2", "--objective", MIX,
        "--k", "2", "--calib", "demo", "--calib-samples", "3", "--calib-seq-len", "64",
        "--option", "population=4", "--option", "generations=2", "--runs-dir", str(tmp_path), "--json",
    )  # fmt: skip
    assert code == 0, err
    printed = json.loads(out)
    (run_,) = list_runs(tmp_path)
    assert printed["front"] == run_.result()["front"]
    code, out, err = run_cli(monkeypatch, capsys, "prune", "--resume", run_.id, "--runs-dir", str(tmp_path))
    assert code == 0 and "Pareto front" in out and "◀ result" in out
    assert out.count("◀ result") == 1 and all(" ".join(map(str, m["removed"])) in out for m in printed["front"])


# -- in a study -------------------------------------------------------------------------------------


def test_a_study_refuses_nsga2_with_an_objective_without_two_terms():
    from depthprune.core.errors import UserError
    from depthprune.study.config import parse_study

    with pytest.raises(
        UserError, match=r"study.toml: searcher nsga2 needs mix objectives .* objective 'ppl' is not one"
    ):
        parse_study({"name": "s", "objectives": [MIX, "ppl"], "searchers": ["nsga2"]}, "study.toml")


def test_a_study_reports_each_nsga2_cells_front_as_a_table_and_a_figure(tmp_path):
    from depthprune.study.config import parse_study
    from depthprune.study.report import write_report
    from depthprune.study.results import collect
    from depthprune.study.runner import run_study

    table = {
        "name": "front",
        "models": ["tiny:llama:8"],
        "objectives": [MIX],
        "searchers": ["nsga2", "greedy"],
        "baselines": [],
        "k": [2],
        "seeds": [0],
        "options": {"nsga2": {"population": 4, "generations": 2}},
        "calibration": {MIX: {"source": "demo", "samples": 3, "seq_len": 64}},
        "evaluation": {"tasks": ["demo-text"], "windows": 2, "seq_len": 64},
    }
    config = parse_study(table, "test")
    run_study(config, tmp_path)
    data = collect(config, tmp_path)
    (cell,) = [r for r in data["rows"] if r["searcher"] == "nsga2"]
    assert cell["front"]["members"] == Run.open(tmp_path / cell["run"]).result()["front"]
    md = write_report(config, data, "md", tmp_path / "report").read_text()
    figure = f"front-{cell['run']}.png"
    assert (tmp_path / "report" / figure).stat().st_size > 1000
    assert f"]({figure})" in md and "Pareto fronts of the multi-objective cells" in md
    row = next(line for line in md.splitlines() if line.startswith("| mix:ppl=1,margin=1 | nsga2 |"))
    assert f"| {len(cell['front']['members'])} | {len(cell['front']['evaluated'])} |" in row
    assert not any(f"front-{r['run']}" in md for r in data["rows"] if r["searcher"] == "greedy")
    assert figure in write_report(config, data, "html", tmp_path / "html").read_text()
