"""Bad input, tried systematically: flags, config files, data files, model and run directories.

Every row must end with exactly one stderr line `error: ...` that names the bad value and where it came
from, exit code 2, no traceback, and an untouched runs directory (hashed before and after). Rows run
in-process through `depthprune.cli.main`; a few also as real processes to prove the exit code."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from depthprune.core.loading import load_model
from depthprune.core.surgery import export_pruned
from depthprune.pipeline.prune import PruneConfig, start

from ..test_cli import run_cli

SMALL = ["--calib", "demo", "--calib-samples", "1", "--calib-seq-len", "32"]
PRUNE = ["prune", "--model", "tiny:llama", "--runs-dir", "{w}/runs", *SMALL]
EVAL = ["eval", "--model", "tiny:llama", "--tasks", "demo-text", "--seq-len", "32", "--limit", "1"]
STUDY = ["study", "--runs-dir", "{w}/runs", "--config"]

# (id, argv, substring the one error line must contain: the bad value and its source)
ROWS = [
    # command-line flags
    ("k negative", [*PRUNE, "--k", "-1"], "k=-1 (from --k)"),
    ("k too large", [*PRUNE, "--k", "7"], "k=7 (from --k)"),
    ("protect negative out of range", [*PRUNE, "--protect", "-7"], "protected block -7 out of range (from --protect)"),
    ("protect duplicate", [*PRUNE, "--protect", "2,2"], "protected block 2 given twice (from --protect)"),
    ("protect covers all", [*PRUNE, "--k", "1", "--protect", "0,1,2,3,4,5"], "k=1 (from --k) must be smaller than the 0 removable"),
    ("remove negative", [*EVAL, "--remove", "-1"], "block index -1 out of range (from --remove)"),
    ("remove not an integer", [*EVAL, "--remove", "1.5"], "block index '1.5' (from --remove) is not an integer"),
    ("option without key", [*PRUNE, "--option", "=3"], "searcher option '=3' (from --option) is not key=value"),
    ("option given twice", [*PRUNE, "--searcher", "beam", "--option", "width=2", "--option", "width=3"],
     "searcher option 'width' (from --option) given twice"),
    ("option wrong type", [*PRUNE, "--searcher", "beam", "--option", "width=wide"], "'wide' for option 'width' of searcher 'beam'"),
    ("batch size zero", [*PRUNE, "--batch-size", "0"], "--batch-size"),
    ("cache memory negative", [*PRUNE, "--cache-mem", "-1"], "--cache-mem"),
    ("no task", [*EVAL[:3], "--tasks", ","], "no task given (from --tasks)"),
    ("run and remove", ["eval", "--run", "latest", "--remove", "1"], "give either --run or --remove"),
    ("absent GPU", [*PRUNE, "--device", "cuda:0"], "device 'cuda:0' (from --device) is not available"),
    ("budget zero", [*PRUNE, "--searcher", "random", "--budget", "0"], "--budget"),
    ("unknown eval task", [*PRUNE, "--eval-tasks", "nosuch"], "unknown task 'nosuch' (from --eval-tasks)"),
    # data files
    ("empty calibration text", [*PRUNE[:-6], "--calib", "{w}/empty.txt"], "{w}/empty.txt' (from --calib) is empty"),
    ("binary calibration text", [*PRUNE[:-6], "--calib", "{w}/binary.txt"], "{w}/binary.txt' (from --calib) is binary"),
    ("non-UTF-8 calibration text", [*PRUNE[:-6], "--calib", "{w}/latin1.txt"], "latin1.txt' (from --calib) is not UTF-8"),
    ("JSONL with a broken line", [*PRUNE[:-6], "--objective", "margin", "--calib", "{w}/broken.jsonl"],
     "broken.jsonl:2: not valid JSON"),
    ("JSONL label out of range", [*PRUNE[:-6], "--objective", "margin", "--calib", "{w}/badlabel.jsonl"],
     "badlabel.jsonl: item 1 needs at least 2 non-empty choices and an integer label"),
    ("calibration text too short", [*PRUNE[:-2], "--calib-seq-len", "10000000"], "fewer than one window of 10000000"),
    ("labels file of the wrong length", [*EVAL[:3], "--tasks", "piqa", "--data-dir", "{w}/data"],
     "valid-labels.lst' (from --data-dir) has 1 lines, expected 2"),
    ("ARC answer key not among the choices", [*EVAL[:3], "--tasks", "arc_easy", "--data-dir", "{w}/data"],
     "item 1 of arc_easy is not an ARC question with its answer key 'Z' among the choice labels (from --data-dir)"),
    # model directories and files
    ("model dir without config.json", [*EVAL[:1], "--model", "{w}/noconfig", *EVAL[3:]], "'{w}/noconfig' (from --model) has no config.json"),
    ("model config not JSON", [*EVAL[:1], "--model", "{w}/badjson", *EVAL[3:]], "'{w}/badjson' (from --model): the local directory is unreadable"),
    ("model needs remote code", [*EVAL[:1], "--model", "{w}/remote", *EVAL[3:]], "--trust-remote-code"),
    ("tokenizer without pad or EOS", [*EVAL[:1], "--model", "{w}/nopad", *EVAL[3:]], "neither a pad nor an EOS token"),
    ("corrupt GGUF file", [*EVAL[:1], "--model", "{w}/corrupt.gguf", *EVAL[3:]], "corrupt.gguf' (from --model)"),
    # run directories
    ("foreign run directory", ["eval", "--run", "{w}/foreign"], "'{w}/foreign' (from --run) is not a depthprune run directory"),
    ("corrupt run.json", ["runs", "show", "{w}/runs/corrupt"], "run.json: corrupt run.json (from RUN)"),
    ("unknown key in run.json", ["prune", "--resume", "{w}/runs/unknown-key"], "unknown-key/run.json: unreadable configuration"),
    ("wrong type in run.json", ["prune", "--resume", "{w}/runs/wrong-type"], "k='three' (from {w}/runs/wrong-type/run.json)"),
    ("broken event line", ["runs", "show", "{w}/runs/broken-events"], "broken-events/events.jsonl:1: broken event line"),
    ("event of the wrong shape", ["runs", "show", "{w}/runs/bad-event"], "bad-event/events.jsonl:1: not a depthprune event"),
    ("unfinished run", ["eval", "--run", "{w}/runs/unfinished"], "run unfinished (from --run) has no result yet"),
    ("corrupt result.json", ["export", "{w}/runs/bad-result", "--out", "{w}/out"], "bad-result/result.json: corrupt result.json"),
    ("compare one run", ["runs", "compare", "{w}/runs/unfinished"], "at least two runs"),
    ("runs dir is a file", [*PRUNE, "--runs-dir", "{w}/empty.txt"], "'{w}/empty.txt' (from --runs-dir) is not writable"),
    ("export into a non-empty dir", ["export", "--model", "tiny:llama", "--remove", "1", "--out", "{w}/data"],
     "'{w}/data' (from --out) exists and is not empty"),
    ("no finished run", ["eval", "--run", "latest", "--runs-dir", "{w}/data"], "no finished run in '{w}/data' (from --run latest)"),
    # study files (TOML)
    ("malformed TOML", [*STUDY, "{w}/malformed.toml"], "malformed.toml: malformed TOML"),
    ("unknown TOML key", [*STUDY, "{w}/unknown.toml"], "unknown key 'modles'"),
    ("wrong TOML type", [*STUDY, "{w}/wrongtype.toml"], "batch_size = 'eight'"),
    ("out-of-range k in TOML", [*STUDY, "{w}/zero-k.toml"], "k 0 should be an integer"),
]

SUBPROCESS_ROWS = {"k negative", "corrupt run.json", "malformed TOML"}


def _digest(directory: Path) -> dict:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _run_variant(runs: Path, source: Path, name: str, edit) -> None:
    target = runs / name
    shutil.copytree(source, target)
    edit(target)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("bad")
    runs = w / "runs"
    run, _ = start(PruneConfig(model="tiny:llama", objective="ppl", searcher="oneshot", k=2, calib="demo",
                               calib_samples=1, calib_seq_len=32, options={"scorer": "bi"}), runs)
    config = json.loads((run.path / "run.json").read_text())
    _run_variant(runs, run.path, "corrupt", lambda d: (d / "run.json").write_text('{"schema": 1, "obj'))
    _run_variant(runs, run.path, "unknown-key", lambda d: (d / "result.json").unlink() or (d / "run.json").write_text(
        json.dumps(config | {"config": config["config"] | {"layers": 3}})))
    _run_variant(runs, run.path, "wrong-type", lambda d: (d / "result.json").unlink() or (d / "run.json").write_text(
        json.dumps(config | {"config": config["config"] | {"k": "three"}})))
    _run_variant(runs, run.path, "broken-events", lambda d: (d / "events.jsonl").write_text("{oops\n" + (d / "events.jsonl").read_text()))
    _run_variant(runs, run.path, "bad-event", lambda d: (d / "events.jsonl").write_text(
        '{"type": "evaluation", "removed": "1,2", "value": 1.0, "seconds": 0.1}\n'))
    _run_variant(runs, run.path, "unfinished", lambda d: (d / "result.json").unlink())
    _run_variant(runs, run.path, "bad-result", lambda d: (d / "result.json").write_text('["not", "a", "result"]'))
    (w / "foreign").mkdir()
    (w / "foreign/notes.txt").write_text("not a run")
    (w / "empty.txt").write_text("")
    (w / "binary.txt").write_bytes(b"\x7fELF\x00\x01\x02" * 50)
    (w / "latin1.txt").write_bytes("caf\xe9 au lait ".encode("latin-1") * 50)
    question = {"question": "2+2?", "choices": ["4", "5"], "label": 0}
    (w / "broken.jsonl").write_text(json.dumps(question) + "\n{\"question\": \n")
    (w / "badlabel.jsonl").write_text(json.dumps(question | {"label": 2}) + "\n")
    (w / "data/piqa").mkdir(parents=True)
    piqa = {"goal": "open a jar", "sol1": "twist the lid", "sol2": "eat the lid"}
    (w / "data/piqa/valid.jsonl").write_text(json.dumps(piqa) + "\n" + json.dumps(piqa) + "\n")
    (w / "data/piqa/valid-labels.lst").write_text("0\n")
    (w / "data/arc_easy").mkdir()
    arc = {"question": {"stem": "Which?", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]},
           "answerKey": "Z"}
    (w / "data/arc_easy/ARC-Easy-Test.jsonl").write_text(json.dumps(arc) + "\n")
    (w / "noconfig").mkdir()
    (w / "badjson").mkdir()
    (w / "badjson/config.json").write_text('{"model_type": "llama", ')
    (w / "remote").mkdir()
    (w / "remote/config.json").write_text(json.dumps({"model_type": "fancy", "auto_map": {
        "AutoConfig": "configuration_fancy.FancyConfig", "AutoModelForCausalLM": "modeling_fancy.FancyForCausalLM"}}))
    export_pruned(load_model("tiny:llama", device="cpu"), (5,), w / "nopad")
    tokenizer_config = json.loads((w / "nopad/tokenizer_config.json").read_text())
    for key in ("pad_token", "eos_token"):
        tokenizer_config.pop(key)
    (w / "nopad/tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    (w / "corrupt.gguf").write_bytes(b"GGUF" + bytes(range(256)) * 4)
    (w / "malformed.toml").write_text('name = "s"\nmodels = ["tiny:llama"\n')
    (w / "unknown.toml").write_text('name = "s"\nmodles = ["tiny:llama"]\n')
    (w / "wrongtype.toml").write_text('name = "s"\nmodels = ["tiny:llama"]\nbatch_size = "eight"\n')
    (w / "zero-k.toml").write_text('name = "s"\nmodels = ["tiny:llama"]\nk = [0]\n')
    return w


def _check(code, err: str, expected: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize("argv,expected", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_naming_value_and_source(argv, expected, workspace, monkeypatch, capsys, tally):
    before = _digest(workspace)
    code, _, err = run_cli(monkeypatch, capsys, *[a.replace("{w}", str(workspace)) for a in argv])
    _check(code, err, expected.replace("{w}", str(workspace)))
    assert _digest(workspace) == before, "a bad input changed files"
    tally["bad inputs"] += 1


@pytest.mark.parametrize("row", [r for r in ROWS if r[0] in SUBPROCESS_ROWS], ids=lambda r: r[0])
def test_bad_input_exit_code_from_a_real_process(row, workspace, single_thread_env):
    _, argv, expected = row
    proc = subprocess.run([sys.executable, "-m", "depthprune.cli", *[a.replace("{w}", str(workspace)) for a in argv]],
                          capture_output=True, text=True, timeout=120, env=single_thread_env)
    _check(proc.returncode, proc.stderr, expected.replace("{w}", str(workspace)))


def test_the_table_covers_at_least_thirty_inputs():
    assert len({r[0] for r in ROWS}) == len(ROWS) >= 30
