"""The first f4: the Studies screen's module (study analyses: scipy, torch) is imported only then, and
a notice is painted before the import's seconds."""

import sys

from depthprune.tui.app import STUDIES_MODULE, DepthpruneApp

from .test_pilot import run_app, wait_for


def test_the_first_f4_paints_a_notice_then_opens_studies(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, STUDIES_MODULE, raising=False)  # as in a fresh process
    app = DepthpruneApp(tmp_path / "runs")

    async def scenario(pilot):
        await pilot.press("f4")
        assert any("loading the study analyses" in n.message for n in app._notifications)
        await wait_for(pilot, lambda: app.current_mode == "studies", 30, "the Studies screen")
        assert STUDIES_MODULE in sys.modules

    run_app(app, scenario)
