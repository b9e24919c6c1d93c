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
from depthprune.searchers import SEARCHERS

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
    (
        "protect covers all",
        [*PRUNE, "--k", "1", "--protect", "0,1,2,3,4,5"],
        "k=1 (from --k) must be smaller than the 0 removable",
    ),
    ("remove negative", [*EVAL, "--remove", "-1"], "block index -1 out of range (from --remove)"),
    ("remove not an integer", [*EVAL, "--remove", "1.5"], "block index '1.5' (from --remove) is not an integer"),
    ("option without key", [*PRUNE, "--option", "=3"], "searcher option '=3' (from --option) is not key=value"),
    (
        "option given twice",
        [*PRUNE, "--searcher", "beam", "--option", "width=2", "--option", "width=3"],
        "searcher option 'width' (from --option) given twice",
    ),
    (
        "option wrong type",
        [*PRUNE, "--searcher", "beam", "--option", "width=wide"],
        "'wide' for option 'width' of searcher 'beam'",
    ),
    ("batch size zero", [*PRUNE, "--batch-size", "0"], "--batch-size"),
    ("cache memory negative", [*PRUNE, "--cache-mem", "-1"], "--cache-mem"),
    ("no task", [*EVAL[:3], "--tasks", ","], "no task given (from --tasks)"),
    ("run and remove", ["eval", "--run", "latest", "--remove", "1"], "give either --run or --remove"),
    ("absent GPU", [*PRUNE, "--device", "cuda:0"], "device 'cuda:0' (from --device) is not available"),
    ("budget zero", [*PRUNE, "--searcher", "random", "--budget", "0"], "--budget"),
    ("unknown eval task", [*PRUNE, "--eval-tasks", "nosuch"], "unknown task 'nosuch' (from --eval-tasks)"),
    ("mix unknown term", [*PRUNE, "--objective", "mix:ppl=1,bleu=1"], "unknown term 'bleu'"),
    ("mix bad weight", [*PRUNE, "--objective", "mix:ppl=0,margin=1"], "weight '0' of ppl must be a finite number > 0"),
    ("calib pairs without a mix", [*PRUNE, "--calib", "ppl=demo"], "term=source pairs are for a mix objective"),
    (
        "calib pair of no term",
        [*PRUNE, "--objective", "mix:ppl=1,margin=1", "--calib", "kl=demo"],
        "'kl' is not a term of 'mix:ppl=1,margin=1'",
    ),
    # data files
    ("empty calibration text", [*PRUNE[:-6], "--calib", "{w}/empty.txt"], "{w}/empty.txt' (from --calib) is empty"),
    ("binary calibration text", [*PRUNE[:-6], "--calib", "{w}/binary.txt"], "{w}/binary.txt' (from --calib) is binary"),
    (
        "non-UTF-8 calibration text",
        [*PRUNE[:-6], "--calib", "{w}/latin1.txt"],
        "latin1.txt' (from --calib) is not UTF-8",
    ),
    (
        "JSONL with a broken line",
        [*PRUNE[:-6], "--objective", "margin", "--calib", "{w}/broken.jsonl"],
        "broken.jsonl:2: not valid JSON",
    ),
    (
        "JSONL label out of range",
        [*PRUNE[:-6], "--objective", "margin", "--calib", "{w}/badlabel.jsonl"],
        "badlabel.jsonl: item 1 needs at least 2 non-empty choices and an integer label",
    ),
    (
        "calibration window beyond the model",
        [*PRUNE[:-2], "--calib-seq-len", "10000000"],
        "sequence length 10000000 (from --calib-seq-len)",
    ),
    (
        "labels file of the wrong length",
        [*EVAL[:3], "--tasks", "piqa", "--data-dir", "{w}/data"],
        "valid-labels.lst' (from --data-dir) has 1 lines, expected 2",
    ),
    (
        "ARC answer key not among the choices",
        [*EVAL[:3], "--tasks", "arc_easy", "--data-dir", "{w}/data"],
        "item 1 of arc_easy is not an ARC question with its answer key 'Z' among the choice labels (from --data-dir)",
    ),
    # model directories and files
    (
        "model dir without config.json",
        [*EVAL[:1], "--model", "{w}/noconfig", *EVAL[3:]],
        "'{w}/noconfig' (from --model) has no config.json",
    ),
    (
        "model config not JSON",
        [*EVAL[:1], "--model", "{w}/badjson", *EVAL[3:]],
        "'{w}/badjson' (from --model): the local directory is unreadable",
    ),
    ("model needs remote code", [*EVAL[:1], "--model", "{w}/remote", *EVAL[3:]], "--trust-remote-code"),
    ("tokenizer without pad or EOS", [*EVAL[:1], "--model", "{w}/nopad", *EVAL[3:]], "neither a pad nor an EOS token"),
    ("corrupt GGUF file", [*EVAL[:1], "--model", "{w}/corrupt.gguf", *EVAL[3:]], "corrupt.gguf' (from --model)"),
    # run directories
    (
        "foreign run directory",
        ["eval", "--run", "{w}/foreign"],
        "'{w}/foreign' (from --run) is not a depthprune run directory",
    ),
    ("corrupt run.json", ["runs", "show", "{w}/runs/corrupt"], "run.json: corrupt run.json (from RUN)"),
    (
        "unknown key in run.json",
        ["prune", "--resume", "{w}/runs/unknown-key"],
        "unknown-key/run.json: unreadable configuration",
    ),
    (
        "wrong type in run.json",
        ["prune", "--resume", "{w}/runs/wrong-type"],
        "k='three' (from {w}/runs/wrong-type/run.json config.k)",
    ),
    (
        "broken event line",
        ["runs", "show", "{w}/runs/broken-events"],
        "broken-events/events.jsonl:1: broken event line",
    ),
    (
        "event of the wrong shape",
        ["runs", "show", "{w}/runs/bad-event"],
        "bad-event/events.jsonl:1: candidate event without 'n'",
    ),
    ("unfinished run", ["eval", "--run", "{w}/runs/unfinished"], "run unfinished (from --run) has no result yet"),
    (
        "corrupt result.json",
        ["export", "{w}/runs/bad-result", "--out", "{w}/out"],
        "bad-result/result.json: corrupt result.json",
    ),
    ("compare one run", ["runs", "compare", "{w}/runs/unfinished"], "at least two runs"),
    (
        "runs dir is a file",
        [*PRUNE, "--runs-dir", "{w}/empty.txt"],
        "'{w}/empty.txt' (from --runs-dir) is not writable",
    ),
    (
        "export into a non-empty dir",
        ["export", "--model", "tiny:llama", "--remove", "1", "--out", "{w}/data"],
        "'{w}/data' (from --out) exists and is not empty",
    ),
    (
        "no finished run",
        ["eval", "--run", "latest", "--runs-dir", "{w}/data"],
        "no finished run in '{w}/data' (from --run latest)",
    ),
    # study files (TOML)
    ("malformed TOML", [*STUDY, "{w}/malformed.toml"], "malformed.toml: malformed TOML"),
    ("unknown TOML key", [*STUDY, "{w}/unknown.toml"], "unknown key 'modles'"),
    ("wrong TOML type", [*STUDY, "{w}/wrongtype.toml"], "batch_size = 'eight'"),
    ("out-of-range k in TOML", [*STUDY, "{w}/zero-k.toml"], "k 0 should be an integer"),
]


# searcher hyperparameters outside their declared domains, from the command line (one per option)
BAD_OPTION_VALUE = {int: 0, float: -1.0, bool: "yes", str: "nope"}
ROWS += [
    (
        f"{name} {key} out of domain",
        [*PRUNE, "--searcher", name, "--option", f"{key}={json.dumps(BAD_OPTION_VALUE[o.kind])}"],
        f"for option '{key}' of searcher '{name}' (from --option): should be {o.domain()}",
    )
    for name, cls in SEARCHERS.items()
    for key, o in cls.params.items()
]

GPT2 = ["--model", "tiny:gpt2"]  # 1024 positions
ROWS += [
    # flags whose values used to end in a traceback or a wrong reading
    ("cache memory infinite", [*PRUNE, "--cache-mem", "inf"], "--cache-mem inf should be a finite number"),
    ("cache memory NaN", [*PRUNE, "--cache-mem", "nan"], "--cache-mem nan should be a finite number"),
    (
        "ga tau zero",
        [*PRUNE, "--searcher", "ga", "--option", "tau=0"],
        "'tau' of searcher 'ga' (from --option): should be a number > 0",
    ),
    (
        "bo tau zero",
        [*PRUNE, "--searcher", "bo", "--option", "tau=0"],
        "'tau' of searcher 'bo' (from --option): should be a number > 0",
    ),
    ("anneal final_ratio zero", [*PRUNE, "--searcher", "anneal", "--option", "final_ratio=0"], "with 0 < x ≤ 1"),
    ("ga mutation above one", [*PRUNE, "--searcher", "ga", "--option", "mutation=1.5"], "with 0 ≤ x ≤ 1"),
    ("option infinite", [*PRUNE, "--searcher", "ga", "--option", "tau=Infinity"], "bad value inf for option 'tau'"),
    (
        "unknown searcher option",
        [*PRUNE, "--searcher", "ga", "--option", "taus=1"],
        "unknown option 'taus' for searcher 'ga' (from --option)",
    ),
    (
        "budget for a searcher without one",
        [*PRUNE, "--budget", "5"],
        "unknown option 'budget' for searcher 'greedy' (from --budget)",
    ),
    (
        "scorer unknown",
        [*PRUNE, "--searcher", "oneshot", "--scorer", "nope"],
        "(from --scorer): should be one of objective, bi, angular",
    ),
    (
        "scorer twice",
        [*PRUNE, "--searcher", "oneshot", "--scorer", "bi", "--option", "scorer=bi"],
        "--scorer and --option scorer= both given",
    ),
    ("unknown searcher", [*PRUNE, "--searcher", "nosuch"], "unknown searcher 'nosuch' (from --searcher)"),
    ("unknown objective", [*PRUNE, "--objective", "nosuch"], "unknown objective 'nosuch' (from --objective)"),
    ("unknown device kind", [*PRUNE, "--device", "xpu:7"], "unknown device 'xpu:7' (from --device)"),
    ("device not a device", [*PRUNE, "--device", "banana"], "unknown device 'banana' (from --device)"),
    ("cpu with an index", [*PRUNE, "--device", "cpu:3"], "unknown device 'cpu:3' (from --device)"),
    ("eval device unknown", [*EVAL, "--device", "xpu:7"], "unknown device 'xpu:7' (from --device)"),
    ("k zero", [*PRUNE, "--k", "0"], "k=0 (from --k) must be at least 1"),
    (
        "calib samples zero",
        [*PRUNE[:-4], "--calib-samples", "0"],
        "calib_samples=0 (from --calib-samples) must be at least 1",
    ),
    (
        "calib seq len one",
        [*PRUNE[:-2], "--calib-seq-len", "1"],
        "calib_seq_len=1 (from --calib-seq-len) must be at least 2",
    ),
    (
        "calib seq len beyond the model",
        [*PRUNE[:-2], *GPT2, "--calib-seq-len", "2000"],
        "sequence length 2000 (from --calib-seq-len) must lie between 2 and tiny:gpt2's 1024 positions",
    ),
    (
        "eval seq len beyond the model",
        [*EVAL[:1], *GPT2, *EVAL[3:-4], "--seq-len", "4096"],
        "sequence length 4096 (from --seq-len) must lie between 2 and tiny:gpt2's 1024 positions",
    ),
    (
        "prune eval seq len beyond the model",
        [*PRUNE, *GPT2, "--eval-tasks", "demo-text", "--eval-seq-len", "5000"],
        "sequence length 5000 (from --eval-seq-len)",
    ),
    (
        "prune eval seq len one",
        [*PRUNE, "--eval-tasks", "demo-text", "--eval-seq-len", "1"],
        "eval_seq_len=1 (from --eval-seq-len)",
    ),
    ("eval limit zero", [*PRUNE, "--eval-tasks", "demo-text", "--eval-limit", "0"], "eval_limit=0 (from --eval-limit)"),
    ("batch size negative", [*PRUNE, "--batch-size", "-3"], "batch_size=-3 (from --batch-size) must be at least 1"),
    ("remove with an underscore", [*EVAL, "--remove", "1_0"], "block index '1_0' (from --remove) is not an integer"),
    ("remove in Arabic-Indic digits", [*EVAL, "--remove", "٣"], "block index '٣' (from --remove) is not an integer"),
    ("remove with a plus sign", [*EVAL, "--remove", "+1"], "block index '+1' (from --remove) is not an integer"),
    (
        "protect with an underscore",
        [*PRUNE, "--protect", "0_1"],
        "block index '0_1' (from --protect) is not an integer",
    ),
    ("model spec with markup", [*EVAL[:1], "--model", "tiny:llama:0", *EVAL[3:]], "tiny:llama:0"),
    (
        "resume with a changed k",
        ["prune", "--resume", "{w}/runs/unfinished", "--k", "5"],
        "--k cannot change a run being resumed",
    ),
    (
        "resume with a changed calibration seed",
        ["prune", "--resume", "{w}/runs/unfinished", "--calib-seed", "4"],
        "--calib-seed cannot change a run being resumed",
    ),
    (
        "export below a regular file",
        ["export", "--model", "tiny:llama", "--remove", "1", "--out", "{w}/empty.txt/sub"],
        "'{w}/empty.txt/sub' (from --out) cannot be created: '{w}/empty.txt' is a file",
    ),
    (
        "export a run below a regular file",
        ["export", "{w}/runs/corrupt-free", "--out", "{w}/empty.txt/sub"],
        "is a file",
    ),
    # stored files: run.json, events.jsonl, result.json
    (
        "run.json without model",
        ["eval", "--run", "{w}/runs/no-model"],
        "run.json field model=None should be str (from --run)",
    ),
    (
        "run.json with a numeric objective",
        ["runs", "compare", "{w}/runs/unfinished", "{w}/runs/objective-type"],
        "run.json field objective.objective=3 should be str",
    ),
    ("run.json without config", ["prune", "--resume", "{w}/runs/no-config"], "no search configuration to resume"),
    ("run.json with NaN", ["runs", "show", "{w}/runs/nan-run"], "corrupt run.json"),
    (
        "run.json option out of domain",
        ["prune", "--resume", "{w}/runs/stored-tau"],
        "(from {w}/runs/stored-tau/run.json config.options.tau): should be a number > 0",
    ),
    (
        "run.json anneal final_ratio zero",
        ["prune", "--resume", "{w}/runs/stored-ratio"],
        "(from {w}/runs/stored-ratio/run.json config.options.final_ratio)",
    ),
    (
        "run.json unknown searcher",
        ["prune", "--resume", "{w}/runs/stored-searcher"],
        "unknown searcher 'nosuch' (from {w}/runs/stored-searcher/run.json config.searcher)",
    ),
    (
        "run.json device unknown",
        ["prune", "--resume", "{w}/runs/stored-device"],
        "unknown device 'xpu:7' (from {w}/runs/stored-device/run.json config.device)",
    ),
    (
        "run.json k zero",
        ["prune", "--resume", "{w}/runs/stored-k"],
        "k=0 (from {w}/runs/stored-k/run.json config.k) must be at least 1",
    ),
    (
        "run.json speed setting wrong",
        ["prune", "--resume", "{w}/runs/stored-speed"],
        "speed setting cache_bytes=-5 (from {w}/runs/stored-speed/run.json config.speed.cache_bytes)",
    ),
    (
        "event value NaN",
        ["runs", "show", "{w}/runs/nan-event"],
        "nan-event/events.jsonl:1: broken event line (NaN is not a number)",
    ),
    (
        "event value Infinity",
        ["runs", "show", "{w}/runs/inf-event"],
        "inf-event/events.jsonl:1: broken event line (Infinity",
    ),
    (
        "event value of the wrong type",
        ["runs", "show", "{w}/runs/str-event"],
        "str-event/events.jsonl:1: candidate event field value='low'",
    ),
    (
        "garbage line mid-file",
        ["prune", "--resume", "{w}/runs/mid-garbage"],
        "mid-garbage/events.jsonl:2: broken event line",
    ),
    (
        "events.jsonl a directory",
        ["prune", "--resume", "{w}/runs/events-dir"],
        "events.jsonl is not a regular file: run events-dir is damaged",
    ),
    (
        "events.jsonl a symlink",
        ["runs", "show", "{w}/runs/events-link"],
        "events.jsonl is a symbolic link: run events-link is damaged",
    ),
    (
        "result value not a number",
        ["runs", "compare", "{w}/runs/unfinished", "{w}/runs/str-result"],
        "str-result/result.json: result.json field value='low' should be float",
    ),
    ("result value NaN", ["eval", "--run", "{w}/runs/nan-result"], "nan-result/result.json: corrupt result.json"),
    (
        "result removed of strings",
        ["export", "{w}/runs/strs-result", "--out", "{w}/out"],
        "result.json field removed=['1']",
    ),
    ("result evaluations a float", ["runs", "show", "{w}/runs/float-result"], "result.json field evaluations=1.5"),
    # studies: checked before the first cell runs
    ("study limit zero", [*STUDY, "{w}/limit0.toml"], "[evaluation]: limit = 0 should be at least 1"),
    ("study seq_len negative", [*STUDY, "{w}/seqneg.toml"], "[evaluation]: seq_len = -5 should be at least 2"),
    (
        "study calibration seq_len one",
        [*STUDY, "{w}/calib1.toml"],
        "[calibration.ppl]: seq_len = 1 should be at least 2",
    ),
    (
        "study k beyond the model",
        [*STUDY, "{w}/bigk.toml"],
        "k=10 (from study 's' k = 10 for tiny:llama) must be smaller",
    ),
    (
        "study seq_len beyond the model",
        [*STUDY, "{w}/longseq.toml"],
        "sequence length 5000 (from study 's' [evaluation] seq_len) must lie between 2 and tiny:gpt2's 1024",
    ),
    (
        "study option out of domain",
        [*STUDY, "{w}/tau0.toml"],
        "(from {w}/tau0.toml [options.ga].tau): should be a number > 0",
    ),
    (
        "study anneal final_ratio zero",
        [*STUDY, "{w}/ratio0.toml"],
        "(from {w}/ratio0.toml [options.anneal].final_ratio)",
    ),
    (
        "study unknown option",
        [*STUDY, "{w}/badkey.toml"],
        "unknown option 'widht' for searcher 'beam' (from {w}/badkey.toml [options.beam].widht)",
    ),
    ("study device unknown", [*STUDY, "{w}/device.toml"], "unknown device 'xpu:7' (from study 's' cell"),
]

# refused once the model is loaded: the run's lock and its `loading` phase event are written, no candidate
MODEL_ROWS = [
    (
        "run.json k beyond the model",
        ["prune", "--resume", "{w}/runs/stored-big-k"],
        "k=6 (from {w}/runs/stored-big-k/run.json config.k) must be smaller",
    ),
    (
        "run.json calib seq len beyond the model",
        ["prune", "--resume", "{w}/runs/stored-seq-len"],
        "sequence length 4096 (from {w}/runs/stored-seq-len/run.json config.calib_seq_len)",
    ),
]

ORIGINAL_EVENTS: list[str] = []  # the workspace run's events.jsonl

SUBPROCESS_ROWS = {"k negative", "corrupt run.json", "malformed TOML"}


def _digest(directory: Path) -> dict:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _rewrite(run: Path, config: dict, keep_result: bool) -> None:
    if not keep_result:
        (run / "result.json").unlink()
    (run / "run.json").write_text(json.dumps(config))


def _run_variant(runs: Path, source: Path, name: str, edit) -> None:
    target = runs / name
    shutil.copytree(source, target)
    edit(target)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("bad")
    runs = w / "runs"
    run, _ = start(
        PruneConfig(
            model="tiny:llama",
            objective="ppl",
            searcher="oneshot",
            k=2,
            calib="demo",
            calib_samples=1,
            calib_seq_len=32,
            options={"scorer": "bi"},
        ),
        runs,
    )
    ORIGINAL_EVENTS[:] = [(run.path / "events.jsonl").read_text()]
    config = json.loads((run.path / "run.json").read_text())
    _run_variant(runs, run.path, "corrupt", lambda d: (d / "run.json").write_text('{"schema": 1, "obj'))
    _run_variant(
        runs,
        run.path,
        "unknown-key",
        lambda d: (
            (d / "result.json").unlink()
            or (d / "run.json").write_text(json.dumps(config | {"config": config["config"] | {"layers": 3}}))
        ),
    )
    _run_variant(
        runs,
        run.path,
        "wrong-type",
        lambda d: (
            (d / "result.json").unlink()
            or (d / "run.json").write_text(json.dumps(config | {"config": config["config"] | {"k": "three"}}))
        ),
    )
    _run_variant(
        runs,
        run.path,
        "broken-events",
        lambda d: (d / "events.jsonl").write_text("{oops\n" + (d / "events.jsonl").read_text()),
    )
    _run_variant(
        runs,
        run.path,
        "bad-event",
        lambda d: (d / "events.jsonl").write_text(
            '{"type": "evaluation", "removed": "1,2", "value": 1.0, "seconds": 0.1}\n'
        ),
    )
    _run_variant(runs, run.path, "unfinished", lambda d: (d / "result.json").unlink())
    _run_variant(runs, run.path, "bad-result", lambda d: (d / "result.json").write_text('["not", "a", "result"]'))
    finished = config | {"config": config["config"]}
    variants = {
        "corrupt-free": lambda c: c,
        "no-model": lambda c: {k: v for k, v in c.items() if k != "model"},
        "objective-type": lambda c: c | {"objective": {"objective": 3}},
        "no-config": lambda c: {k: v for k, v in c.items() if k != "config"},
        "stored-tau": lambda c: c | {"config": c["config"] | {"searcher": "ga", "options": {"tau": 0}}},
        "stored-ratio": lambda c: c | {"config": c["config"] | {"searcher": "anneal", "options": {"final_ratio": 0}}},
        "stored-searcher": lambda c: c | {"config": c["config"] | {"searcher": "nosuch"}},
        "stored-device": lambda c: c | {"config": c["config"] | {"device": "xpu:7"}},
        "stored-k": lambda c: c | {"config": c["config"] | {"k": 0}},
        "stored-big-k": lambda c: c | {"config": c["config"] | {"k": 6}},
        "stored-seq-len": lambda c: c | {"config": c["config"] | {"calib_seq_len": 4096, "model": "tiny:gpt2"}},
        "stored-speed": lambda c: c | {"config": c["config"] | {"speed": c["config"]["speed"] | {"cache_bytes": -5}}},
    }
    for name, change in variants.items():
        keep = name in ("corrupt-free", "no-model", "objective-type")
        _run_variant(runs, run.path, name, lambda d, change=change, keep=keep: _rewrite(d, change(finished), keep))
    _run_variant(
        runs,
        run.path,
        "nan-run",
        lambda d: (d / "run.json").write_text((d / "run.json").read_text().replace('"k": 2', '"k": NaN', 1)),
    )
    candidate = '{"type": "candidate", "v": 2, "n": 1, "removed": [1], "value": %s, "seconds": 0.1}\n'
    for name, value in (("nan-event", "NaN"), ("inf-event", "Infinity"), ("str-event", '"low"')):
        _run_variant(runs, run.path, name, lambda d, value=value: (d / "events.jsonl").write_text(candidate % value))
    _run_variant(
        runs,
        run.path,
        "mid-garbage",
        lambda d: (
            (d / "result.json").unlink()
            or (d / "events.jsonl").write_text(candidate % "1.0" + "garbage\n" + candidate % "2.0")
        ),
    )
    _run_variant(
        runs,
        run.path,
        "events-dir",
        lambda d: (d / "result.json").unlink() or (d / "events.jsonl").unlink() or (d / "events.jsonl").mkdir(),
    )
    _run_variant(
        runs,
        run.path,
        "events-link",
        lambda d: (d / "events.jsonl").unlink() or (d / "events.jsonl").symlink_to(w / "empty.txt"),
    )
    result = json.loads((run.path / "result.json").read_text())
    for name, change in (
        ("str-result", {"value": "low"}),
        ("strs-result", {"removed": ["1"]}),
        ("float-result", {"evaluations": 1.5}),
    ):
        _run_variant(
            runs, run.path, name, lambda d, change=change: (d / "result.json").write_text(json.dumps(result | change))
        )
    _run_variant(
        runs,
        run.path,
        "nan-result",
        lambda d: (d / "result.json").write_text(json.dumps(result).replace('"value": ', '"value": NaN, "old": ', 1)),
    )
    (w / "foreign").mkdir()
    (w / "foreign/notes.txt").write_text("not a run")
    (w / "empty.txt").write_text("")
    (w / "binary.txt").write_bytes(b"\x7fELF\x00\x01\x02" * 50)
    (w / "latin1.txt").write_bytes("caf\xe9 au lait ".encode("latin-1") * 50)
    question = {"question": "2+2?", "choices": ["4", "5"], "label": 0}
    (w / "broken.jsonl").write_text(json.dumps(question) + '\n{"question": \n')
    (w / "badlabel.jsonl").write_text(json.dumps(question | {"label": 2}) + "\n")
    (w / "data/piqa").mkdir(parents=True)
    piqa = {"goal": "open a jar", "sol1": "twist the lid", "sol2": "eat the lid"}
    (w / "data/piqa/valid.jsonl").write_text(json.dumps(piqa) + "\n" + json.dumps(piqa) + "\n")
    (w / "data/piqa/valid-labels.lst").write_text("0\n")
    (w / "data/arc_easy").mkdir()
    arc = {
        "question": {"stem": "Which?", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]},
        "answerKey": "Z",
    }
    (w / "data/arc_easy/ARC-Easy-Test.jsonl").write_text(json.dumps(arc) + "\n")
    (w / "noconfig").mkdir()
    (w / "badjson").mkdir()
    (w / "badjson/config.json").write_text('{"model_type": "llama", ')
    (w / "remote").mkdir()
    (w / "remote/config.json").write_text(
        json.dumps(
            {
                "model_type": "fancy",
                "auto_map": {
                    "AutoConfig": "configuration_fancy.FancyConfig",
                    "AutoModelForCausalLM": "modeling_fancy.FancyForCausalLM",
                },
            }
        )
    )
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
    grid = (
        'name = "s"\nmodels = ["tiny:llama"]\nobjectives = ["ppl"]\nsearchers = ["greedy"]\nbaselines = []\nk = [1]\n'
    )
    for name, text in {
        "limit0": "[evaluation]\nlimit = 0\n",
        "seqneg": "[evaluation]\nseq_len = -5\n",
        "calib1": "[calibration.ppl]\nseq_len = 1\n",
        "tau0": "[options.ga]\ntau = 0\n",
        "ratio0": "[options.anneal]\nfinal_ratio = 0\n",
        "badkey": "[options.beam]\nwidht = 2\n",
    }.items():
        (w / f"{name}.toml").write_text(grid + text)
    (w / "bigk.toml").write_text(grid.replace("k = [1]", "k = [1, 10]"))
    (w / "longseq.toml").write_text(grid.replace("tiny:llama", "tiny:gpt2") + "[evaluation]\nseq_len = 5000\n")
    (w / "device.toml").write_text(grid + 'device = "xpu:7"\n')
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
    proc = subprocess.run(
        [sys.executable, "-m", "depthprune.cli", *[a.replace("{w}", str(workspace)) for a in argv]],
        capture_output=True,
        text=True,
        timeout=120,
        env=single_thread_env,
    )
    _check(proc.returncode, proc.stderr, expected.replace("{w}", str(workspace)))


def test_the_table_covers_at_least_a_hundred_and_twenty_inputs():
    assert len({r[0] for r in ROWS}) == len(ROWS) >= 120


@pytest.mark.parametrize("argv,expected", [r[1:] for r in MODEL_ROWS], ids=[r[0] for r in MODEL_ROWS])
def test_a_stored_setting_the_model_refuses_is_one_line_and_records_no_candidate(
    argv, expected, workspace, monkeypatch, capsys, tally
):
    code, _, err = run_cli(monkeypatch, capsys, *[a.replace("{w}", str(workspace)) for a in argv])
    _check(code, err, expected.replace("{w}", str(workspace)))
    run = Path(argv[-1].replace("{w}", str(workspace)))
    assert not (run / "result.json").exists()

    def candidates(text: str) -> list[str]:
        return [line for line in text.splitlines() if json.loads(line)["type"] == "candidate"]

    assert candidates((run / "events.jsonl").read_text()) == candidates(ORIGINAL_EVENTS[0])
    tally["bad inputs"] += 1


def test_every_registered_objective_has_default_calibrations_and_a_missing_one_is_an_error():
    from depthprune.core.errors import UserError
    from depthprune.objectives import OBJECTIVES
    from depthprune.pipeline.prune import CPU_CALIBRATION, GPU_CALIBRATION

    assert set(OBJECTIVES) == set(CPU_CALIBRATION) == set(GPU_CALIBRATION)
    with pytest.raises(UserError, match="'new' has no default calibration"):
        PruneConfig(objective="new").calibrations("cpu")
    assert PruneConfig(objective="new", calib="demo", calib_samples=2, calib_seq_len=32).calibrations("cpu")["new"] == (
        "demo",
        2,
        32,
    )
