"""`depthprune speed`: JSON shape, values (sizes, memory, ratios; never timings), the run record, bad inputs."""

import json

import pytest

from depthprune.core.speed import ideal

from .test_cli import prune_tiny_tail, run_cli

TINY = ["--prompt-len", "8", "--gen-len", "3", "--batch", "1,2", "--repeats", "2", "--threads", "1"]


def check_shape(report: dict, batches: list[str]) -> None:
    for name in ("dense", "pruned"):
        figures = report[name]
        assert set(figures["batch"]) == set(batches)
        for b in batches:
            for metric in ("prefill_tok_s", "decode_tok_s", "ttft_s"):
                s = figures["batch"][b][metric]
                assert 0 < s["min"] <= s["median"] <= s["max"]
    d, p, r = report["dense"], report["pruned"], report["ratios"]
    assert p["params"] < d["params"] and p["weight_bytes"] < d["weight_bytes"]
    assert r["params"] == pytest.approx(p["params"] / d["params"])
    for b in batches:
        for metric in ("prefill_tok_s", "decode_tok_s", "ttft_s"):
            assert r["batch"][b][metric] == pytest.approx(
                p["batch"][b][metric]["median"] / d["batch"][b][metric]["median"]
            )
    n, k = report["n_blocks"], len(report["removed"])
    assert report["ideal"]["blocks_only"] == pytest.approx(n / (n - k))
    for b in batches:
        best = report["ideal"]["batch"][b]
        assert 1.0 <= best["decode_speedup"] <= n / (n - k) and 0 <= best["decode_rest_share"] <= 1


def test_speed_json_on_a_tiny_model_and_the_run_record(tmp_path, monkeypatch, capsys):
    runs = str(tmp_path / "runs")
    run_id, removed = prune_tiny_tail(monkeypatch, capsys, runs)
    code, out, err = run_cli(monkeypatch, capsys, "speed", "--run", run_id, "--runs-dir", runs, *TINY, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["removed"] == removed and report["settings"]["threads"] == 1 and report["run"] == run_id
    assert report["settings"]["prompt_len"] == 8 and report["settings"]["gen_len"] == 3
    check_shape(report, ["1", "2"])
    assert report["dense"]["memory"]["peak_bytes"] > 0 and report["pruned"]["memory"]["peak_bytes"] > 0

    from depthprune.core.events import SpeedMeasured
    from depthprune.core.runs import Run

    events = [e for e in Run.open(run_id, tmp_path / "runs").events() if isinstance(e, SpeedMeasured)]
    assert len(events) == 1 and events[0].removed == removed and events[0].ratios == report["ratios"]
    code, out, _ = run_cli(monkeypatch, capsys, "runs", "show", run_id, "--runs-dir", runs)
    shown = json.loads(out)["speed"]
    assert (
        code == 0 and shown["decode_x"] == report["ratios"]["batch"]["1"]["decode_tok_s"] and shown["speed_batch"] == 1
    )
    code, out, _ = run_cli(
        monkeypatch, capsys, "runs", "compare", run_id, run_id, "--runs-dir", runs, "--format", "json"
    )
    rows = json.loads(out)
    assert code == 0 and rows[0]["decode_x"] == shown["decode_x"] and rows[0]["params_x"] == report["ratios"]["params"]


def test_ideal_speedup_takes_the_measured_head_share_out():
    # dense: 10 blocks, one decode step takes 1.0 s at batch 1 of which 0.2 s head+embedding; pruned (k=5): 0.6 s.
    fig = lambda step, rest: {
        "decode_tok_s": {"median": 1 / step},
        "rest_decode_step_s": {"median": rest},
        "rest_prefill_s": {"median": 0.1},
        "ttft_s": {"median": 1.0},
    }
    out = ideal({"batch": {"1": fig(1.0, 0.2)}}, {"batch": {"1": fig(0.6, 0.2)}}, 10, 5)
    b = out["batch"]["1"]
    assert out["blocks_only"] == 2.0
    assert b["decode_rest_share"] == pytest.approx(0.2) and b["decode_speedup"] == pytest.approx(1 / (0.2 + 0.8 * 0.5))
    assert b["split"]["per_block_s"] == pytest.approx(0.08) and b["split"]["other_s"] == pytest.approx(1.0 - 0.2 - 0.8)


BAD = [
    (["--batch", "0"], "batch size 0 (from --batch) must be at least 1"),
    (["--batch", "two"], "batch size 'two' (from --batch) is not an integer"),
    (["--gen-len", "1"], "--gen-len 1 must be at least 2"),
    (["--prompt-len", "0"], "--prompt-len 0 must be at least 1"),
    (["--repeats", "0"], "--repeats 0 must be at least 1"),
    (["--remove", ""], "nothing to remove"),
    (["--remove", "9"], "block index 9 out of range (from --remove)"),
    (["--run", "nope"], "give either --run or --remove"),
    (["--max-ppl-increase", "5", "--gate-tasks", "demo-mc"], "--max-ppl-increase needs a perplexity task"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_speed_input_is_one_line_with_exit_code_2(args, message, monkeypatch, capsys):
    base = ["speed", "--model", "tiny:llama", "--remove", "1,2"]
    if args[0] == "--remove":
        base = base[:3]
    code, out, err = run_cli(monkeypatch, capsys, *base, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert out == ""


@pytest.mark.demo
def test_speed_on_demo_pruned_has_fewer_parameters_and_no_more_peak_memory(monkeypatch, capsys):
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "speed",
        "--model",
        "demo",
        "--remove",
        "16,17,18",
        "--prompt-len",
        "16",
        "--gen-len",
        "4",
        "--batch",
        "1",
        "--repeats",
        "1",
        "--threads",
        "2",
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    check_shape(report, ["1"])
    d, p = report["dense"], report["pruned"]
    block = (d["weight_bytes"] - p["weight_bytes"]) / 3
    assert d["params"] - p["params"] == 3 * (2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536 + 2 * 576)  # SmolLM2 blocks
    assert p["peak_memory_bytes"] <= d["peak_memory_bytes"]
    assert d["peak_memory_bytes"] > d["weight_bytes"] > block > 0


def test_study_table_gets_a_speed_column_only_when_a_cell_was_measured():
    from depthprune.study.analysis import results_table

    def row(searcher, decode_x):
        return {
            "model": "m",
            "k": 2,
            "objective": "ppl",
            "searcher": searcher,
            "baseline": False,
            "seed": 0,
            "removed": [1, 2],
            "value": 1.0,
            "metrics": {"t": 0.5},
            "acc_avg": 0.5,
            "ppl_avg": 9.0,
            "seconds": 1.0,
            "evaluations": 3,
            "block_forwards": 4,
            "decode_x": decode_x,
        }

    dense = {"m": {"metrics": {"t": 0.6}, "acc_avg": 0.6, "ppl_avg": 8.0}}
    table = results_table([row("greedy", 1.4), row("beam", None)], dense, "m", 2, "ppl")
    assert {r["searcher"]: r["decode_x"] for r in table} == {"dense": None, "greedy": 1.4, "beam": None}
    assert all("decode_x" not in r for r in results_table([row("greedy", None)], dense, "m", 2, "ppl"))
