"""The headless CLI: JSON contract of `depthprune eval`, and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest

from depthprune import cli


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["depthprune", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def prune_tiny_tail(monkeypatch, capsys, runs: str) -> tuple[str, list[int]]:
    """(run id, removed) of `depthprune prune` on tiny:llama (tail, k=2, one 32-token calibration window)
    into `runs`."""
    code, out, err = run_cli(
        monkeypatch, capsys, "prune", "--model", "tiny:llama", "--searcher", "tail", "--k", "2", "--runs-dir", runs,
        "--calib-samples", "1", "--calib-seq-len", "32", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    return result["run"], result["removed"]


def test_eval_json_contract(monkeypatch, capsys):
    code, out, _ = run_cli(
        monkeypatch,
        capsys,
        "eval",
        "--model",
        "tiny:llama",
        "--remove",
        "4,1",
        "--tasks",
        "demo-text,demo-mc",
        "--limit",
        "3",
        "--seq-len",
        "64",
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    assert report["removed"] == [1, 4] and report["seq_len"] == 64 and report["dtype"] == "float32"
    assert report["tasks"]["demo-text"]["windows"] == 3 and report["tasks"]["demo-text"]["ppl"] > 1
    assert report["tasks"]["demo-mc"]["items"] == 3 and {"acc", "acc_norm"} <= set(report["tasks"]["demo-mc"])
    assert report["model"] == "tiny:llama" and report["seconds"] >= 0


def bad_model_dirs(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit/config.json").write_text(json.dumps({"model_type": "vit"}))
    (tmp_path / "falcon").mkdir()
    (tmp_path / "falcon/config.json").write_text(json.dumps({"model_type": "falcon"}))
    (tmp_path / "data/winogrande").mkdir(parents=True)
    (tmp_path / "data/winogrande/dev.jsonl").write_text("{not json\n")
    return tmp_path


BAD_INPUTS = [
    (["eval", "--model", "{tmp}/nope/model"], "'{tmp}/nope/model' (from --model)"),
    (["eval", "--model", "{tmp}/empty"], "has no config.json"),
    (["eval", "--model", "{tmp}/vit"], "not a causal language model"),
    (["eval", "--model", "{tmp}/falcon"], "unsupported model family 'falcon'"),
    (["eval", "--model", "tiny:bogus"], "unknown tiny model 'tiny:bogus'"),
    (["eval", "--model", "tiny:llama", "--remove", "6"], "block index 6 out of range (from --remove)"),
    (["eval", "--model", "tiny:llama", "--remove", "2,2"], "block index 2 given twice (from --remove)"),
    (["eval", "--model", "tiny:llama", "--remove", "0,1,2,3,4,5"], "cannot remove all 6 blocks"),
    (["eval", "--model", "tiny:llama", "--remove", "x"], "block index 'x' (from --remove) is not an integer"),
    (["eval", "--model", "tiny:llama", "--tasks", "mmlu"], "unknown task 'mmlu' (from --tasks)"),
    (
        ["eval", "--model", "tiny:llama", "--tasks", "piqa", "--data-dir", "{tmp}/data"],
        "piqa/valid.jsonl' (from --data-dir) not found",
    ),
    (
        ["eval", "--model", "tiny:llama", "--tasks", "winogrande", "--data-dir", "{tmp}/data"],
        "dev.jsonl:1: not valid JSON",
    ),
    (["eval", "--model", "tiny:llama", "--data-dir", "{tmp}/missing"], "'{tmp}/missing' (from --data-dir) not found"),
    (
        ["eval", "--model", "tiny:llama", "--tasks", "demo-text", "--seq-len", "100000"],
        "sequence length 100000 (from --seq-len) must lie between 2 and tiny:llama's 1024 positions",
    ),
    (["eval", "--limit", "0"], "--limit"),
    (["eval", "--batch-size", "many"], "--batch-size"),
    (["eval", "--no-such-flag"], "--no-such-flag"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[" ".join(a[:4]) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_naming_the_value_with_exit_code_2(args, message, tmp_path, monkeypatch, capsys):
    tmp = bad_model_dirs(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, *[a.replace("{tmp}", str(tmp)) for a in args])
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message.replace("{tmp}", str(tmp)) in lines[0]
    assert "Traceback" not in err and out == ""


def test_installed_console_script_reports_errors_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "depthprune.cli", "eval", "--model", "tiny:llama", "--remove", "9"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: block index 9 out of range (from --remove): the model has 6 blocks, 0-5"


def test_study_flags_keep_a_mix_objective_whole():
    from depthprune.cli.study import _study_overrides

    table = _study_overrides("s", "demo", "ppl,mix:ppl=0.5,margin=0.5", "greedy", "4", "0", None, None, None)
    assert table["objectives"] == ["ppl", "mix:ppl=0.5,margin=0.5"]
