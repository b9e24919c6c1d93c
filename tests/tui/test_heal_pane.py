"""Healing from the keyboard: `h` on Runs heals a finished run in a child process (`depthprune heal
--run`), and the run's Live screen shows the heal's loss curve and its before -> after metrics."""

import signal

from textual.widgets import DataTable, Sparkline

from depthprune.core.events import event_from_dict
from depthprune.pipeline.prune import PruneConfig, start
from depthprune.tui.app import DepthpruneApp
from depthprune.tui.screens.form import FormModal
from depthprune.tui.screens.live import LiveScreen, stop_question
from depthprune.tui.screens.runs import check_heal
from depthprune.tui.viewmodel import RunView

from .test_pilot import run_app, text, wait_for


def phase(step, loss, total=4):
    return event_from_dict(
        {"v": 2, "type": "phase", "phase": "healing", "done": step, "total": total, "loss": loss}, "test"
    )


def healed(losses, before=11.0, after=9.5):
    return event_from_dict(
        {
            "v": 2,
            "type": "healed",
            "method": "lora",
            "removed": [1, 2],
            "data_hash": "0" * 64,
            "settings": {},
            "before": {"demo-text": {"ppl": before}},
            "after": {"demo-text": {"ppl": after}},
            "losses": losses,
            "out": "/runs/x/healed-lora",
            "seconds": 2.5,
        },
        "test",
    )


def test_the_heal_loss_curve_follows_steps_a_resume_repeats_and_a_new_heal_starts_afresh():
    view = RunView({"k": 2, "n_blocks": 4, "objective": {"objective": "ppl"}})
    view.fold([phase(0, None), phase(1, 3.0), phase(2, 2.5)])
    assert view.heal_curve == [3.0, 2.5] and view.phase_text(writer_alive=True) == "healing 2/4 · loss 2.5000"
    assert view.eta_seconds(now=10.0, writer_alive=True) == 10.0 / 2 * 2  # seconds per step so far × steps left
    view.fold([phase(0, None), phase(2, 2.4), phase(3, 2.2)])  # resumed from the checkpoint at step 1
    assert view.heal_curve == [3.0, 2.4, 2.2]
    view.fold([healed([3.0, 2.4, 2.2, 2.0])])
    assert view.heal_curve == [3.0, 2.4, 2.2, 2.0] and view.heals["lora"].after["demo-text"]["ppl"] == 9.5
    view.fold([phase(0, None), phase(1, 1.9)])  # another heal: its own curve
    assert view.heal_curve == [1.9]


def test_the_heal_form_refuses_an_unknown_method_and_a_used_output(tmp_path):
    run = type("R", (), {"path": tmp_path})()
    good = {"method": "linear", "steps": "200", "tasks": "demo-text", "limit": "", "data_dir": ""}
    assert check_heal(run, good) == {}
    assert "not one of linear, lora" in check_heal(run, {**good, "method": "ridge"})["method"]
    (tmp_path / "healed-linear").mkdir()
    (tmp_path / "healed-linear" / "config.json").write_text("{}")
    assert "healed with linear already" in check_heal(run, good)["method"]
    assert check_heal(run, {**good, "steps": "0"})["steps"] == "'0' is not an integer ≥ 1"


def test_heal_a_finished_run_from_runs_and_see_before_and_after_on_its_live_screen(tmp_path):
    runs_dir = tmp_path / "runs"
    config = PruneConfig(model="tiny:llama:8", objective="ppl", searcher="tail", k=2, calib_samples=2, calib_seq_len=64)
    start(config, runs_dir)
    app = DepthpruneApp(runs_dir)

    async def scenario(pilot):
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1, 10, "the run")
        await pilot.press("h")
        assert isinstance(app.screen, FormModal)
        app.screen.query_one("#f-limit").value = "2"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.launches and app.launches[-1].process.poll() is not None, 120, "the heal")
        assert app.launches[-1].process.returncode == 0, app.launches[-1].failure()
        await pilot.press("enter")
        live = app.screen
        assert isinstance(live, LiveScreen)
        await wait_for(pilot, lambda: "linear" in live.view.heals, 10, "the healed event")
        await pilot.pause(0.2)
        progress = text(live.query_one("#progress"))
        after = live.view.heals["linear"].after["demo-text"]["ppl"]
        assert (
            "healed linear in" in progress
            and f"demo-text ppl {live.view.heals['linear'].before['demo-text']['ppl']:.4g} → {after:.4g}" in progress
        )
        assert not live.query_one("#heal-curve", Sparkline).display  # a linear heal trains nothing: no loss curve

    run_app(app, scenario)


def test_stopping_during_a_heal_says_it_ends_the_heal_and_how_a_lora_heal_continues():
    question, sig = stop_question("r1", "healing", "finished")
    assert "ends the heal now" in question and "--method lora --resume" in question and sig == signal.SIGINT
