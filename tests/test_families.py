"""Removing blocks gives the same model as one built without them, for every supported family.

For each family's tiny model and several removal sets (first, last, sliding and global blocks):
the engine's replay over captured block inputs and its skipping forward both give exactly the
logits of the physically pruned model saved with `save_pretrained` and reloaded with stock
`from_pretrained`; the reloaded model generates with a KV cache exactly as without one.
"""

import pytest
import torch
from transformers import AutoModelForCausalLM

from depthprune.core.engine import Engine
from depthprune.core.loading import load_model
from depthprune.core.surgery import export_pruned

from .conftest import FAMILY_NAMES

REMOVAL_SETS = [(0,), (5,), (1, 4), (0, 2, 3)]


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(1)
    ids = torch.randint(0, 256, (3, 24))  # longer than the tiny sliding windows (8 tokens)
    mask = torch.ones_like(ids)
    mask[1, 18:] = 0  # right padding in one row
    mask[2, 11:] = 0
    return ids, mask


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_engine_equals_physically_pruned_reloaded_model(family, batch, tmp_path):
    ids, mask = batch
    lm = load_model(f"tiny:{family}", device="cpu")
    engine = Engine(lm.model)
    captured = engine.capture(ids, mask)
    replayed = {r: engine.logits(engine.finalize(engine.run_blocks(captured, r))) for r in REMOVAL_SETS}
    skipped = {r: engine.logits(engine.final_hidden(ids, mask, r)) for r in REMOVAL_SETS}
    dense = engine.logits(engine.finalize(engine.run_blocks(captured, ())))
    with torch.no_grad():
        assert torch.allclose(dense, lm.model(ids, attention_mask=mask).logits.float(), atol=1e-5)

    for removed in REMOVAL_SETS:
        fresh = load_model(f"tiny:{family}", device="cpu")
        out = tmp_path / "-".join(map(str, removed))
        info = export_pruned(fresh, removed, out)
        assert info["removed"] == list(removed)
        reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
        assert reloaded.config.num_hidden_layers == 6 - len(removed)
        with torch.no_grad():
            expected = reloaded(ids, attention_mask=mask).logits.float()
        valid = mask.bool()
        assert torch.allclose(replayed[removed][valid], expected[valid], atol=1e-5), f"replay differs for {removed}"
        assert torch.allclose(skipped[removed][valid], expected[valid], atol=1e-5), f"skip differs for {removed}"
        assert not torch.allclose(expected[valid], dense[valid], atol=1e-3), "removal must change the logits"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_exported_model_generates_with_kv_cache(family, tmp_path):
    lm = load_model(f"tiny:{family}", device="cpu")
    export_pruned(lm, (1, 3), tmp_path / "out")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    prompt = torch.tensor([[72, 101, 108, 108, 111, 32, 119, 111, 114]])
    with torch.no_grad():
        cached = model.generate(prompt, max_new_tokens=12, min_new_tokens=12, do_sample=False, use_cache=True)
        uncached = model.generate(prompt, max_new_tokens=12, min_new_tokens=12, do_sample=False, use_cache=False)
    assert cached.shape[1] == prompt.shape[1] + 12
    assert torch.equal(cached, uncached)


def test_per_layer_config_is_sliced_on_gemma3(tmp_path):
    lm = load_model("tiny:gemma3_text", device="cpu")
    types = list(lm.model.config.layer_types)
    export_pruned(lm, (2, 4), tmp_path / "g")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "g")
    assert reloaded.config.layer_types == [t for i, t in enumerate(types) if i not in (2, 4)]
    assert reloaded.config.depthprune["original_blocks"] == [0, 1, 3, 5]
    layer_idx = [b.self_attn.layer_idx for b in reloaded.model.layers]
    assert layer_idx == [0, 1, 2, 3]
