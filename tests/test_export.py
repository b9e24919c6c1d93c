"""Exports: generic per-layer config slicing (HF), GGUF surgery and its round trip, the quality gate, the record."""

import hashlib
import json

import numpy as np
import pytest
import torch

from depthprune.core.surgery import check_config, pruned_config

from .test_cli import prune_tiny_tail, run_cli


def test_every_per_layer_config_field_is_sliced_and_passes_strict_validation(tmp_path):
    from transformers import AutoConfig

    n = 5
    config = AutoConfig.for_model(
        "qwen3",
        num_hidden_layers=n,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        vocab_size=64,
        use_sliding_window=True,
        sliding_window=8,
        max_window_layers=3,
        layer_types=["sliding_attention", "full_attention"] * 2 + ["full_attention"],
        eos_token_id=list(range(n)),  # as many token ids as blocks: must not be sliced
    )
    config.no_rope_layers = [1, 0, 1, 0, 1]  # fields no family table names
    config.layer_rope_theta = (1e4, 2e4, 3e4, 4e4, 5e4)
    config.per_layer_window = {str(i): 8 * (i + 1) for i in range(n)}
    config.mlp_only_layers = [0, 2, 4]
    cfg = pruned_config(config, [1, 2])
    assert cfg.num_hidden_layers == 3
    assert cfg.layer_types == ["sliding_attention", "full_attention", "full_attention"]
    assert cfg.no_rope_layers == [1, 0, 1] and cfg.layer_rope_theta == (1e4, 4e4, 5e4)
    assert cfg.per_layer_window == {"0": 8, "1": 32, "2": 40}
    assert cfg.mlp_only_layers == [0, 2] and cfg.max_window_layers == 1
    assert cfg.eos_token_id == list(range(n)) and cfg.depthprune["removed"] == [1, 2]
    cfg.save_pretrained(tmp_path)
    assert "transformers.AutoConfig (strict validate)" in check_config(tmp_path)
    stale = json.loads((tmp_path / "config.json").read_text())
    stale["layer_types"] = config.layer_types  # what an unsliced export would write
    (tmp_path / "config.json").write_text(json.dumps(stale))
    with pytest.raises(RuntimeError, match="layer_types"):
        check_config(tmp_path)


def write_gguf(path, n_blocks: int) -> dict:
    """A small llama GGUF with a per-layer metadata array and one F32 and one Q8_0 tensor per block."""
    import gguf
    from gguf.quants import quantize

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(n_blocks)
    writer.add_array("llama.attention.head_count_kv", [10 + i for i in range(n_blocks)])
    writer.add_array("llama.not_per_layer", [7, 8])
    writer.add_array("tokenizer.ggml.token_type", list(range(n_blocks)))  # not under the arch: kept whole
    rng = np.random.default_rng(0)
    blocks = {}
    writer.add_tensor("token_embd.weight", rng.standard_normal((4, 32), dtype=np.float32))
    for i in range(n_blocks):
        norm = rng.standard_normal(32, dtype=np.float32)
        q = quantize(rng.standard_normal((2, 32), dtype=np.float32), gguf.GGMLQuantizationType.Q8_0)
        writer.add_tensor(f"blk.{i}.attn_norm.weight", norm)
        writer.add_tensor(f"blk.{i}.attn_q.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        blocks[i] = (norm.tobytes(), q.tobytes())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return blocks


def test_gguf_surgery_drops_renumbers_and_slices_keeping_raw_bytes(tmp_path):
    import gguf

    from depthprune.core.gguf_export import write_pruned_gguf

    blocks = write_gguf(tmp_path / "src.gguf", 5)
    done = write_pruned_gguf(tmp_path / "src.gguf", [1, 3], tmp_path / "out.gguf")
    assert done["sliced_arrays"] == ["llama.attention.head_count_kv"] and done["tensors_dropped"] == 4
    r = gguf.GGUFReader(tmp_path / "out.gguf")
    assert r.fields["llama.block_count"].contents() == 3
    assert r.fields["llama.attention.head_count_kv"].contents() == [10, 12, 14]
    assert r.fields["llama.not_per_layer"].contents() == [7, 8]
    assert r.fields["tokenizer.ggml.token_type"].contents() == [0, 1, 2, 3, 4]
    assert r.fields["depthprune.removed_blocks"].contents() == [1, 3]
    tensors = {t.name: t for t in r.tensors}
    assert sorted(tensors) == sorted(
        ["token_embd.weight"] + [f"blk.{i}.{n}" for i in range(3) for n in ("attn_norm.weight", "attn_q.weight")]
    )
    for new, old in enumerate([0, 2, 4]):
        assert tensors[f"blk.{new}.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
        assert tensors[f"blk.{new}.attn_norm.weight"].data.tobytes() == blocks[old][0]
        assert tensors[f"blk.{new}.attn_q.weight"].data.tobytes() == blocks[old][1]


BAD = [
    (["export", "--model", "tiny:llama", "--remove", "1", "--format", "gguf"], "GGUF export needs a GGUF source"),
    (
        ["export", "--model", "tiny:llama", "--remove", "1", "--format", "xyz"],
        "unknown export format 'xyz' (from --format)",
    ),
    (["export", "--model", "{tmp}/nope.gguf", "--remove", "1", "--format", "gguf"], "(from --model) not found"),
    (["export", "--model", "tiny:llama", "--remove", "1", "--min-acc-retained", "120"], "--min-acc-retained 120"),
    (
        ["export", "--model", "tiny:llama", "--remove", "1", "--gate-tasks", "mmlu", "--max-ppl-increase", "5"],
        "unknown task 'mmlu' (from --gate-tasks)",
    ),
    (["export", "--model", "tiny:llama"], "nothing to remove"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a[3:]) for a, _ in BAD])
def test_bad_export_input_is_one_line_with_exit_code_2(args, message, tmp_path, monkeypatch, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args] + ["--out", str(tmp_path / "out")]
    code, out, err = run_cli(monkeypatch, capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert out == "" and not (tmp_path / "out").exists()
    if "GGUF source" in message:
        assert "convert_hf_to_gguf.py" in lines[0]


def test_export_of_a_run_records_plan_hashes_and_event(tmp_path, monkeypatch, capsys):
    runs = str(tmp_path / "runs")
    run_id, removed = prune_tiny_tail(monkeypatch, capsys, runs)
    code, _out, err = run_cli(
        monkeypatch,
        capsys,
        "export",
        run_id,
        "--runs-dir",
        runs,
        "--out",
        str(tmp_path / "ckpt"),
        "--max-ppl-increase",
        "1000000",
        "--gate-tasks",
        "demo-text",
        "--gate-limit",
        "1",
        "--gate-seq-len",
        "32",
    )
    assert code == 0, err
    plan = json.loads((tmp_path / "ckpt/depthprune.json").read_text())
    run_json = json.loads((tmp_path / "runs" / run_id / "run.json").read_text())
    assert plan["removed"] == removed and plan["objective"] == "ppl" and plan["searcher"] == "tail"
    assert plan["calibration_sha256"] == run_json["objective"]["data_sha256"] and plan["tool_version"]
    assert plan["gate"]["passed"] and plan["forced"] is False
    assert set(plan["heldout"]["dense"]) == {"demo-text"} and plan["heldout"]["pruned"]["demo-text"]["ppl"] > 1
    for name, digest in plan["files"].items():
        data = (tmp_path / "ckpt" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest and len(data) == plan["file_bytes"][name]
    assert plan["bytes_after"] == sum(plan["file_bytes"].values()) and "config.json" in plan["files"]

    from depthprune.core.events import Exported, Phase
    from depthprune.core.runs import Run

    events = Run.open(run_id, tmp_path / "runs").events()
    exported = [e for e in events if isinstance(e, Exported)]
    assert len(exported) == 1 and exported[0].files == plan["files"] and exported[0].format == "hf"
    assert exported[0].removed == removed and exported[0].gate["passed"]
    assert any(isinstance(e, Phase) and e.phase == "exporting" for e in events)


GATE = ["--max-ppl-increase", "400", "--gate-tasks", "demo-text", "--gate-limit", "4", "--gate-seq-len", "128"]


@pytest.mark.demo
def test_gguf_round_trip_of_the_demo_model_matches_the_engine(demo, tmp_path, monkeypatch, capsys):
    import gguf
    from transformers import AutoModelForCausalLM

    from depthprune.core.engine import Engine
    from depthprune.core.loading import demo_gguf

    removed = [3, 17, 28]
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "export",
        "--model",
        "demo",
        "--remove",
        "3,17,28",
        "--format",
        "gguf",
        "--out",
        str(tmp_path / "g"),
        *GATE,
    )
    assert code == 0, err
    info = json.loads(out)
    assert info["gate"]["passed"] and info["verified_max_logit_diff"] <= 1e-4
    [path] = list((tmp_path / "g").glob("*.gguf"))
    assert info["bytes_before"] == demo_gguf().stat().st_size and info["bytes_after"] == path.stat().st_size
    src, new = gguf.GGUFReader(demo_gguf()), gguf.GGUFReader(path)
    assert new.fields["llama.block_count"].contents() == 27
    n = src.fields["llama.block_count"].contents()
    for field in new.fields.values():  # no per-layer array left at the old length
        if field.name.startswith("llama.") and field.types[0] == gguf.GGUFValueType.ARRAY:
            assert len(field.data) != n
    old = {t.name: t for t in src.tensors}
    kept = [i for i in range(30) if i not in removed]
    for t in new.tensors:
        name = t.name
        if name.startswith("blk."):
            i, rest = name.split(".", 2)[1:]
            name = f"blk.{kept[int(i)]}.{rest}"
        assert t.tensor_type == old[name].tensor_type and t.data.tobytes() == old[name].data.tobytes()
    assert len(new.tensors) == len(src.tensors) - 3 * 9

    ids = demo.tokenizer("Depth pruning removes whole blocks of a transformer.", return_tensors="pt").input_ids
    engine = Engine(demo.model, demo.family)
    reloaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    assert reloaded.config.num_hidden_layers == 27
    with torch.no_grad():
        expected = engine.logits(engine.final_hidden(ids, None, removed))
        got = reloaded(ids).logits.float()
        dense = engine.logits(engine.final_hidden(ids, None, ()))
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(got, dense, atol=1e-2)


@pytest.mark.demo
def test_the_gate_refuses_a_bad_export_unless_forced(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bad"
    code, stdout, err = run_cli(
        monkeypatch, capsys, "export", "--model", "demo", "--remove", "0,1", "--out", str(out), *GATE
    )
    lines = [line for line in err.splitlines() if line.strip().startswith("error")]
    assert code == 2 and len(lines) == 1 and "quality gate failed" in lines[0] and "demo-text ppl" in lines[0]
    assert "vs --max-ppl-increase 400%" in lines[0] and not out.exists() and stdout == ""
    code, stdout, err = run_cli(
        monkeypatch, capsys, "export", "--model", "demo", "--remove", "0,1", "--out", str(out), *GATE, "--force"
    )
    assert code == 0, err
    plan = json.loads((out / "depthprune.json").read_text())
    assert plan["forced"] is True and plan["gate"]["passed"] is False and plan["removed"] == [0, 1]
    check = plan["gate"]["checks"][0]
    assert check["value"] == pytest.approx((check["pruned"] / check["dense"] - 1) * 100) and check["value"] > 400
