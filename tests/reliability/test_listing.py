"""One damaged run never hides the others: listings skip it and name it; only commands on that run refuse."""

import json

import pytest

from depthprune.core.runs import list_runs
from depthprune.pipeline.prune import PruneConfig, start

from ..test_cli import run_cli

CONFIG = PruneConfig(
    model="tiny:llama",
    objective="ppl",
    searcher="oneshot",
    k=1,
    calib="demo",
    calib_samples=1,
    calib_seq_len=32,
    options={"scorer": "bi"},
)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("listing")
    good, _ = start(CONFIG, runs)
    damaged, _ = start(CONFIG, runs)
    lines = (damaged.path / "events.jsonl").read_text().splitlines()
    (damaged.path / "events.jsonl").write_text("\n".join([lines[0], "{garbage", *lines[1:]]) + "\n")
    nan, _ = start(CONFIG, runs)
    result = json.loads((nan.path / "result.json").read_text())
    (nan.path / "result.json").write_text(json.dumps(result).replace('"value": ', '"value": NaN, "was": ', 1))
    return runs, good, damaged, nan


@pytest.mark.parametrize("fmt", ["md", "csv", "json"])
def test_runs_ls_lists_the_readable_runs_and_names_each_unreadable_one(fmt, runs_dir, monkeypatch, capsys, tally):
    runs, good, damaged, nan = runs_dir
    code, out, err = run_cli(monkeypatch, capsys, "runs", "ls", "--runs-dir", str(runs), "--format", fmt)
    assert code == 0, err
    assert good.id in out and damaged.id not in out and nan.id not in out
    warnings = [line for line in err.splitlines() if line.strip()]
    assert len(warnings) == 2 and all(line.startswith("warning: skipped an unreadable run") for line in warnings)
    assert f"{damaged.id}/events.jsonl:2: broken event line" in err and f"{nan.id}/result.json" in err
    tally["bad inputs"] += 1


def test_eval_latest_uses_a_readable_run_and_commands_on_the_damaged_run_refuse(runs_dir, monkeypatch, capsys, tally):
    runs, good, damaged, _ = runs_dir
    assert [r.id for r in list_runs(runs)] == [good.id]
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "eval",
        "--run",
        "latest",
        "--runs-dir",
        str(runs),
        "--tasks",
        "demo-text",
        "--seq-len",
        "32",
        "--limit",
        "1",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["removed"] == good.result()["removed"]
    code, _, err = run_cli(monkeypatch, capsys, "runs", "show", str(damaged.path))
    assert code == 2 and "events.jsonl:2: broken event line" in err
    tally["bad inputs"] += 1
