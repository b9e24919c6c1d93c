"""Fixture run directories written from fixed content (no model, no clock) for the TUI tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC: every fixture timestamp counts from here


def block_cost(block: int, n_blocks: int) -> float:
    """A fixed synthetic cost of removing `block`: distinct per block, middle blocks cheapest."""
    return round(abs(block - n_blocks / 2) / n_blocks + (block * 7 % n_blocks) / (10 * n_blocks), 4)


def value_of(removed, n_blocks: int) -> float:
    return round(10.0 + sum(block_cost(b, n_blocks) for b in removed) * (1 + 0.1 * len(removed)), 4)


def greedy_events(n_blocks: int, k: int, finish: bool = True, seconds: float = 0.5) -> list[dict]:
    """The events a greedy search of k rounds over `value_of` writes, timestamps `seconds` apart."""
    events = [
        {"type": "started", "resumed_evaluations": 0, "planned_evaluations": sum(n_blocks - r for r in range(k)) + 1}
    ]
    chosen: list[int] = []
    n = 0
    for round_ in range(k):
        scored = {}
        for b in range(n_blocks):
            if b in chosen:
                continue
            removed = sorted(chosen + [b])
            scored[b] = value_of(removed, n_blocks)
            events.append(
                {
                    "type": "evaluation",
                    "n": n,
                    "removed": removed,
                    "value": scored[b],
                    "seconds": seconds,
                    "status": f"round {round_ + 1}/{k}",
                }
            )
            n += 1
        chosen.append(min(scored, key=scored.get))
        if round_ == 0:
            events.append({"type": "importance", "importance": {str(b): v for b, v in scored.items()}})
    if finish:
        chosen.sort()
        events.append({"type": "finished", "removed": chosen, "value": value_of(chosen, n_blocks), "evaluations": n})
    return [{"v": 1, "t": T0 + i * seconds, **e} for i, e in enumerate(events)]


def evaluated_event(removed, t: float, ppl: float, acc: float) -> dict:
    return {
        "v": 1,
        "t": t,
        "type": "evaluated",
        "removed": list(removed),
        "limit": 8,
        "seq_len": 128,
        "seconds": 1.0,
        "tasks": {
            "demo-text": {"ppl": ppl, "nll": 2.5, "windows": 4, "tokens": 512},
            "demo-mc": {"acc": acc, "acc_norm": acc - 0.05, "primary": "acc", "items": 20},
        },
    }


def write_run(
    runs_dir: Path,
    run_id: str,
    events: list[dict],
    *,
    model="tiny:llama:8",
    n_blocks=8,
    k=2,
    searcher="greedy",
    seed=0,
    objective="ppl",
    result: bool = True,
    result_extra: dict | None = None,
    torn_tail: str = "",
) -> Path:
    """A run directory as `core.runs` writes it, with fixed ids and timestamps; `result_extra` adds
    fields to result.json (a study reads seconds and block_forwards from it)."""
    path = runs_dir / run_id
    path.mkdir(parents=True)
    config = {
        "schema": 1,
        "id": run_id,
        "model": model,
        "n_blocks": n_blocks,
        "k": k,
        "searcher": searcher,
        "seed": seed,
        "objective": {"objective": objective},
        "protected": [],
        "started": "2026-01-01T00:00:00+00:00",
        "pid": 999_999_999,
        "config": {"model": model, "k": k, "searcher": searcher, "seed": seed},
    }
    (path / "run.json").write_text(json.dumps(config, indent=2))
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events) + torn_tail)
    finished = [e for e in events if e["type"] == "finished"]
    if result and finished:
        (path / "result.json").write_text(
            json.dumps(
                {
                    "run": run_id,
                    "removed": finished[-1]["removed"],
                    "value": finished[-1]["value"],
                    "evaluations": finished[-1]["evaluations"],
                    **(result_extra or {}),
                }
            )
        )
    return path


@pytest.fixture
def recorded_runs(tmp_path) -> Path:
    """A runs directory with three fixed runs: two finished greedy runs (one benchmarked), one stopped."""
    runs_dir = tmp_path / "runs"
    a = greedy_events(8, 2)
    a.append(evaluated_event(a[-1]["removed"], a[-1]["t"] + 1, ppl=12.5, acc=0.45))
    write_run(runs_dir, "20260101-000000-tiny-llama-8-ppl-greedy-k2", a)
    b = greedy_events(8, 3)
    b.append(evaluated_event(b[-1]["removed"], b[-1]["t"] + 1, ppl=14.25, acc=0.4))
    write_run(runs_dir, "20260101-000100-tiny-llama-8-ppl-greedy-k3", b, k=3)
    stopped = greedy_events(8, 2, finish=False)[:6]
    stopped.append({"v": 1, "t": stopped[-1]["t"] + 0.5, "type": "stopped", "evaluations": 5})
    write_run(runs_dir, "20260101-000200-tiny-llama-8-ppl-greedy-k2-1", stopped)
    return runs_dir


STUDY = "fixture-grid"
# (objective, searcher, k) -> (state, removed set); cells not listed are not started
STUDY_CELLS = {
    ("ppl", "oneshot", 2): ("finished", [3, 4]),
    ("ppl", "greedy", 2): ("finished", [3, 5]),
    ("ppl", "beam", 2): ("finished", [2, 3]),
    ("ppl", "tail", 2): ("finished", [5, 6]),
    ("margin", "oneshot", 2): ("finished", [1, 6]),
    ("margin", "greedy", 2): ("finished", [3, 4]),
    ("margin", "beam", 2): ("finished", [1, 4]),
    ("margin", "tail", 2): ("finished", [5, 6]),
    ("ppl", "oneshot", 3): ("finished", [2, 3, 4]),
    ("ppl", "greedy", 3): ("finished", [3, 4, 5]),
    ("ppl", "beam", 3): ("stopped", [3, 4, 5]),
    ("ppl", "tail", 3): ("finished", [4, 5, 6]),
    ("margin", "oneshot", 3): ("incomplete", [1, 4, 6]),
}
STUDY_UNSCORED = [(4, 5, 6)]  # finished, not yet evaluated on the suite
STUDY_COST = {"oneshot": (2.5, 9), "greedy": (6.0, 15), "beam": (14.0, 41), "tail": (0.5, 1)}  # seconds, evaluations


def suite_scores(removed) -> dict:
    """Fixed suite scores of a removed set (the dense model: `()`), as `evaluate` reports them."""
    ppl = round(20.0 + 8 * sum(block_cost(b, 8) for b in removed) + 0.5 * len(removed), 3)
    acc = round(0.5 - 0.03 * len(removed) - 0.01 * (sum(removed) % 4), 4)
    return {
        "demo-text": {"ppl": ppl, "nll": 3.0, "windows": 4, "tokens": 512},
        "demo-mc": {"acc": acc, "acc_norm": acc, "primary": "acc", "items": 20},
    }


def write_study(runs_dir: Path) -> Path:
    """The study `STUDY` on disk: study.json, the cells of `STUDY_CELLS` and the suite scores of every
    finished cell's set (but `STUDY_UNSCORED`) and the dense model; returns the study folder."""
    from depthprune.study.config import StudyConfig
    from depthprune.study.runner import study_dir, suite_key

    config = StudyConfig(
        name=STUDY,
        models=["tiny:llama:8"],
        objectives=["ppl", "margin"],
        searchers=["oneshot", "greedy", "beam"],
        baselines=["tail"],
        k=[2, 3],
        seeds=[0],
    )
    folder = study_dir(runs_dir, STUDY)
    folder.mkdir(parents=True)
    (folder / "study.json").write_text(json.dumps(config.to_dict(), indent=2))
    scored = {()}
    for cell in config.cells():
        if (cell.objective, cell.searcher, cell.k) not in STUDY_CELLS:
            continue
        state, removed = STUDY_CELLS[cell.objective, cell.searcher, cell.k]
        value = value_of(removed, 8) if cell.objective == "ppl" else round(-value_of(removed, 8) / 40, 4)
        seconds, evaluations = STUDY_COST[cell.searcher]
        events = [
            {"type": "started", "resumed_evaluations": 0, "planned_evaluations": evaluations},
            {"type": "evaluation", "n": 0, "removed": removed, "value": value, "seconds": seconds, "status": ""},
        ]
        events.append(
            {"type": "finished", "removed": removed, "value": value, "evaluations": evaluations}
            if state == "finished"
            else {"type": "stopped", "evaluations": 1}
            if state == "stopped"
            else None
        )
        write_run(
            runs_dir,
            cell.run_name(STUDY),
            [{"v": 1, "t": T0 + i, **e} for i, e in enumerate(events) if e],
            k=cell.k,
            searcher=cell.searcher,
            objective=cell.objective,
            result_extra={"seconds": seconds, "block_forwards": 6 * evaluations},
        )
        if state == "finished" and tuple(removed) not in STUDY_UNSCORED:
            scored.add(tuple(removed))
    suite = suite_key(config)
    (folder / "evaluations.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "suite": suite,
                    "model": "tiny:llama:8",
                    "removed": list(removed),
                    "tasks": suite_scores(removed),
                    "seconds": 1.0,
                    "n_blocks": 8,
                }
            )
            + "\n"
            for removed in sorted(scored)
        )
    )
    return folder


@pytest.fixture
def recorded_study(tmp_path) -> Path:
    """A runs directory holding the study `STUDY` (16 cells: 11 finished, 1 stopped, 1 incomplete,
    3 not started; 9 of its 10 models evaluated) and nothing else."""
    runs_dir = tmp_path / "runs"
    write_study(runs_dir)
    return runs_dir


@pytest.fixture
def fixtures():
    """The fixture builders, for tests that need their own runs."""
    return type(
        "Fixtures",
        (),
        {
            "greedy_events": staticmethod(greedy_events),
            "write_run": staticmethod(write_run),
            "evaluated_event": staticmethod(evaluated_event),
            "value_of": staticmethod(value_of),
            "T0": T0,
        },
    )
