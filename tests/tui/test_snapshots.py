"""SVG snapshots of every screen at 80×24 and 160×48 in the dark and the light theme.

Deterministic: fixture runs with fixed ids and timestamps, a frozen clock, a relative runs
directory, no animations and no cursor blink. Update with `pytest tests/tui --snapshot-update`
after a deliberate change (or a Textual upgrade), and look at the new SVGs before committing.
"""

import time
from pathlib import Path

import pytest

from depthprune.core.runs import Run
from depthprune.tui.app import DepthpruneApp

from .conftest import STUDY

SIZES = [(80, 24), (160, 48)]
THEMES = ["depthprune-dark", "depthprune-light"]
FINISHED = "20260101-000000-tiny-llama-8-ppl-greedy-k2"
STOPPED = "20260101-000200-tiny-llama-8-ppl-greedy-k2-1"

# screen -> (run to attach or None, keys pressed before the snapshot)
SCREENS = {
    "setup": (None, []),
    "live": (FINISHED, []),
    "live-stopped-log": (STOPPED, ["l"]),
    "runs": (None, ["f3", "space"]),
    "compare": (None, ["f3", "space", "down", "space", "c", "d"]),
    "help": (None, ["f1"]),
}
# study screens, on the fixture study: screen -> (study to open or None, keys pressed before the snapshot)
STUDY_SCREENS = {
    "studies": (None, ["f4"]),
    "study": (STUDY, []),
}


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(screen, size, theme, recorded_runs, fixtures, monkeypatch, snap_compare):
    monkeypatch.chdir(recorded_runs.parent)
    runs_dir = Path("runs")
    attach, keys = SCREENS[screen]
    app = DepthpruneApp(
        runs_dir, attach=Run.open(attach, runs_dir) if attach else None, theme=theme, clock=lambda: fixtures.T0 + 3600
    )

    async def checked(pilot):  # Setup: after its fields' check (a separate process) has answered
        if screen == "setup":
            deadline = time.monotonic() + 120
            while app.screen.checked is None and time.monotonic() < deadline:
                await pilot.pause(0.1)
            await pilot.pause()

    assert snap_compare(app, press=keys, terminal_size=size, run_before=checked)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(STUDY_SCREENS))
def test_study_screen(screen, size, theme, recorded_study, fixtures, monkeypatch, snap_compare):
    monkeypatch.chdir(recorded_study.parent)
    study, keys = STUDY_SCREENS[screen]
    app = DepthpruneApp(Path("runs"), study=study, theme=theme, clock=lambda: fixtures.T0 + 3600)
    assert snap_compare(app, press=keys, terminal_size=size)
