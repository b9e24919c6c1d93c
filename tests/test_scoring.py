"""Scoring conventions: lm-eval's request encoding, padding-independent batches, GPTQ windows."""

import torch

from depthprune.core.evaluate import Evaluator
from depthprune.core.loading import load_model
from depthprune.core.scoring import encode_pair, make_batches, windows
from depthprune.core.tasks import demo_items
from depthprune.core.tiny import byte_tokenizer


def test_trailing_context_whitespace_moves_to_the_continuation():
    tok = byte_tokenizer()
    assert encode_pair(tok, "Answer: ", "yes") == encode_pair(tok, "Answer:", " yes")
    ctx, cont = encode_pair(tok, "Answer: ", "yes")
    assert tok.decode(ctx) == "Answer:" and tok.decode(cont) == " yes"


def test_empty_context_is_the_prefix_token():
    tok = byte_tokenizer()
    ctx, cont = encode_pair(tok, "", "hello")
    assert ctx == [tok.bos_token_id] and tok.decode(cont) == "hello"


def test_windows_are_non_overlapping_and_drop_the_remainder():
    pairs = windows(list(range(25)), 8)
    assert [ctx + cont for ctx, cont in pairs] == [list(range(0, 8)), list(range(8, 16)), list(range(16, 24))]
    assert windows(list(range(25)), 8, limit=2) == pairs[:2]


def test_inputs_longer_than_max_length_are_truncated_from_the_left():
    (batch,) = make_batches([(list(range(10)), [10, 11, 12])], batch_size=1, max_length=6, pad_id=0)
    assert batch.input_ids.tolist() == [[6, 7, 8, 9, 10, 11]]  # (ctx + cont)[-7:][:-1]
    assert batch.targets.tolist() == [10, 11, 12]
    assert batch.positions[:, 1].tolist() == [3, 4, 5]


def test_batched_padded_scores_equal_one_sequence_at_a_time_and_a_plain_forward():
    lm = load_model("tiny:qwen2", device="cpu")  # sliding-window model: padding must not leak
    items = demo_items("eval")[:8]
    batched = Evaluator(lm, batch_size=8).multiple_choice(items)
    single = Evaluator(lm, batch_size=1).multiple_choice(items)
    for a, b in zip(batched.loglik, single.loglik):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-4)
    # independent reference: one unpadded forward per choice, log-softmax over the full vocabulary
    item = items[0]
    for j, (ctx, cont) in enumerate(zip(item.contexts, item.continuations)):
        c, t = encode_pair(lm.tokenizer, ctx, cont)
        ids = torch.tensor([c + t])
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(ids).logits[0, :-1].float(), -1)
        expected = logp[torch.arange(len(c) - 1, len(c) + len(t) - 1), torch.tensor(t)].sum()
        assert abs(float(expected) - single.loglik[0][j]) < 1e-4
