"""The Live view model, the event tail and the Compare table against hand-written events."""

import json

from depthprune.core.events import event_from_dict
from depthprune.tui.comparison import RunSummary, compare, export, mask, visible
from depthprune.tui.tail import EventTail
from depthprune.tui.viewmodel import RunView

CONFIG = {
    "model": "tiny:llama:4",
    "n_blocks": 4,
    "k": 2,
    "searcher": "greedy",
    "seed": 0,
    "objective": {"objective": "ppl"},
}


def raw(kind, t=0.0, **fields):
    return {"v": 1, "t": t, "type": kind, **fields}


def ev(kind, t=0.0, **fields):
    return event_from_dict(raw(kind, t, **fields), "test")


def evaluation(removed, value, seconds=1.0, **flags):
    return ev("evaluation", n=0, removed=removed, value=value, seconds=seconds, status="round", **flags)


def test_importance_keeps_the_scale_of_its_first_source():
    view = RunView(CONFIG)
    view.fold([ev("started", planned_evaluations=8), evaluation([0], 12.0), evaluation([1], 11.0)])
    assert view.importance == {0: 12.0, 1: 11.0}
    view.fold([ev("importance", importance={"0": 0.5, "1": 0.25, "2": 0.75, "3": 1.0}), evaluation([2], 9.0)])
    assert view.importance == {0: 12.0, 1: 11.0, 2: 9.0}  # single-block values came first: they stay
    searcher_first = RunView(CONFIG)
    searcher_first.fold([ev("importance", importance={"0": 0.5, "1": 0.25}, label="gate"), evaluation([2], 9.0)])
    assert searcher_first.importance == {0: 0.5, 1: 0.25} and searcher_first.importance_label == "gate"


def test_aborted_evaluations_are_counted_but_never_scores():
    view = RunView(CONFIG)
    view.fold([evaluation([0], 12.0), evaluation([1], 5.0, aborted=True), evaluation([2], 13.0)])
    assert view.aborted == 1 and view.done == 3
    assert view.best is None and view.partial.removed == (0,) and view.partial.value == 12.0
    assert 1 not in view.importance
    assert view.configurations.get((1,)) is None
    assert [c.removed for c in view.top(5)] == [(0,), (2,)]


def test_best_so_far_is_the_best_k_set_and_never_rises():
    view = RunView(CONFIG)
    view.fold([evaluation([0], 12.0), evaluation([1], 11.0)])
    assert view.best_curve == [] and view.is_partial and view.removed == (1,)
    view.fold([evaluation([1, 2], 15.0), evaluation([0, 1], 14.0), evaluation([1, 3], 16.0)])
    assert view.best_curve == [15.0, 14.0, 14.0]
    assert view.removed == (0, 1) and not view.is_partial
    view.fold([ev("finished", removed=[1, 2], value=15.0, evaluations=5)])
    assert view.removed == (1, 2)
    assert view.state(writer_alive=True) == "running"  # a process still holds it: benchmarks may follow
    assert view.state(writer_alive=False) == "finished"


def test_eta_uses_mean_model_seconds_and_ignores_cached_time():
    view = RunView(CONFIG)
    view.fold(
        [
            ev("started", t=100.0, planned_evaluations=10),
            evaluation([0], 1.0, seconds=2.0),
            evaluation([1], 1.0, seconds=4.0),
            evaluation([2], 1.0, seconds=0.0, cached=True),
        ]
    )
    assert view.eta_seconds(now=130.0, writer_alive=True) is None  # no phase event yet: not searching
    view.fold([ev("phase", t=100.0, phase="searching")])
    assert view.memo_hits == 1 and view.done == 3
    assert view.eta_seconds(now=130.0, writer_alive=True) == 3.0 * 7
    assert view.elapsed(now=130.0, writer_alive=True) == 30.0
    view.fold([ev("stopped", t=110.0, evaluations=3)])
    assert view.eta_seconds(now=500.0, writer_alive=False) is None
    assert view.elapsed(now=500.0, writer_alive=False) == 10.0
    assert view.state(writer_alive=False) == "stopped"


def test_state_without_an_outcome_depends_on_the_writer():
    view = RunView(CONFIG)
    view.fold([ev("started", planned_evaluations=None)])
    assert view.state(writer_alive=True) == "running"
    assert view.state(writer_alive=False) == "incomplete"
    assert view.eta_seconds(now=1.0, writer_alive=True) is None


def test_evaluated_metrics_join_their_configuration():
    view = RunView(CONFIG)
    view.fold(
        [
            evaluation([0, 1], 14.0),
            evaluation([1, 2], 13.0),
            ev(
                "evaluated",
                removed=[0, 1],
                tasks={"demo-mc": {"acc": 0.4, "acc_norm": 0.3, "primary": "acc_norm", "items": 5}},
            ),
        ]
    )
    assert view.task_columns() == [("demo-mc", "acc_norm")]
    assert [c.removed for c in view.top(1)] == [(1, 2), (0, 1)]  # the benchmarked set is kept beyond the top 1


def test_the_benchmarked_dense_model_is_the_first_row():
    mc = {"demo-mc": {"acc": 0.5, "primary": "acc", "items": 10}}
    view = RunView(CONFIG)
    view.fold([evaluation([0, 1], 14.0), evaluation([1, 2], 13.0), ev("benchmarked", removed=[1, 2], tasks=mc)])
    assert view.dense is None and [c.removed for c in view.top(5)] == [(1, 2), (0, 1)]
    view.fold([ev("benchmarked", removed=[], tasks={"demo-mc": {**mc["demo-mc"], "acc": 0.75}})])
    assert view.dense.tasks["demo-mc"]["acc"] == 0.75
    assert [c.removed for c in view.top(1)] == [(), (1, 2)]  # the reference first, beyond the top n


def test_tail_reads_only_completed_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read() == []
    first = json.dumps(raw("started", planned_evaluations=3))
    path.write_text(first + "\n" + '{"v": 1, "type": "evalu')
    assert [e.kind for e in tail.read()] == ["started"]
    assert tail.read() == []
    with open(path, "a") as f:
        f.write('ation", "n": 0, "removed": [0], "value": 2.0, "seconds": 1}\nnot json\n\n')
    events = tail.read()
    assert [e.kind for e in events] == ["candidate"]
    assert len(tail.problems) == 1 and tail.problems[0].startswith(f"{path}:3: broken event line")


def summary(run_id, removed, value, tasks=None, state="finished"):
    view = RunView({**CONFIG, "id": run_id})
    view.fold([evaluation(removed, value), ev("finished", removed=removed, value=value, evaluations=1)])
    if tasks:
        view.fold([ev("evaluated", removed=removed, tasks=tasks)])
    return RunSummary(run_id, state, view)


def test_compare_deltas_jaccard_and_differences_only():
    mc = lambda acc: {"demo-mc": {"acc": acc, "primary": "acc", "items": 10}}
    runs = [summary("a", [1, 2], 10.0, mc(0.5)), summary("b", [1, 3], 12.5, mc(0.25))]
    rows = {r.label: r for r in compare(runs, baseline=0)}
    assert rows["value"].cells == ["10", "12.5 (+2.5)"]
    assert rows["removed"].cells == ["[1, 2]", "[1, 3]"]
    assert rows["demo-mc acc"].cells == ["0.5", "0.25 (-0.25)"]
    assert rows["jaccard A"].values == [1.0, round(1 / 3, 4)]
    assert rows["mask"].cells == ["·✖✖·", "·✖·✖"]
    rebased = {r.label: r for r in compare(runs, baseline=1)}
    assert rebased["value"].cells == ["10 (-2.5)", "12.5"]
    shown = [r.label for r in visible(compare(runs), differences_only=True)]
    assert "searcher" not in shown and {"value", "removed", "mask", "demo-mc acc", "model", "k"} <= set(shown)


def test_compare_marks_missing_metrics_and_exports_rows():
    runs = [
        summary("a", [0, 1], 10.0, {"demo-text": {"ppl": 20.0, "nll": 3.0, "windows": 1, "tokens": 9}}),
        summary("b", [0, 1], 10.0),
    ]
    rows = compare(runs)
    ppl = next(r for r in rows if r.label == "demo-text ppl")
    assert ppl.cells == ["20", "—"] and ppl.differs
    md = export(visible(rows, differences_only=True), runs, "md")
    assert md.splitlines()[0] == "| field | A a | B b |"
    assert "| demo-text ppl | 20 | — |" in md
    assert "| value" not in md  # equal values are not a difference
    csv = export(rows, runs, "csv").splitlines()
    assert csv[0] == "field,A a,A delta,B b,B delta"
    assert "value,10.0,,10.0,0.0" in csv  # numbers as numbers, the delta in its own column


def test_compare_follows_each_benchmark_with_the_dense_reference_of_each_run():
    mc = lambda acc: {"demo-mc": {"acc": acc, "primary": "acc", "items": 10}}
    runs = [summary("a", [1, 2], 10.0, mc(0.5)), summary("b", [1, 3], 12.5, mc(0.25))]
    assert "demo-mc acc dense" not in [r.label for r in compare(runs)]  # no run measured its dense model
    runs[1].view.fold([ev("benchmarked", removed=[], tasks=mc(0.75))])
    labels = [r.label for r in compare(runs)]
    assert labels[labels.index("demo-mc acc") + 1] == "demo-mc acc dense"
    assert next(r for r in compare(runs) if r.label == "demo-mc acc dense").cells == ["—", "0.75"]


def test_mask_character_i_is_block_i():
    assert mask((0, 10, 11), 12) == "✖·········✖✖"


def test_compare_shows_measured_speed_ratios_of_each_runs_result():
    def run_with(speedup):
        view = RunView(CONFIG)
        events = [evaluation([1, 2], 2.0), ev("finished", removed=[1, 2], value=2.0, evaluations=1)]
        if speedup is not None:
            events.append(
                ev(
                    "speed",
                    removed=[1, 2],
                    settings={},
                    dense={},
                    pruned={},
                    ratios={"params": 0.6, "batch": {"1": {"decode_tok_s": speedup, "prefill_tok_s": 1.1}}},
                    ideal={"batch": {"1": {"decode_speedup": 2.0}}},
                )
            )
        view.fold(events)
        return RunSummary("r", "finished", view)

    rows = {r.label: r for r in compare([run_with(1.5), run_with(None)], baseline=0)}
    assert rows["decode × dense"].values == [1.5, None] and rows["ideal decode ×"].values == [2.0, None]
    assert "decode × dense" not in {r.label for r in compare([run_with(None)], baseline=0)}
