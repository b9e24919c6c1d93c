"""Security defaults: no pickle, remote code only on request, exported checkpoints verified and hashed,
and nothing read from a run directory can make the tool write outside the runs directory."""

import hashlib
import json
import re
from pathlib import Path

import pytest

from depthprune.core.errors import UserError
from depthprune.core.loading import load_model
from depthprune.core.runs import Run
from depthprune.core.surgery import export_pruned
from depthprune.pipeline.prune import PruneConfig, resume, start

PACKAGE = Path(__file__).resolve().parents[2]
CONFIG = PruneConfig(
    model="tiny:llama", objective="ppl", searcher="greedy", k=1, calib="demo", calib_samples=1, calib_seq_len=32
)


def _digest(directory: Path) -> dict:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_no_pickle_and_every_torch_load_is_weights_only():
    sources = [p for p in PACKAGE.rglob("*.py") if not {"tests", "build", ".venv"} & set(p.relative_to(PACKAGE).parts)]
    assert len(sources) > 20
    for path in sources:
        text = path.read_text()
        assert not re.search(r"^\s*(import pickle|from pickle)", text, re.M), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path}: {call}"


def test_remote_code_is_off_by_default_and_the_error_says_how_to_allow_it(tmp_path):
    assert PruneConfig(model="m", objective="ppl", searcher="greedy", k=1).trust_remote_code is False
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "fancy", "auto_map": {"AutoConfig": "c.FancyConfig"}})
    )
    with pytest.raises(UserError, match=r"needs custom code; pass --trust-remote-code if you trust it"):
        load_model(str(tmp_path), device="cpu")


def test_export_reloads_compares_logits_and_records_the_weights_hash(tmp_path):
    info = export_pruned(load_model("tiny:llama", device="cpu"), (1, 4), tmp_path / "out")
    weights = tmp_path / "out/model.safetensors"
    written = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != "depthprune.json")
    assert sorted(info["files"]) == written  # every file written is hashed (issue 14)
    assert info["files"]["model.safetensors"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert info["verified_max_logit_diff"] < 1e-4 and info["removed"] == [1, 4]
    assert json.loads((tmp_path / "out/depthprune.json").read_text())["files"] == info["files"]


def test_a_crafted_run_json_cannot_move_writes_outside_the_runs_directory(tmp_path):
    runs_dir, outside = tmp_path / "runs", tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    run, _ = start(CONFIG, runs_dir)
    (run.path / "result.json").unlink()
    config = json.loads((run.path / "run.json").read_text())
    config["id"] = "../../outside/hijacked"
    config["config"]["data_dir"] = str(outside)
    (run.path / "run.json").write_text(json.dumps(config))
    before = _digest(outside)
    resumed, _ = resume(str(run.path), runs_dir)
    assert resumed.path == run.path and (run.path / "result.json").is_file()
    assert _digest(outside) == before
    assert not (tmp_path / "hijacked").exists() and not (outside / "hijacked").exists()


@pytest.mark.parametrize("name", ["events.jsonl", ".lock"])
def test_symlinks_in_a_run_directory_are_never_written_through(name, tmp_path):
    runs_dir, target = tmp_path / "runs", tmp_path / "victim.txt"
    run, _ = start(CONFIG, runs_dir)
    (run.path / "result.json").unlink()
    target.write_bytes((run.path / name).read_bytes() if name == "events.jsonl" else b"victim")
    (run.path / name).unlink()
    (run.path / name).symlink_to(target)
    before = target.read_bytes()
    with pytest.raises(UserError, match=re.escape(name)):
        resume(str(run.path), runs_dir)
    assert target.read_bytes() == before


@pytest.mark.parametrize("name", ["../escape", "a/b", ".."])
def test_a_run_name_is_a_plain_directory_name(name, tmp_path):
    with pytest.raises(UserError, match="plain directory name"):
        Run.create(tmp_path / "runs", {"model": "m", "objective": {"objective": "ppl"}, "searcher": "s", "k": 1}, name)
    assert not (tmp_path / "escape").exists()


def _crafted_model(directory: Path, marker: Path) -> Path:
    """A model directory whose config names its own code (auto_map); importing that code writes `marker`."""
    directory.mkdir()
    code = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('remote code ran')\n"
    code += (
        "from transformers import PretrainedConfig\n\nclass FancyConfig(PretrainedConfig):\n    model_type = 'fancy'\n"
    )
    (directory / "configuration_fancy.py").write_text(code)
    (directory / "modeling_fancy.py").write_text(code)
    (directory / "config.json").write_text(
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
    return directory


def _point_run_at(run: Run, model: Path) -> None:
    config = json.loads((run.path / "run.json").read_text())
    config["model"] = str(model)
    config["config"] |= {"model": str(model), "trust_remote_code": True}
    (run.path / "run.json").write_text(json.dumps(config))


@pytest.mark.parametrize("command", ["export", "resume"])
def test_a_stored_trust_remote_code_never_runs_a_repositorys_code(command, tmp_path, monkeypatch, capsys, tally):
    """run.json says `trust_remote_code: true` and names a model whose code would write a marker file:
    `export RUN` and `prune --resume RUN` without --trust-remote-code refuse with one line, and no code runs."""
    from ..test_cli import run_cli

    marker = tmp_path / "marker"
    model = _crafted_model(tmp_path / "fancy", marker)
    run, _ = start(CONFIG, tmp_path / "runs")
    if command == "resume":
        (run.path / "result.json").unlink()
    _point_run_at(run, model)
    argv = (
        ["export", str(run.path), "--out", str(tmp_path / "out")]
        if command == "export"
        else ["prune", "--resume", str(run.path)]
    )
    code, _, err = run_cli(monkeypatch, capsys, *argv)
    assert code == 2 and "--trust-remote-code" in err, err
    assert not marker.exists(), "the model repository's code ran although --trust-remote-code was not given"
    tally["bad inputs"] += 1


def test_a_run_directory_that_is_a_link_is_never_written_through(tmp_path):
    runs_dir, outside = tmp_path / "runs", tmp_path / "outside"
    run, _ = start(CONFIG, outside)
    (run.path / "result.json").unlink()
    runs_dir.mkdir()
    (runs_dir / run.id).symlink_to(run.path)
    before = _digest(run.path)
    with pytest.raises(UserError, match="symbolic link"):
        resume(run.id, runs_dir)
    assert _digest(run.path) == before
