"""What the screens show is what the run holds (issue 13's "wrong on screen" list), and the
navigation model: recorded run directories, Textual's Pilot, no model."""

import json
import re

from textual.widgets import DataTable, Input

from depthprune.core.events import parse_event
from depthprune.core.runs import Run
from depthprune.tui.app import DepthpruneApp
from depthprune.tui.config import load_settings
from depthprune.tui.palette import ActionCommands
from depthprune.tui.screens.compare import CompareScreen
from depthprune.tui.screens.confirm import Confirm
from depthprune.tui.screens.live import LiveScreen
from depthprune.tui.screens.runs import RunsScreen
from depthprune.tui.screens.setup import SetupScreen
from depthprune.tui.viewmodel import RunView
from depthprune.tui.widgets.bars import ImportanceBars

from .test_pilot import run_app, text, wait_for

SPARK = "▁▂▃▄▅▆▇█"


def curve_glyphs(app) -> str:
    return "".join(c for c in app.export_screenshot() if c in SPARK)


def events_of(dicts):
    return [parse_event(json.dumps(d), "test") for d in dicts]


def test_the_curve_is_redrawn_while_a_tailed_run_grows(tmp_path, fixtures):
    events = fixtures.greedy_events(8, 2, finish=False)
    runs_dir = tmp_path / "runs"
    path = fixtures.write_run(runs_dir, "growing", events[:12], result=False)  # round 1, importance, 2 of round 2
    app = DepthpruneApp(runs_dir, attach=Run.open(path), clock=lambda: fixtures.T0 + 10)

    async def scenario(pilot):
        live = app.screen
        await wait_for(pilot, lambda: len(live.view.best_curve) == 2, 5, "the first k-sets")
        await pilot.pause(0.2)
        before = curve_glyphs(app)
        with open(path / "events.jsonl", "a") as f:
            f.write("".join(json.dumps(e) + "\n" for e in events[12:]))
        await wait_for(pilot, lambda: len(live.view.best_curve) == 7, 5, "the appended k-sets")
        await pilot.pause(0.2)
        assert "over 7 candidates" in text(live.query_one("#curve-title"))
        assert curve_glyphs(app) != before  # the drawing follows the data, not only the title

    run_app(app, scenario)


def test_best_so_far_is_the_best_k_set_monotone_and_a_partial_set_says_so(fixtures):
    events = events_of(fixtures.greedy_events(8, 3, finish=False))
    view = RunView({"k": 3, "n_blocks": 8, "objective": {"objective": "ppl"}})
    view.fold(events[:5])  # single blocks only
    assert view.best is None and view.is_partial and len(view.partial.removed) == 1
    view.fold(events[5:])
    assert view.best is not None and len(view.best.removed) == 3
    assert view.best_curve == sorted(view.best_curve, reverse=True)  # never rises
    k_values = [e.value for e in events if e.kind == "candidate" and len(e.removed) == 3]
    assert view.best.value == min(k_values) and len(view.best_curve) == len(k_values)


def test_counts_are_candidate_events_and_an_exceeded_plan_is_unknown(fixtures):
    config = {"k": 2, "n_blocks": 4, "objective": {"objective": "ppl"}}
    base = [{"type": "started", "planned_candidates": 3}]
    cands = [
        {"type": "candidate", "n": i, "removed": r, "value": 10.0 + i, "seconds": 0.1, **extra}
        for i, (r, extra) in enumerate([([0], {}), ([1], {"cached": True}), ([2], {"aborted": True}), ([0, 1], {})])
    ]
    view = RunView(config)
    view.fold(events_of([{"v": 2, "t": 1.0, **e} for e in base + cands[:2]]))
    assert view.progress() == (2, 3) and view.memo_hits == 1
    view.fold(events_of([{"v": 2, "t": 2.0, **e} for e in cands[2:]]))
    assert view.progress() == (4, None) and view.aborted == 1  # 4 of 3 planned: the plan was not exact
    view.fold(events_of([{"v": 2, "t": 3.0, "type": "finished", "removed": [0, 1], "value": 13.0, "evaluations": 3}]))
    assert view.progress() == (4, 4)


def test_benchmarks_after_the_search_show_running_with_their_phase_and_stop_says_what_it_does(recorded_runs):
    run = Run.open("20260101-000000-tiny-llama-8-ppl-greedy-k2", recorded_runs)
    with open(run.path / "events.jsonl", "a") as f:
        f.write(
            json.dumps(
                {
                    "type": "phase",
                    "v": 2,
                    "t": 1.0,
                    "phase": "benchmarking",
                    "done": 1,
                    "total": 2,
                    "detail": "demo-text",
                }
            )
            + "\n"
        )
    app = DepthpruneApp(recorded_runs, attach=run)

    async def scenario(pilot):
        live = app.screen
        title = text(live.query_one("#title"))
        assert "RUNNING" in title and "benchmarking 1/2 · demo-text" in title and "FINISHED" not in title
        await pilot.press("x")
        assert isinstance(app.screen, Confirm) and "ends the benchmark evaluation" in app.screen.question
        await pilot.press("n")

    with run.writing():  # this process plays the child still evaluating the result
        run_app(app, scenario)


def test_while_a_process_works_the_title_turns_and_elapsed_counts_between_events(recorded_runs):
    run = Run.open("20260101-000000-tiny-llama-8-ppl-greedy-k2", recorded_runs)
    with open(run.path / "events.jsonl", "a") as f:
        f.write(json.dumps({"type": "phase", "v": 2, "t": 1.0e9, "phase": "loading"}) + "\n")
    now = [2.0e9]
    app = DepthpruneApp(recorded_runs, attach=run, clock=lambda: now[0])

    async def scenario(pilot):
        live = app.screen
        first, elapsed = text(live.query_one("#title")), text(live.query_one("#progress"))
        assert re.search(r"RUNNING · \S loading", first)
        now[0] += 61.25  # no event arrives: a model loading for a minute
        await pilot.pause(0.6)
        later = text(live.query_one("#title"))
        assert later != first and re.search(r"RUNNING · \S loading", later)  # the spinner moved
        assert text(live.query_one("#progress")) != elapsed  # and so did elapsed

    with run.writing():  # this process plays the child loading the model
        run_app(app, scenario)


def test_user_strings_are_shown_literally(recorded_runs, fixtures):
    model = "[red]x[/red]:llama:"
    fixtures.write_run(recorded_runs, "20260101-000300-odd", fixtures.greedy_events(8, 2), model=model)
    app = DepthpruneApp(recorded_runs)

    async def scenario(pilot):
        await pilot.resize_terminal(160, 48)
        await pilot.press("f3")
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 4, 5, "the rows")
        assert model in [str(c) for c in table.get_row_at(3)]
        assert model in app.export_screenshot().replace("&#160;", " ")  # no emoji, no markup applied
        await pilot.press("end", "space", "home", "space", "c")
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        cells = [str(c) for c in compare.query_one(DataTable).get_row_at(0)]
        assert model in cells

    run_app(app, scenario)


def test_compare_flags_incomparable_runs_and_partial_results(recorded_runs, fixtures):
    fixtures.write_run(
        recorded_runs, "20260101-000400-margin-6", fixtures.greedy_events(6, 2), n_blocks=6, objective="margin"
    )
    app = DepthpruneApp(recorded_runs)

    async def scenario(pilot):
        await pilot.press("f3")
        runs = app.screen
        await wait_for(pilot, lambda: runs.query_one(DataTable).row_count == 4, 5, "the rows")
        await pilot.press("space", "down", "down", "space", "down", "space", "c")  # finished k2, stopped, margin
        compare = app.screen
        legend = text(compare.query_one("#legend"))
        assert "objectives differ" in legend and "block counts differ" in legend and "B: not finished" in legend
        rows = {
            str(r[0]): [str(c) for c in r[1:]]
            for r in (compare.query_one(DataTable).get_row_at(i) for i in range(compare.query_one(DataTable).row_count))
        }
        assert rows["value"][2].endswith("(margin)") and "(+" not in rows["value"][2] and "(-" not in rows["value"][2]
        assert rows["jaccard A"][2] == "n/a (blocks differ)"
        assert rows["mask"][2].count("·") + rows["mask"][2].count("✖") == 6  # its own 6 blocks, no padding
        assert "(partial)" in rows["removed"][1]

    run_app(app, scenario)


def test_importance_keeps_one_labelled_scale_with_one_precision(recorded_runs):
    run = Run.open("20260101-000000-tiny-llama-8-ppl-greedy-k2", recorded_runs)
    app = DepthpruneApp(recorded_runs, attach=run)

    async def scenario(pilot):
        live = app.screen
        assert text(live.query_one("#bars-title")) == "Importance (ppl, block alone)"
        singles = {e.removed[0]: e.value for e in run.events() if e.kind == "candidate" and len(e.removed) == 1}
        assert live.view.importance == singles  # the searcher's later `importance` event did not switch scales
        bars = live.query_one(ImportanceBars)
        rows = ["".join(segment.text for segment in bars.render_line(y)) for y in range(8)]
        values = [re.search(r"(\d+)\.(\d+)\s*$", row) for row in rows]
        assert all(values) and len({len(v.group(2)) for v in values}) == 1  # every row, the same decimals
        assert {float(v.group(0)) for v in values} == {round(x, 2) for x in singles.values()}

    run_app(app, scenario)


def test_cache_counters_come_from_the_run(tmp_path, fixtures):
    runs_dir = tmp_path / "runs"
    path = fixtures.write_run(
        runs_dir,
        "cached",
        fixtures.greedy_events(8, 2),
        result_extra={"prefix_cache": {"hits": 9, "misses": 6, "evictions": 0}},
    )
    app = DepthpruneApp(runs_dir, attach=Run.open(path))

    async def scenario(pilot):
        progress = text(app.screen.query_one("#progress"))
        assert "prefix cache hits 9 · misses 6" in progress and "memo hits 0" in progress

    run_app(app, scenario)


def test_function_keys_escape_and_q_always_go_where_they_say(recorded_runs):
    app = DepthpruneApp(recorded_runs)

    async def scenario(pilot):
        await pilot.press("f3", "enter")
        assert isinstance(app.screen, LiveScreen)
        await pilot.press("f2")
        assert isinstance(app.screen, SetupScreen)
        await pilot.press("f3")
        assert isinstance(app.screen, RunsScreen)  # not the Live screen left open before
        await pilot.press("slash", "k", "3")
        assert app.screen.query_one("#filter", Input).value == "k3"
        await pilot.press("escape")
        assert app.screen.query_one("#filter", Input).value == "" and isinstance(app.screen, RunsScreen)
        await pilot.press("end")
        assert app.screen.query_one(DataTable).cursor_row == 2
        await pilot.press("home", "space", "down", "space", "c")
        assert isinstance(app.screen, CompareScreen)
        await pilot.press("q")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, SetupScreen)  # back to where Runs was opened from
        footer = app.export_screenshot().replace("&#160;", " ")
        assert "Setup" in footer and "Runs" in footer and "Studies" in footer

    run_app(app, scenario)


def test_theme_is_saved_and_the_palette_shows_titles(recorded_runs, tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text('[keys]\n"live.stop" = "X"\n')
    app = DepthpruneApp(recorded_runs, config_dir=config)

    async def scenario(pilot):
        app.theme = "depthprune-light"
        await pilot.pause(0.2)
        settings = load_settings(config)
        assert settings.theme == "depthprune-light" and settings.keys == {"live.stop": "X"}
        provider = ActionCommands(app.screen)
        titles = [title for title, *_ in provider._commands()]
        assert "Go: Runs in the runs directory" in titles and not any("app." in t for t in titles)

    run_app(app, scenario)


def test_pause_is_shown(recorded_runs):
    app = DepthpruneApp(recorded_runs, attach=Run.open("20260101-000000-tiny-llama-8-ppl-greedy-k2", recorded_runs))

    async def scenario(pilot):
        await pilot.press("p")
        assert "PAUSED (p resumes)" in text(app.screen.query_one("#title"))
        await pilot.press("p")
        assert "PAUSED" not in text(app.screen.query_one("#title"))

    run_app(app, scenario)


def test_setup_checks_calibration_and_k_against_the_block_count_without_loading(tmp_path):
    app = DepthpruneApp(tmp_path / "runs")

    async def scenario(pilot):
        setup = app.screen
        setup.query_one("#calib", Input).value = "xyz"
        setup.query_one("#k", Input).value = "32"
        await wait_for(pilot, lambda: setup.checked is not None, 120, "the fields' check")
        calib = text(setup.query_one("#calib-note"))
        assert "unknown text source 'xyz' for ppl; use demo, c4, lambada" in calib and "--" not in calib
        assert "30" in text(setup.query_one("#k-note")) and "30 blocks" in text(setup.query_one("#model-note"))
        assert not (tmp_path / "runs").exists()  # nothing started, nothing loaded into a run

    run_app(app, scenario)
