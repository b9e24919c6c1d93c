"""The real app driven with keys (Textual's Pilot, no terminal): recorded runs for fast, deterministic
checks, and real searches on a tiny model in a child process for start, live updates and stop."""

import asyncio
import io
import json
import os
import re
import signal
import time

import pytest
from rich.console import Console
from textual.widgets import DataTable, Input, Log, Static

from depthprune.core.runs import Run
from depthprune.study.config import StudyConfig, load_study
from depthprune.tui.actions import ACTIONS
from depthprune.tui.app import DepthpruneApp, main
from depthprune.tui.screens.compare import CompareScreen
from depthprune.tui.screens.form import FormModal
from depthprune.tui.screens.help import HelpScreen
from depthprune.tui.screens.live import LiveScreen
from depthprune.tui.screens.runs import RunsScreen
from depthprune.tui.screens.setup import SetupScreen
from depthprune.tui.screens.studies import StudiesScreen
from depthprune.tui.screens.study import StudyScreen
from depthprune.tui.widgets.bars import ImportanceBars

from .conftest import STUDY, suite_scores

SIZE = (80, 24)


async def wait_for(pilot, condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.1)


def run_app(app, scenario):
    async def go():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await scenario(pilot)

    asyncio.run(go())


def text(widget: Static) -> str:
    return str(widget.render())


def printed(widget: Static) -> str:
    """What a Static shows, Rich tables included, as plain text."""
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def test_replay_of_a_finished_run_fills_every_pane(recorded_runs, fixtures):
    run = Run.open("20260101-000000-tiny-llama-8-ppl-greedy-k2", recorded_runs)
    app = DepthpruneApp(recorded_runs, attach=run, clock=lambda: fixtures.T0 + 1000)

    async def scenario(pilot):
        live = app.screen
        assert isinstance(live, LiveScreen)
        assert live.view.outcome == "finished" and live.view.done == 15
        bars = live.query_one(ImportanceBars)
        assert len(bars.importance) == 8 and bars.removed == frozenset(live.view.result)
        assert "FINISHED" in text(live.query_one("#title"))
        progress = text(live.query_one("#progress"))
        assert "candidates 15/15 (100%)" in progress and "ended" in progress  # a finished search is complete
        table = live.query_one("#configs", DataTable)
        assert [str(c.label) for c in table.columns.values()] == [
            "removed",
            "ppl\nobjective",
            "demo-text\nppl",
            "demo-mc\nacc",
        ]
        assert [str(c) for c in table.get_row_at(0)[2:]] == ["12.5", "0.45"]
        await pilot.press("l")
        assert live.query_one(Log).display and live.query_one(Log).line_count == len(live.view.log)
        await pilot.press("down", "down")
        assert bars.cursor == 2
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)

    run_app(app, scenario)


def test_live_tail_follows_appended_events_and_ignores_a_torn_line(tmp_path, fixtures):
    events = fixtures.greedy_events(8, 2)
    runs_dir = tmp_path / "runs"
    path = fixtures.write_run(runs_dir, "growing", events[:4], result=False)
    app = DepthpruneApp(runs_dir, attach=Run.open(path), clock=lambda: fixtures.T0 + 10)

    async def scenario(pilot):
        live = app.screen
        await wait_for(pilot, lambda: live.view.done == 3, 5, "the first events")
        assert "INCOMPLETE" in text(live.query_one("#title"))  # nobody writes it
        await pilot.press("p")  # paused: events are folded, the screen is not redrawn
        with open(path / "events.jsonl", "a") as f:
            f.write(json.dumps(events[4]) + "\n" + json.dumps(events[5])[:20])
        await wait_for(pilot, lambda: live.view.done == 4, 5, "the appended event")
        assert "candidates 3/" in text(live.query_one("#progress")) and "PAUSED" in text(live.query_one("#title"))
        await pilot.press("p")
        await pilot.pause(0.2)
        assert "candidates 4/" in text(live.query_one("#progress"))
        with open(path / "events.jsonl", "a") as f:
            f.write(json.dumps(events[5])[20:] + "\n")
        await wait_for(pilot, lambda: live.view.done == 5, 5, "the completed torn line")
        assert live.follower.tail.problems == []

    run_app(app, scenario)


def test_detach_quits_and_names_the_running_run(recorded_runs):
    run = Run.open("20260101-000200-tiny-llama-8-ppl-greedy-k2-1", recorded_runs)
    app = DepthpruneApp(recorded_runs, attach=run)

    async def scenario(pilot):
        await pilot.press("d")

    with run.writing():  # this process plays the writer: the run counts as running
        run_app(app, scenario)
    assert app.return_value == (
        f"run {run.id} keeps going (process {os.getpid()}); reattach with: "
        f"depthprune-tui --attach {run.id} --runs-dir {recorded_runs}"
    )


def test_runs_mark_compare_differences_baseline_and_export(recorded_runs):
    app = DepthpruneApp(recorded_runs)

    async def scenario(pilot):
        await pilot.press("f3")
        runs = app.screen
        assert isinstance(runs, RunsScreen) and runs.query_one(DataTable).row_count == 3
        await pilot.press("c")
        assert isinstance(app.screen, RunsScreen)  # fewer than two marked
        await pilot.press("space", "down", "space", "c")
        compare = app.screen
        assert isinstance(compare, CompareScreen) and len(compare.runs) == 2
        table = compare.query_one(DataTable)
        all_rows = table.row_count
        await pilot.press("d")
        assert compare.differences_only and table.row_count < all_rows
        labels = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert "searcher" not in labels and "mask" in labels and "demo-text ppl" in labels
        assert {"model", "k", "seed", "state"} <= set(labels)  # what the runs are stays, even when equal
        await pilot.press("b")
        assert compare.baseline == 1
        await pilot.press("e", "E")
        ids = [r.id for r in compare.runs]
        [md] = recorded_runs.glob("compare-*.md")
        [csv] = recorded_runs.glob("compare-*.csv")
        assert len(md.name) < 80 and md.stem == csv.stem
        assert md.read_text().startswith(f"| field | A {ids[0]} | B {ids[1]} |")
        assert csv.read_text().startswith(f"field,A {ids[0]},A delta,B {ids[1]},B delta")
        assert app.clipboard == csv.read_text().rstrip("\n")
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)

    run_app(app, scenario)


def test_runs_filter_and_sort(recorded_runs):
    app = DepthpruneApp(recorded_runs)

    async def scenario(pilot):
        await pilot.press("f3")
        runs = app.screen
        table = runs.query_one(DataTable)
        await pilot.press("slash", *"k3", "enter")
        assert table.row_count == 1 and runs.current_id().endswith("-k3")
        runs.query_one("#filter", Input).value = ""
        await pilot.pause()
        await pilot.press("s")  # state: finished before stopped
        assert [str(table.get_row_at(i)[1]) for i in range(3)] == ["finished", "finished", "stopped"]
        await pilot.press("S")
        assert str(table.get_row_at(0)[1]) == "stopped"

    run_app(app, scenario)


def test_study_screen_shows_tables_and_masks_and_follows_new_scores(recorded_study):
    app = DepthpruneApp(recorded_study)

    async def scenario(pilot):
        await pilot.press("f3", "f4")
        studies = app.screen
        assert isinstance(studies, StudiesScreen)
        assert studies.query_one(DataTable).get_row_at(0) == [
            STUDY,
            "11/16",
            "9/10",
            "1 stopped · 1 incomplete · 3 not started",
        ]
        await pilot.press("enter")
        study = app.screen
        assert isinstance(study, StudyScreen)
        assert "cells 11/16 finished" in text(study.query_one("#title"))
        assert "k = 2 of 8 blocks (1/2) · objective ppl (1/2)" in text(study.query_one("#heading"))
        table = printed(study.query_one("#results")).splitlines()
        assert table[0].split() == ["searcher", "removed", "demo-text", "demo-mc", "acc", "avg", "ppl", "avg", "value"]
        assert table[2].split() == ["oneshot", "3,4", "22.9", "41", "41", "22.9", "10.285"]
        masks = printed(study.query_one("#masks")).splitlines()
        assert masks[2:4] == ["ppl oneshot    ···██···", "ppl greedy     ···█·█··"]
        assert "Spearman ρ -0.500" in text(study.query_one("#agreement"))
        await pilot.press("o")
        assert "objective margin (2/2)" in text(study.query_one("#heading"))
        assert "-0.2721" in printed(study.query_one("#results"))
        await pilot.press("n")  # the k = 3 group has ppl only
        assert "k = 3 of 8 blocks (2/2) · objective ppl (1/1)" in text(study.query_one("#heading"))
        assert "tail" not in printed(study.query_one("#results"))
        store = recorded_study / "studies" / STUDY / "evaluations.jsonl"
        suite = json.loads(store.read_text().splitlines()[0])["suite"]
        row = {
            "suite": suite,
            "model": "tiny:llama:8",
            "removed": [4, 5, 6],
            "tasks": suite_scores([4, 5, 6]),
            "seconds": 1.0,
            "n_blocks": 8,
        }
        store.write_text(store.read_text() + json.dumps(row) + "\n")  # the last model scored: the tail k = 3 row
        await wait_for(pilot, lambda: "tail (baseline)" in printed(study.query_one("#results")), 10, "the reload")
        assert "models evaluated 10/10" in text(study.query_one("#title"))
        await pilot.press("escape")
        assert isinstance(app.screen, StudiesScreen)

    run_app(app, scenario)


def test_study_screen_before_any_scores_says_so(recorded_study, tmp_path):
    runs_dir = tmp_path / "fresh"
    (runs_dir / "studies" / STUDY).mkdir(parents=True)
    (runs_dir / "studies" / STUDY / "study.json").write_bytes(
        (recorded_study / "studies" / STUDY / "study.json").read_bytes()
    )
    app = DepthpruneApp(runs_dir, study=STUDY)

    async def scenario(pilot):
        study = app.screen
        assert isinstance(study, StudyScreen)
        assert "cells 0/16 finished · 16 not started" in text(study.query_one("#title"))
        assert text(study.query_one("#heading")).startswith("no results yet")
        assert not study.query_one("#results").display
        await pilot.press("n", "o", "escape")
        assert isinstance(app.screen, StudiesScreen)

    run_app(app, scenario)


def test_setup_explains_bad_values_and_does_not_start(tmp_path):
    app = DepthpruneApp(tmp_path / "runs")

    async def scenario(pilot):
        setup = app.screen
        assert isinstance(setup, SetupScreen)
        setup.query_one("#model", Input).value = "tiny:llama:8"
        setup.query_one("#k", Input).value = "8"
        setup.query_one("#eval_tasks", Input).value = "demo-text,nope"
        await wait_for(pilot, lambda: setup.checked is not None, 60, "the fields' check")
        assert "must be smaller than the 8 removable blocks" in text(setup.query_one("#k-note"))
        assert "unknown task 'nope'" in text(setup.query_one("#eval_tasks-note"))
        await pilot.press("ctrl+s")
        assert setup.pending is None and not app.launches
        assert "fix before starting: Blocks to remove, Eval tasks" in text(setup.query_one("#status"))

    run_app(app, scenario)


def test_help_and_palette_come_from_the_registry(recorded_runs):
    app = DepthpruneApp(recorded_runs)

    async def scenario(pilot):
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        shown = printed(app.screen.query_one("#help-table", Static))
        assert all(a.description in shown and a.id in shown for a in ACTIONS)
        await pilot.press("escape")
        await pilot.press("f3", "space", "down", "space")
        await pilot.press("ctrl+p")
        await pilot.press(*"compare the marked")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), 5, "the palette's compare command")

    run_app(app, scenario)


def test_user_keymap_and_bad_files_fall_back_with_one_notification(recorded_runs, tmp_path):
    config = tmp_path / "config"
    (config / "themes").mkdir(parents=True)
    (config / "config.toml").write_text('theme = "nope"\n[keys]\n"app.runs" = "f9"\n"no.such" = "x"\n')
    (config / "themes" / "broken.toml").write_text('name = "broken"\nprimary = "not-a-colour"\n')
    (config / "themes" / "mine.toml").write_text('name = "mine"\nprimary = "#ff0000"\n')
    app = DepthpruneApp(recorded_runs, config_dir=config)

    async def scenario(pilot):
        assert app.theme == "depthprune-dark" and "mine" in app.available_themes
        [note] = app._notifications
        assert "unknown action 'no.such'" in note.message
        assert "broken.toml: primary = 'not-a-colour' is not a colour" in note.message
        assert "unknown theme 'nope'" in note.message
        await pilot.press("f9")
        assert isinstance(app.screen, RunsScreen)
        app.theme = "mine"  # a user theme without app variables gets them derived
        await pilot.pause()
        assert app.theme_variables["importance-high"]

    run_app(app, scenario)


def test_command_line_errors_are_one_line_and_exit_2(tmp_path, capsys):
    for argv, message in [
        (["--attach", "nope", "--runs-dir", str(tmp_path)], "error: run 'nope' (from --attach) not found"),
        (["--data-dir", str(tmp_path / "none")], "(from --data-dir) not found"),
        (["--theme", "nope", "--runs-dir", str(tmp_path)], "error: unknown theme 'nope' (from --theme)"),
        (["--study", "nope", "--runs-dir", str(tmp_path)], "error: study 'nope' (from --study) not found"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--bogus"])
    assert exit_.value.code == 2


# -- real searches in a child process -------------------------------------------------------------


def fill_setup(app, **values):
    setup = app.screen
    for name, value in values.items():
        setup.query_one(f"#{name}", Input).value = value


def live_or_failed(app):
    """True once the Live screen is up; an AssertionError with Setup's status when the start failed."""
    if isinstance(app.screen, LiveScreen):
        return True
    status = text(app.screen.query_one("#status"))
    assert "did not start" not in status, status
    return False


def test_a_child_that_fails_before_its_run_exists_shows_its_error_in_setup(tmp_path):
    app = DepthpruneApp(tmp_path / "runs")

    async def scenario(pilot):
        fill_setup(app, model="tiny:llama:24", searcher="exhaustive", k="8", eval_tasks="")
        await pilot.press("ctrl+s")
        setup = app.screen
        status = setup.query_one("#status")

        def shown():  # Setup's status if the child failed before its run.json, else the Live screen's
            return text(status) if app.screen is setup else text(app.screen.query_one("#progress"))

        await wait_for(pilot, lambda: "exhaustive search needs" in shown(), 90, "the child's error")
        assert "error: exhaustive search needs C(24,8) = 735,471 evaluations" in shown()
        if app.screen is not setup:
            assert "FAILED" in text(app.screen.query_one("#title"))

    run_app(app, scenario)


def test_start_a_tiny_run_and_watch_bars_and_progress_move(tmp_path):
    runs_dir = tmp_path / "runs"
    app = DepthpruneApp(runs_dir)

    async def scenario(pilot):
        fill_setup(app, model="tiny:llama:8", k="2", eval_tasks="demo-text", eval_seq_len="64")
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: live_or_failed(app), 90, "the run directory")
        live = app.screen
        assert live.run.config["pid"] == app.launches[0].pid
        # the end: the search, the result's benchmark and then the dense model's (the reference row)
        await wait_for(pilot, lambda: live.view.dense is not None and not live.writer_alive, 120, "the end")
        await pilot.pause(0.3)
        bars = live.query_one(ImportanceBars)
        assert len(bars.importance) == 8 and len(bars.removed) == 2
        assert live.view.done == live.view.planned
        progress = text(live.query_one("#progress"))
        assert f"candidates {live.view.done}/{live.view.planned} (100%)" in progress
        hits = live.run.result()["prefix_cache"]["hits"]
        assert hits > 0 and f"prefix cache hits {hits} " in progress  # the counter result.json records
        table = live.query_one("#configs", DataTable)
        assert table.row_count >= 2 and str(table.get_row_at(0)[0]) == "dense"
        assert app.detach_message() == ""  # nothing left running

    run_app(app, scenario)


def test_stop_a_running_search_after_confirmation(tmp_path):
    runs_dir = tmp_path / "runs"
    app = DepthpruneApp(runs_dir)

    async def scenario(pilot):
        fill_setup(app, model="tiny:llama:24", searcher="anneal", k="8", budget="100000", eval_tasks="")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: live_or_failed(app), 90, "the run directory")
        live = app.screen
        await wait_for(pilot, lambda: live.view.done >= 3, 60, "some evaluations")
        assert live.state == "running"
        assert f"--attach {live.run.id}" in app.detach_message()
        await pilot.press("x")
        await pilot.press("n")  # not confirmed: keeps running
        await pilot.pause(0.5)
        assert live.state == "running"
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: live.view.outcome == "stopped", 30, "the stopped event")
        assert app.launches[0].process.wait(30) == 130
        await wait_for(pilot, lambda: "STOPPED" in text(live.query_one("#title")), 5, "the stopped title")

    try:
        run_app(app, scenario)
    finally:
        for launched in app.launches:  # never leave a search running after a failed test
            if launched.process.poll() is None:
                os.kill(launched.pid, signal.SIGKILL)


# -- studies started from the UI ------------------------------------------------------------------


def open_new_study_form(pilot, app):
    async def go():
        await pilot.press("f4")
        assert isinstance(app.screen, StudiesScreen)
        await pilot.press("n")
        assert isinstance(app.screen, FormModal)
        return app.screen

    return go()


def form_errors(form) -> str:
    return text(form.query_one("#form-errors"))


def test_new_study_form_validates_lists_and_files_inline(tmp_path):
    runs_dir = tmp_path / "runs"
    app = DepthpruneApp(runs_dir)
    unknown_key = tmp_path / "bad-key.toml"
    unknown_key.write_text('name = "x"\nsearcher = ["greedy"]\n')
    malformed = tmp_path / "malformed.toml"
    malformed.write_text('name = "x\n')

    async def scenario(pilot):
        form = await open_new_study_form(pilot, app)
        assert "objectives: ppl" in text(form.query_one(Static))  # the hint lists the valid names
        form.query_one("#f-searchers", Input).value = "greedy,gredy"
        await pilot.pause()
        assert "✖ searchers: unknown 'gredy'; valid: " in form_errors(form) and "beam" in form_errors(form)
        form.query_one("#f-searchers", Input).value = "greedy"
        form.query_one("#f-objectives", Input).value = ""
        await pilot.pause()
        assert form_errors(form).startswith("✖ objectives: at least one of: ppl")
        form.query_one("#f-file", Input).value = str(unknown_key)
        await pilot.pause()
        assert form_errors(form) == f"✖ file: unknown key 'searcher' in {unknown_key}; known: " + ", ".join(
            StudyConfig.__dataclass_fields__
        )
        form.query_one("#f-file", Input).value = str(malformed)
        await pilot.pause()
        assert form_errors(form).startswith(f"✖ file: {malformed}: malformed TOML (")
        assert len(form_errors(form).splitlines()) == 1
        await pilot.press("enter")  # refused: nothing starts
        assert isinstance(app.screen, FormModal) and not app.launches
        await pilot.press("escape")
        assert isinstance(app.screen, StudiesScreen) and not app.launches

    run_app(app, scenario)


def kill_launched(app):
    """Never leave a child (nor the workers of its session) running after a test."""
    for launched in app.launches:
        if launched.process.poll() is None:
            os.killpg(launched.pid, signal.SIGKILL)
            launched.process.wait(30)


def test_a_study_file_the_child_refuses_shows_its_one_line_error(tmp_path):
    runs_dir = tmp_path / "runs"
    app = DepthpruneApp(runs_dir)
    path = tmp_path / "too-deep.toml"
    path.write_text(
        'name = "too-deep"\nmodels = ["tiny:llama:12"]\nobjectives = ["ppl"]\nsearchers = ["greedy"]\n'
        'baselines = []\nk = [40]\n[evaluation]\ntasks = ["demo-text"]\n'
    )

    async def scenario(pilot):
        form = await open_new_study_form(pilot, app)
        form.query_one("#f-file", Input).value = str(path)
        await pilot.pause()
        assert form_errors(form) == ""
        await pilot.press("enter")
        studies = app.screen
        assert isinstance(studies, StudiesScreen) and len(app.launches) == 1
        status = studies.query_one("#status")
        await wait_for(pilot, lambda: "did not start" in text(status), 90, "the child's error")
        assert text(status) == (
            "✖ the study did not start: error: k=40 (from study 'too-deep' k = 40 for tiny:llama:12) "
            "must be smaller than the 12 removable blocks (12 blocks, 0 protected)"
        )
        assert "\n" not in text(status) and "Traceback" not in text(status)

    try:
        run_app(app, scenario)
    finally:
        kill_launched(app)


def test_start_a_study_from_setup_and_follow_its_running_cell(tmp_path):
    runs_dir = tmp_path / "runs"
    app = DepthpruneApp(runs_dir)

    async def scenario(pilot):
        # anneal with a huge budget in a large space keeps the second cell running while the test watches it
        fill_setup(app, model="tiny:llama:24", k="8", budget="100000", eval_tasks="demo-text", eval_limit="2")
        await pilot.pause()
        form = await open_new_study_form(pilot, app)
        for name, value in {
            "name": "ui-grid",
            "objectives": "ppl",
            "searchers": "oneshot,anneal",
            "baselines": "",
        }.items():
            form.query_one(f"#f-{name}", Input).value = value
        await pilot.pause()
        assert form_errors(form) == ""
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StudyScreen), 90, "the Study screen")
        study = app.screen
        await wait_for(pilot, lambda: study.cells is not None, 10, "the cells")
        file = runs_dir / "studies" / "ui-grid" / "study.toml"
        config = load_study(file)  # the study the child runs, reproducible from its file
        assert app.launches[0].process.args[-4:] == ["--config", str(file), "--runs-dir", str(runs_dir)]
        assert (config.models, config.objectives, config.searchers, config.baselines, config.k) == (
            ["tiny:llama:24"],
            ["ppl"],
            ["oneshot", "anneal"],
            [],
            [8],
        )
        assert config.options == {"anneal": {"budget": 100000}}  # oneshot takes no budget
        assert (config.evaluation["tasks"], config.evaluation["limit"]) == (["demo-text"], 2)

        def cell(searcher):
            return next(c for c in study.cells if c.cell.searcher == searcher)

        await wait_for(pilot, lambda: cell("anneal").state == "running", 120, "the anneal cell to run")
        assert (
            cell("oneshot").state == "finished" and cell("oneshot").progress == "26 candidates"
        )  # dense, 24 singles, the 8-set
        await wait_for(pilot, lambda: cell("anneal").progress.startswith("searching "), 60, "its search")
        assert re.fullmatch(r"searching \d+/\?", cell("anneal").progress)  # anneal's count is not known in advance
        assert cell("anneal").worker == f"pid {app.launches[0].pid} · cpu"  # the in-process executor
        table = study.query_one("#cells", DataTable)
        assert [str(c) for c in table.get_row_at(1)] == [
            "ppl anneal k8 s0",
            "running",
            cell("anneal").progress,
            cell("anneal").worker,
        ]
        await pilot.press("down", "enter")
        live = app.screen
        assert isinstance(live, LiveScreen) and live.run.id == "ui-grid--tiny-llama-24-ppl-anneal-k8-s0"
        seen = live.view.done
        await wait_for(pilot, lambda: live.view.done > seen, 60, "the live candidates")
        assert live.state == "running"
        await pilot.press("escape")
        assert app.screen is study

    try:
        run_app(app, scenario)
    finally:
        kill_launched(app)
