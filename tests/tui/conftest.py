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
    events = [{"type": "started", "resumed_evaluations": 0, "planned_evaluations": sum(n_blocks - r for r in range(k)) + 1}]
    chosen: list[int] = []
    n = 0
    for round_ in range(k):
        scored = {}
        for b in range(n_blocks):
            if b in chosen:
                continue
            removed = sorted(chosen + [b])
            scored[b] = value_of(removed, n_blocks)
            events.append({"type": "evaluation", "n": n, "removed": removed, "value": scored[b], "seconds": seconds,
                           "status": f"round {round_ + 1}/{k}"})
            n += 1
        chosen.append(min(scored, key=scored.get))
        if round_ == 0:
            events.append({"type": "importance", "importance": {str(b): v for b, v in scored.items()}})
    if finish:
        chosen.sort()
        events.append({"type": "finished", "removed": chosen, "value": value_of(chosen, n_blocks), "evaluations": n})
    return [{"v": 1, "t": T0 + i * seconds, **e} for i, e in enumerate(events)]


def evaluated_event(removed, t: float, ppl: float, acc: float) -> dict:
    return {"v": 1, "t": t, "type": "evaluated", "removed": list(removed), "limit": 8, "seq_len": 128, "seconds": 1.0,
            "tasks": {"demo-text": {"ppl": ppl, "nll": 2.5, "windows": 4, "tokens": 512},
                      "demo-mc": {"acc": acc, "acc_norm": acc - 0.05, "primary": "acc", "items": 20}}}


def write_run(runs_dir: Path, run_id: str, events: list[dict], *, model="tiny:llama:8", n_blocks=8, k=2,
              searcher="greedy", seed=0, result: bool = True, torn_tail: str = "") -> Path:
    """A run directory as `core.runs` writes it, with fixed ids and timestamps."""
    path = runs_dir / run_id
    path.mkdir(parents=True)
    config = {"schema": 1, "id": run_id, "model": model, "n_blocks": n_blocks, "k": k, "searcher": searcher,
              "seed": seed, "objective": {"objective": "ppl"}, "protected": [], "started": "2026-01-01T00:00:00+00:00",
              "pid": 999_999_999, "config": {"model": model, "k": k, "searcher": searcher, "seed": seed}}
    (path / "run.json").write_text(json.dumps(config, indent=2))
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events) + torn_tail)
    finished = [e for e in events if e["type"] == "finished"]
    if result and finished:
        (path / "result.json").write_text(json.dumps({"run": run_id, "removed": finished[-1]["removed"],
                                                      "value": finished[-1]["value"],
                                                      "evaluations": finished[-1]["evaluations"]}))
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


@pytest.fixture
def fixtures():
    """The fixture builders, for tests that need their own runs."""
    return type("Fixtures", (), {"greedy_events": staticmethod(greedy_events), "write_run": staticmethod(write_run),
                                 "evaluated_event": staticmethod(evaluated_event), "value_of": staticmethod(value_of),
                                 "T0": T0})
