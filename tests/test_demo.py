"""End-to-end checks on the real embedded model (SmolLM2-135M-Instruct, 30 Llama blocks)."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from depthprune.core.engine import Engine
from depthprune.core.evaluate import Evaluator, evaluate
from depthprune.core.surgery import export_pruned
from depthprune.core.tasks import TASKS

pytestmark = pytest.mark.demo


def gptq_reference_ppl(model, tokenizer, text: str, seq_len: int, n: int) -> float:
    """The GPTQ/SparseGPT evaluation loop, written out plainly as the reference."""
    ids = tokenizer(text, return_tensors="pt").input_ids
    nlls = []
    for i in range(n):
        batch = ids[:, i * seq_len : (i + 1) * seq_len]
        with torch.no_grad():
            logits = model(batch).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[0, :-1], batch[0, 1:])
        nlls.append(loss * (seq_len - 1))
    return math.exp(torch.stack(nlls).sum() / (n * (seq_len - 1)))


def test_dense_wikitext2_perplexity_is_gptq_style_and_sane(demo, data_dir):
    report = evaluate(demo, ["wikitext2"], limit=4, seq_len=512, data_dir=data_dir)
    ppl = report["tasks"]["wikitext2"]["ppl"]
    reference = gptq_reference_ppl(demo.model, demo.tokenizer, TASKS["wikitext2"].load(data_dir), 512, 4)
    assert ppl == pytest.approx(reference, rel=1e-4)
    assert 20 < ppl < 45  # SmolLM2-135M: about 30 at seq-len 512


def test_removing_blocks_of_the_real_model_matches_its_exported_checkpoint(demo, tmp_path):
    ids = demo.tokenizer("Depth pruning removes whole blocks of a language model.", return_tensors="pt").input_ids
    engine = Engine(demo.model)
    captured = engine.capture(ids)
    removed = (3, 17, 28)
    replayed = engine.logits(engine.finalize(engine.run_blocks(captured, removed)))
    dense = engine.logits(engine.finalize(engine.run_blocks(captured, ())))

    from depthprune.core.loading import load_model

    fresh = load_model("demo", device="cpu")
    info = export_pruned(fresh, removed, tmp_path / "pruned")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "pruned").eval()
    assert reloaded.config.num_hidden_layers == 27 and info["removed"] == [3, 17, 28]
    with torch.no_grad():
        expected = reloaded(ids).logits.float()
        generated = reloaded.generate(ids, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert torch.allclose(replayed, expected, atol=1e-4)
    assert not torch.allclose(replayed, dense, atol=1e-2)
    assert generated.shape[1] == ids.shape[1] + 5


def test_pruning_the_real_model_hurts_perplexity_more_in_early_blocks(demo):
    text = TASKS["demo-text"].load(None)
    evaluator = Evaluator(demo, batch_size=2)
    dense = evaluator.perplexity(text, (), seq_len=256, limit=2)["ppl"]
    first = evaluator.perplexity(text, (0,), seq_len=256, limit=2)["ppl"]
    late = evaluator.perplexity(text, (25,), seq_len=256, limit=2)["ppl"]
    assert dense < late < first
