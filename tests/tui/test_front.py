"""The Live screen's Pareto-front scatter: the view model's running front, the braille cells, and the
real app replaying and following a run whose candidates carry terms (hand-written events)."""

import asyncio
import itertools
import json
import random

import pytest

from depthprune.core.events import event_from_dict
from depthprune.core.runs import Run
from depthprune.searchers.pareto import pareto_front
from depthprune.tui.app import DepthpruneApp
from depthprune.tui.screens.live import LiveScreen
from depthprune.tui.viewmodel import RunView
from depthprune.tui.widgets.scatter import CHOSEN, DENSE, FRONT, FrontScatter, scatter_cells

from .conftest import T0, write_run

MIX = "mix:ppl=1,margin=1"
# k-sets of 8 blocks with (ppl, margin) terms: the front is (1 2), (1 3), (2 3)
TERMS = {
    (0, 1): (0.30, 0.40),
    (1, 2): (0.05, 0.50),
    (1, 3): (0.10, 0.10),
    (2, 3): (0.60, -0.20),
    (4, 5): (0.50, 0.30),
    (6, 7): (0.70, 0.60),
}
FRONT_SETS = {(1, 2), (1, 3), (2, 3)}


def candidates(sets, start=0):
    """candidate events of `sets` (mix value = ppl + margin), one second apart from T0 + start."""
    return [
        {
            "v": 2,
            "t": T0 + start + i,
            "type": "candidate",
            "n": start + i + 1,
            "removed": list(s),
            "value": sum(TERMS[s]),
            "seconds": 0.5,
            "status": "generation 1/1",
            "terms": dict(zip(("ppl", "margin"), TERMS[s])),
        }
        for i, s in enumerate(sets)
    ]


def test_the_running_front_is_the_non_dominated_k_sets_in_any_arrival_order():
    config = {"k": 2, "n_blocks": 8, "objective": {"objective": MIX}}
    rng = random.Random(0)
    points = {s: (rng.uniform(-1, 1), rng.uniform(-1, 1)) for s in itertools.combinations(range(8), 2)}
    expected = {list(points)[i] for i in pareto_front(list(points.values()))}
    for seed in range(5):
        order = list(points)
        random.Random(seed).shuffle(order)
        view = RunView(config)
        events = [
            {"type": "candidate", "n": i, "removed": list(s), "value": sum(points[s]), "seconds": 0.1}
            | {"terms": dict(zip(("ppl", "margin"), points[s]))}
            for i, s in enumerate(order)
        ]
        view.fold([event_from_dict(e, "test") for e in events])
        assert set(view.front) == expected and view.term_names == ["ppl", "margin"]
    plain = RunView(config)  # candidates without terms (a single objective): no front
    plain.fold([event_from_dict({"type": "candidate", "n": 0, "removed": [0, 1], "value": 1.0, "seconds": 0}, "t")])
    assert plain.front == [] and plain.terms == {}


def test_scatter_cells_put_each_kind_where_its_point_lies():
    cells = scatter_cells(cloud=[(1.0, 1.0)], front=[(-1.0, 0.25), (0.5, -1.0)], chosen=(0.5, -1.0), width=5, height=3)
    glyphs = ["".join(g for g, _ in row) for row in cells]
    assert glyphs[1][2] == DENSE  # (0, 0) is the middle of [-1, 1] × [-1, 1]
    assert glyphs[0][0] == " " and glyphs[1][0] == FRONT  # y = 0.25 lies in the middle row
    assert glyphs[2][3] == CHOSEN  # the chosen front member shows as chosen
    assert cells[0][4][1] == "cloud" and 0x2800 < ord(glyphs[0][4]) <= 0x28FF  # a braille dot, top right


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_the_live_screen_draws_the_front_and_follows_new_candidates(size, tmp_path):
    runs_dir = tmp_path / "runs"
    first = [(0, 1), (4, 5), (6, 7), (1, 3)]
    events = [{"v": 2, "t": T0, "type": "started", "resumed_evaluations": 0}, *candidates(first, 1)]
    path = write_run(runs_dir, "nsga2-run", events, objective=MIX, searcher="nsga2", result=False)
    app = DepthpruneApp(runs_dir, attach=Run.open(path), clock=lambda: T0 + 100)

    def shown(live):
        title = str(live.query_one("#front-title").render())
        cells = "".join(str(live.query_one(FrontScatter).render()))
        return title, cells

    async def scenario(pilot):
        live = app.screen
        assert isinstance(live, LiveScreen)
        scatter = live.query_one(FrontScatter)
        assert scatter.display and scatter.size.height >= 3
        title, cells = shown(live)
        assert "Pareto front 1/4" in title and "x ppl" in title and "y margin" in title
        assert cells.count(DENSE) == 1 and cells.count(CHOSEN) == 1  # (1 3): front alone, and the best
        with open(path / "events.jsonl", "a") as f:
            f.write("".join(json.dumps(e) + "\n" for e in candidates([(1, 2), (2, 3)], 10)))
        for _ in range(50):
            await pilot.pause(0.1)
            if live.view.done == 6:
                break
        await pilot.pause(0.2)
        assert set(live.view.front) == FRONT_SETS
        title, cells = shown(live)
        assert "Pareto front 3/6" in title
        assert cells.count(FRONT) + cells.count(CHOSEN) == 3 and cells.count(CHOSEN) == 1

    async def go():
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await scenario(pilot)

    asyncio.run(go())


def test_a_run_without_terms_shows_no_scatter(recorded_runs):
    run = Run.open("20260101-000000-tiny-llama-8-ppl-greedy-k2", recorded_runs)
    app = DepthpruneApp(recorded_runs, attach=run, clock=lambda: T0 + 1000)

    async def go():
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert not app.screen.query_one(FrontScatter).display
            assert not app.screen.query_one("#front-title").display

    asyncio.run(go())
