"""`depthprune heal`: linear (ReplaceMe) fusion is exact and its least squares correct, LoRA resumes
after SIGKILL to identical weights, bad inputs give one line and exit code 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from depthprune.core.engine import Engine
from depthprune.core.families import FAMILIES
from depthprune.core.loading import load_model
from depthprune.core.surgery import remove_blocks
from depthprune.heal.data import calibration_windows
from depthprune.heal.linear import NormalEquations, accumulate, heal_linear, segments
from depthprune.heal.pipeline import HealRequest, heal

from .test_cli import run_cli

FUSABLE = sorted(name for name, family in FAMILIES.items() if family.mlp_out is not None)
REFUSED = sorted(set(FAMILIES) - set(FUSABLE))
IDS = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(1))


def _calib(lm, samples=6, seq_len=32):
    return calibration_windows(lm.tokenizer, "demo", None, samples, seq_len)


def test_segments_are_maximal_runs():
    assert segments([9, 3, 4, 5, 7]) == [(3, 5), (7, 7), (9, 9)]
    assert segments([]) == []


def test_family_rule_is_stated_for_every_family():
    assert REFUSED == ["gemma2", "gemma3_text"]  # post_feedforward_layernorm between the MLP and the residual add
    assert FAMILIES["gpt2"].mlp_out == "mlp.c_proj" and FAMILIES["llama"].mlp_out == "mlp.down_proj"


@pytest.mark.parametrize("family", FUSABLE)
def test_fused_linear_checkpoint_reloads_with_the_same_logits(family, tmp_path):
    """Two segments (one ending at the last block); the exported checkpoint is stock and equals the
    in-memory healed model, which differs from the merely pruned one."""
    lm = load_model(f"tiny:{family}", device="cpu")
    removed = [2, 3, 5]
    plain = remove_blocks(load_model(f"tiny:{family}", device="cpu").model, removed)
    record = heal(
        lm,
        HealRequest(
            method="linear",
            removed=removed,
            out=tmp_path / "healed",
            calib_samples=6,
            calib_seq_len=32,
            skip_positions=2,
        ),
    )
    assert [s["segment"] for s in record["settings"]["segments"]] == [[2, 3], [5, 5]]
    for seg in record["settings"]["segments"]:
        assert seg["mse_fitted"] < seg["mse_identity"]
    info = json.loads((tmp_path / "healed" / "depthprune.json").read_text())
    assert info["heal"]["method"] == "linear" and info["heal"]["data_hash"] == record["data_hash"]
    assert info["removed"] == removed
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "healed")
    assert reloaded.config.num_hidden_layers == 3
    assert sum(p.numel() for p in reloaded.parameters()) == sum(p.numel() for p in plain.parameters())  # nothing new
    with torch.no_grad():
        healed_logits = lm.model(IDS).logits  # lm.model is the healed model with the blocks removed
        got = reloaded(IDS).logits
        pruned_logits = plain(IDS).logits
    torch.testing.assert_close(got, healed_logits, rtol=1e-5, atol=1e-5)
    assert float((got - pruned_logits).abs().max()) > 1e-3


def _explicit_features(lm, calib, i, j, skip):
    """M, Y, L of segment i..j gathered explicitly (every activation held) for the reference solution."""
    engine = Engine(lm.model, lm.family)
    proj = engine.blocks[i - 1].get_submodule(lm.family.mlp_out)
    ms, ys, ls = [], [], []
    for row in calib.ids.split(4):
        got = {}
        handle = proj.register_forward_hook(lambda _m, _a, out, seen=got: seen.__setitem__("m", out))
        states = engine.per_block_states(engine.capture(row))
        handle.remove()
        m = got["m"][:, skip:]
        ms.append(m.reshape(-1, m.shape[-1]))
        ys.append((states[i][:, skip:] - m).reshape(-1, m.shape[-1]))
        ls.append(states[j + 1][:, skip:].reshape(-1, m.shape[-1]))
    return (torch.cat(x).double().numpy() for x in (ms, ys, ls))


def test_streaming_least_squares_equals_numpy_lstsq():
    lm = load_model("tiny:llama", device="cpu")
    calib = _calib(lm, samples=6, seq_len=40)
    (eq,) = accumulate(Engine(lm.model, lm.family), calib, [(2, 3)], skip_positions=4, batch_size=4)
    m, y, after = _explicit_features(lm, calib, 2, 3, 4)
    target = after - y
    assert eq.rows == m.shape[0] == 6 * 36
    expected = np.linalg.lstsq(m, target, rcond=None)[0]
    np.testing.assert_allclose(eq.solve(0.0).numpy(), expected, rtol=1e-4, atol=1e-6)
    lam = 0.1 * float(np.mean(np.diag(m.T @ m)))
    eye = np.eye(m.shape[1])
    ridge = np.linalg.solve(m.T @ m + lam * eye, m.T @ target + lam * eye)  # shrinks toward the identity
    np.testing.assert_allclose(eq.solve(0.1).numpy(), ridge, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(eq.solve(1e9).numpy(), eye, atol=1e-6)  # a huge ridge: no compensation
    np.testing.assert_allclose(eq.mse(eq.solve(0.0)), np.mean((m @ expected - target) ** 2), rtol=1e-5)


def test_normal_equations_recover_a_known_map():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 16, generator=gen, dtype=torch.float64)
    t_true = torch.randn(16, 16, generator=gen, dtype=torch.float64)
    eq = NormalEquations(16)
    for chunk_x, chunk_r in zip(x.split(64), (x @ t_true).split(64)):
        eq.add(chunk_x, chunk_r)
    torch.testing.assert_close(eq.solve(0.0), t_true, rtol=1e-9, atol=1e-9)
    assert eq.mse(eq.solve(0.0)) < 1e-18


def test_removing_an_identity_block_heals_to_the_identity_map():
    """A removed block whose attention and MLP outputs are zero is the identity: T = I exactly and the
    healed pruned model equals the dense one."""
    lm = load_model("tiny:llama", device="cpu")
    with torch.no_grad():
        lm.model.model.layers[3].self_attn.o_proj.weight.zero_()
        lm.model.model.layers[3].mlp.down_proj.weight.zero_()
        dense = lm.model(IDS).logits
    before = lm.model.model.layers[2].mlp.down_proj.weight.clone()
    report = heal_linear(lm, [3], _calib(lm), ridge=0.0, skip_positions=0)
    assert report["segments"][0]["mse_fitted"] < 1e-12
    torch.testing.assert_close(lm.model.model.layers[2].mlp.down_proj.weight, before, rtol=1e-5, atol=1e-6)
    engine = Engine(lm.model, lm.family)
    with engine.skipping([3]), torch.no_grad():
        torch.testing.assert_close(lm.model(IDS).logits, dense, rtol=1e-4, atol=1e-4)


def _heal_process(out: Path, *extra, fault: str | None = None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: fast on a loaded machine, and the same in every process
    env.pop("DEPTHPRUNE_FAULT", None)
    if fault:
        env["DEPTHPRUNE_FAULT"] = fault
    args = [
        sys.executable,
        "-m",
        "depthprune.cli",
        "heal",
        "--model",
        "tiny:llama",
        "--remove",
        "2,3",
        "--method",
        "lora",
        "--steps",
        "6",
        "--save-every",
        "2",
        "--calib-samples",
        "4",
        "--calib-seq-len",
        "32",
        "--batch-size",
        "2",
        "--eval-tasks",
        "",
        "--lr",
        "0.01",
        "--out",
        str(out),
        "--json",
        *extra,
    ]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


def test_lora_resume_after_sigkill_gives_identical_weights(tmp_path):
    killed = _heal_process(tmp_path / "resumed", fault="heal-step:5")  # killed after step 5; last checkpoint at step 4
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (tmp_path / "resumed").exists() and (tmp_path / "resumed.heal-state" / "state.safetensors").is_file()
    resumed = _heal_process(tmp_path / "resumed", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record = json.loads(resumed.stdout)
    assert record["settings"]["resumed_at_step"] == 4 and len(record["losses"]) == 6
    whole = _heal_process(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert json.loads(whole.stdout)["losses"] == record["losses"]
    a, b = load_file(tmp_path / "resumed" / "model.safetensors"), load_file(tmp_path / "whole" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    base = remove_blocks(load_model("tiny:llama", device="cpu").model, [2, 3]).state_dict()
    assert any(not torch.equal(a[k], base[k]) for k in a)  # the merged adapters changed the weights
    assert not (tmp_path / "resumed.heal-state").exists()  # training state removed once exported


HEAL = [
    "heal",
    "--model",
    "tiny:llama",
    "--remove",
    "2,3",
    "--calib-samples",
    "2",
    "--calib-seq-len",
    "16",
    "--eval-tasks",
    "",
]


@pytest.mark.parametrize(
    "args, message",
    [
        ([*HEAL, "--method", "prune-harder", "--out", "{w}/o"], "unknown heal method 'prune-harder' (from --method)"),
        ([*HEAL, "--method", "lora", "--rank", "0", "--out", "{w}/o"], "--rank"),
        ([*HEAL, "--method", "lora", "--steps", "0", "--out", "{w}/o"], "--steps"),
        (
            ["heal", "--model", "tiny:gemma2", "--remove", "2,3", "--method", "linear", "--out", "{w}/o"],
            "cannot be fused exactly into gemma2",
        ),
        (
            ["heal", "--model", "tiny:llama", "--remove", "0,1", "--method", "linear", "--out", "{w}/o"],
            "starts at block 0",
        ),
        (["heal", "--run", "{w}/runs/unfinished", "--method", "linear"], "has no result yet"),
        ([*HEAL, "--method", "linear"], "give --out DIR"),
        ([*HEAL, "--method", "linear", "--out", "{w}/full"], "exists and is not empty"),
    ],
)
def test_bad_heal_inputs_give_one_line_and_exit_2(args, message, tmp_path, monkeypatch, capsys):
    run = tmp_path / "runs" / "unfinished"
    run.mkdir(parents=True)
    (run / "run.json").write_text(
        json.dumps(
            {
                "schema": 1,
                "id": "unfinished",
                "model": "tiny:llama",
                "objective": {"objective": "ppl"},
                "searcher": "greedy",
                "k": 2,
                "config": {},
            }
        )
    )
    (run / "events.jsonl").write_text("")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    code, _out, err = run_cli(monkeypatch, capsys, *[a.replace("{w}", str(tmp_path)) for a in args])
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written


def test_healing_a_run_appends_the_healed_event_and_the_checkpoint_evaluates(tmp_path, monkeypatch, capsys):
    from depthprune.core.events import Healed, Phase
    from depthprune.core.runs import Run
    from depthprune.pipeline.prune import PruneConfig, start

    run, result = start(
        PruneConfig(
            model="tiny:llama",
            objective="ppl",
            searcher="window",
            k=2,
            protect=[0],
            calib="demo",
            calib_samples=1,
            calib_seq_len=32,
        ),
        tmp_path / "runs",
    )
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "heal",
        "--run",
        run.id,
        "--runs-dir",
        str(tmp_path / "runs"),
        "--method",
        "linear",
        "--calib-samples",
        "4",
        "--calib-seq-len",
        "32",
        "--eval-tasks",
        "demo-text",
        "--eval-limit",
        "2",
        "--eval-seq-len",
        "64",
        "--json",
    )
    assert code == 0, err
    record = json.loads(out)
    events = Run.open(run.path).events()
    healed = [e for e in events if isinstance(e, Healed)]
    assert len(healed) == 1 and healed[0].removed == result["removed"] == record["removed"]
    assert healed[0].out == str(run.path / "healed-linear") and healed[0].data_hash == record["data_hash"]
    assert healed[0].before["demo-text"]["ppl"] != healed[0].after["demo-text"]["ppl"]
    assert any(isinstance(e, Phase) and e.phase == "healing" for e in events)
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "eval",
        "--run",
        run.id,
        "--runs-dir",
        str(tmp_path / "runs"),
        "--healed",
        "linear",
        "--tasks",
        "demo-text",
        "--limit",
        "2",
        "--seq-len",
        "64",
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["n_blocks"] == 4 and report["model"] == healed[0].out and report["removed"] == []
    assert report["tasks"]["demo-text"]["ppl"] == pytest.approx(healed[0].after["demo-text"]["ppl"], rel=1e-4)


def test_lora_trains_only_the_adapters_of_the_kept_blocks(tmp_path):
    from depthprune.heal.lora import LoraSettings, heal_lora

    lm = load_model("tiny:llama", device="cpu")
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    report = heal_lora(
        lm, [2, 3], _calib(lm, 2, 16), LoraSettings(steps=2, rank=4, batch_size=1, lr=0.01), tmp_path / "state"
    )
    # rank 4 on q, k, v, o, gate, up, down of the 4 kept blocks: r * (in + out) each
    per_block = 4 * ((64 + 64) + (64 + 32) * 2 + (64 + 64) + (64 + 128) * 2 + (128 + 64))
    assert report["trainable_parameters"] == 4 * per_block
    after = lm.model.state_dict()
    assert after.keys() == before.keys()  # merged and unloaded: the stock architecture again
    for k in before:
        changed = not torch.equal(after[k], before[k])
        touched = k.startswith(("model.layers.0.", "model.layers.1.", "model.layers.4.", "model.layers.5."))
        assert changed == (touched and k.endswith("proj.weight")), k
