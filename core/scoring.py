"""Token-level scoring shared by benchmarks and objectives: sequences -> padded batches -> log-likelihoods.

Every scored sequence is a pair (context ids, continuation ids); its score is the sum of
log p(continuation token | everything before it), in fp32, as lm-evaluation-harness computes
`loglikelihood`. A perplexity window w is the pair (w[:1], w[1:]): loss over positions 1..L-1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

Pair = tuple[list[int], list[int]]


def _encode(tokenizer, text: str, prefix: str) -> list[int]:
    """lm-eval's `tok_encode`: tokenizer defaults (a BOS where the tokenizer adds one), except that a
    string already starting with the prefix token's text gets no special tokens."""
    return tokenizer(text, add_special_tokens=not (prefix and text.startswith(prefix))).input_ids


def encode_pair(tokenizer, context: str, continuation: str) -> Pair:
    """lm-eval 0.4.13's `_encode_pair` for causal models: trailing whitespace of the context moves to
    the continuation; the whole string is encoded and split at the encoded context's length. An empty
    context becomes the prefix token (BOS, else EOS) before the continuation encoded without specials."""
    prefix_id = prefix_token_id(tokenizer)
    if not context:
        cont = tokenizer(continuation, add_special_tokens=False).input_ids
        return ([prefix_id], cont) if cont[0] != prefix_id else (cont[:1], cont[1:])
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    prefix = tokenizer.decode([prefix_id])
    whole = _encode(tokenizer, context + continuation, prefix)
    ctx = _encode(tokenizer, context, prefix)
    return ctx, whole[len(ctx):]


def prefix_token_id(tokenizer) -> int:
    """lm-eval's prefix for an empty context: BOS if the tokenizer has one, else EOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


@dataclass
class TokenBatch:
    """Right-padded sequences with the positions whose next-token log-probs are scored.

    `positions[n] = (row, t)` predicts `targets[n]`; `owner[n]` is the index of the pair it belongs to."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    positions: torch.Tensor
    targets: torch.Tensor
    owner: torch.Tensor
    pair_ids: list[int]


def make_batches(pairs: Sequence[Pair], batch_size: int, max_length: int, pad_id: int) -> list[TokenBatch]:
    """Batches of whole pairs, longest first (as lm-eval orders them); inputs longer than
    `max_length` are truncated from the left (lm-eval's `[-(max_length + 1):][:-1]`)."""
    order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
    batches = []
    for start in range(0, len(order), batch_size):
        ids = order[start : start + batch_size]
        seqs, conts = [], []
        for i in ids:
            ctx, cont = pairs[i]
            seqs.append((ctx + cont)[-(max_length + 1) :][:-1])
            conts.append(cont[-len(seqs[-1]) :] if len(cont) > len(seqs[-1]) else cont)
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        positions, targets, owner = [], [], []
        for row, (seq, cont) in enumerate(zip(seqs, conts)):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
            first = len(seq) - len(cont)
            positions += [(row, t) for t in range(first, len(seq))]
            targets += cont
            owner += [row] * len(cont)
        batches.append(TokenBatch(
            input_ids,
            None if bool(mask.all()) else mask,
            torch.tensor(positions, dtype=torch.long).reshape(-1, 2),
            torch.tensor(targets, dtype=torch.long),
            torch.tensor(owner, dtype=torch.long),
            ids,
        ))
    return batches


def score_batch(head_logprobs: Callable, batch: TokenBatch, hidden: torch.Tensor):
    """Per pair of the batch: (summed log-likelihood, token count, all-greedy flag), in batch row order."""
    lp, greedy = head_logprobs(hidden, batch.positions, batch.targets)
    rows = len(batch.pair_ids)
    total = torch.zeros(rows, dtype=torch.float64).index_add_(0, batch.owner, lp.double())
    count = torch.zeros(rows, dtype=torch.long).index_add_(0, batch.owner, torch.ones_like(batch.owner))
    misses = torch.zeros(rows, dtype=torch.long).index_add_(0, batch.owner, (~greedy).long())
    return total, count, misses == 0


def windows(token_ids: list[int], seq_len: int, limit: int | None = None) -> list[Pair]:
    """GPTQ-style non-overlapping windows of `seq_len` tokens (remainder dropped), as scoring pairs
    (first token, rest): the loss covers positions 1..seq_len-1 of each window."""
    n = len(token_ids) // seq_len
    if limit is not None:
        n = min(n, limit)
    return [(token_ids[i * seq_len : i * seq_len + 1], token_ids[i * seq_len + 1 : (i + 1) * seq_len]) for i in range(n)]


@torch.no_grad()
def score_pairs(batches: list[TokenBatch], hidden_of: Callable[[int, TokenBatch], torch.Tensor],
                head_logprobs: Callable, n_pairs: int, progress: Callable[[int], None] | None = None):
    """Summed log-likelihood, token count and greedy flag for every pair, in pair order.
    `hidden_of(i, batch)` gives the post-norm hidden states of batch i."""
    total = torch.zeros(n_pairs, dtype=torch.float64)
    count = torch.zeros(n_pairs, dtype=torch.long)
    greedy = torch.zeros(n_pairs, dtype=torch.bool)
    for i, batch in enumerate(batches):
        t, c, g = score_batch(head_logprobs, batch, hidden_of(i, batch))
        idx = torch.tensor(batch.pair_ids)
        total[idx], count[idx], greedy[idx] = t, c, g
        if progress:
            progress(len(batch.pair_ids))
    return total, count, greedy
