"""Token-level scoring shared by benchmarks and objectives: sequences -> padded batches -> log-likelihoods.

Every scored sequence is a pair (context ids, continuation ids); its score is the sum of
log p(continuation token | everything before it), in fp32, as lm-evaluation-harness computes
`loglikelihood`. A perplexity window w is the pair (w[:1], w[1:]): loss over positions 1..L-1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from .errors import UserError

Pair = tuple[list[int], list[int]]
T = TypeVar("T")


def halving_on_oom(work: Callable[[int], T], batch_size: int, what: str, source: str = "--batch-size") -> T:
    """`work(batch_size)`; after a GPU out-of-memory error, again with half the batch size, down to 1.
    Out of memory even at 1 is a UserError. Batching never changes a score, only memory and speed."""
    size = batch_size
    while True:
        try:
            return work(size)
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if size == 1:
                raise UserError(
                    f"out of GPU memory {what} even at batch size 1 (from {source} {batch_size}); "
                    f"use a shorter sequence length, fewer samples or a larger GPU"
                ) from None
            size //= 2


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
    return ctx, whole[len(ctx) :]


def prefix_token_id(tokenizer) -> int:
    """lm-eval's prefix for an empty context: BOS if the tokenizer has one, else EOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


@dataclass
class TokenBatch:
    """Right-padded sequences with the positions whose next-token log-probs are scored.

    `positions[n] = (row, t)` predicts `targets[n]`, which belongs to the pair `pair_ids[owner[n]]`.
    `attention_mask` is 2-D (padding) or 4-D (shared-context rows); `position_ids` go with the latter."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    positions: torch.Tensor
    targets: torch.Tensor
    owner: torch.Tensor
    pair_ids: list[int]
    position_ids: torch.Tensor | None = None
    valid: torch.Tensor | None = None  # real-token positions of shared-context rows

    def token_mask(self) -> torch.Tensor:
        """[rows, width] True at real (non-padding) tokens."""
        if self.valid is not None:
            return self.valid
        if self.attention_mask is None:
            return torch.ones(self.input_ids.shape, dtype=torch.bool)
        return self.attention_mask.bool()


def make_batches(
    pairs: Sequence[Pair], batch_size: int, max_length: int, pad_id: int, subset: Sequence[int] | None = None
) -> list[TokenBatch]:
    """Batches of whole pairs (all, or the indices in `subset`), longest first (as lm-eval orders
    them); inputs longer than `max_length` are truncated from the left (lm-eval's
    `[-(max_length + 1):][:-1]`)."""
    order = sorted(
        range(len(pairs)) if subset is None else subset, key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1]))
    )
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
        batches.append(
            TokenBatch(
                input_ids,
                None if bool(mask.all()) else mask,
                torch.tensor(positions, dtype=torch.long).reshape(-1, 2),
                torch.tensor(targets, dtype=torch.long),
                torch.tensor(owner, dtype=torch.long),
                ids,
            )
        )
    return batches


def make_shared_context_batches(
    pairs: Sequence[Pair], groups: Sequence[list[int]], batch_size: int, pad_id: int, mask_dtype: torch.dtype | None
) -> list[TokenBatch]:
    """Batches whose rows each pack one group of pairs with identical context: the context once, then
    every continuation but its last token. A continuation attends to the whole context and to itself
    only, with positions continuing from the context, so each token sees exactly what it sees in its
    own sequence; its first token is predicted at the context's last position. 4-D masks: boolean
    (True = attend) when `mask_dtype` is None, else additive in that dtype (eager attention).
    Padding positions attend to themselves only."""

    def length(group):
        ctx = pairs[group[0]][0]
        return len(ctx) + sum(len(pairs[p][1]) - 1 for p in group)

    order = sorted(range(len(groups)), key=lambda g: -length(groups[g]))
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [groups[g] for g in order[start : start + batch_size]]
        width = max(length(g) for g in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)
        allowed = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1)
        positions: list[tuple[int, int]] = []
        targets: list[int] = []
        owner: list[int] = []
        pair_ids: list[int] = []
        for r, group in enumerate(rows):
            ctx = pairs[group[0]][0]
            n_ctx = len(ctx)
            input_ids[r, :n_ctx] = torch.tensor(ctx)
            position_ids[r, :n_ctx] = torch.arange(n_ctx)
            allowed[r, :n_ctx, :n_ctx] = torch.ones(n_ctx, n_ctx, dtype=torch.bool).tril()
            offset = n_ctx
            for p in group:
                cont = pairs[p][1]
                seg = len(cont) - 1
                if seg:
                    input_ids[r, offset : offset + seg] = torch.tensor(cont[:-1])
                    position_ids[r, offset : offset + seg] = torch.arange(n_ctx, n_ctx + seg)
                    allowed[r, offset : offset + seg, :n_ctx] = True
                    allowed[r, offset : offset + seg, offset : offset + seg] = torch.ones(
                        seg, seg, dtype=torch.bool
                    ).tril()
                slot = len(pair_ids)
                pair_ids.append(p)
                positions += [(r, n_ctx - 1)] + [(r, t) for t in range(offset, offset + seg)]
                targets += cont
                owner += [slot] * len(cont)
                offset += seg
        mask = allowed[:, None]
        valid = torch.arange(width)[None, :] < torch.tensor([length(g) for g in rows])[:, None]
        if mask_dtype is not None:
            mask = torch.zeros(mask.shape, dtype=mask_dtype).masked_fill(~mask, torch.finfo(mask_dtype).min)
        batches.append(
            TokenBatch(
                input_ids,
                mask,
                torch.tensor(positions, dtype=torch.long).reshape(-1, 2),
                torch.tensor(targets, dtype=torch.long),
                torch.tensor(owner, dtype=torch.long),
                pair_ids,
                position_ids,
                valid,
            )
        )
    return batches


def choice_batches(
    pairs: Sequence[Pair],
    owner: Sequence[int],
    batch_size: int,
    max_length: int,
    pad_id: int,
    shared: tuple[bool, torch.dtype | None] = (False, None),
    window: int | None = None,
) -> list[TokenBatch]:
    """Batches for multiple-choice pairs (`owner[p]` = the item of pair p). With `shared` = (True,
    mask dtype), the choices of an item that share their context tokens are packed into one row
    (`make_shared_context_batches`) whenever every choice fits in `max_length` (no truncation) and in
    the model's sliding `window`; all other pairs get a sequence each."""
    groups: dict = {}
    for p, item in enumerate(owner):
        groups.setdefault((item, tuple(pairs[p][0])), []).append(p)
    packed, single = [], []
    limit = min(max_length, window or max_length)
    for group in groups.values():
        fits = all(pairs[p][1] and len(pairs[p][0]) + len(pairs[p][1]) - 1 <= limit for p in group)
        if shared[0] and len(group) > 1 and fits:
            packed.append(group)
        else:
            single += group
    batches = make_shared_context_batches(pairs, packed, batch_size, pad_id, shared[1]) if packed else []
    return batches + (make_batches(pairs, batch_size, max_length, pad_id, single) if single else [])


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
    return [
        (token_ids[i * seq_len : i * seq_len + 1], token_ids[i * seq_len + 1 : (i + 1) * seq_len]) for i in range(n)
    ]


@torch.no_grad()
def score_pairs(
    batches: list[TokenBatch],
    hidden_of: Callable[[int, TokenBatch], torch.Tensor],
    head_logprobs: Callable,
    n_pairs: int,
    progress: Callable[[int], None] | None = None,
):
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


def per_owner(
    total: torch.Tensor, count: torch.Tensor, owner: Sequence[int], n: int
) -> tuple[list[list[float]], list[list[int]]]:
    """Pair-level summed log-likelihoods and token counts regrouped per question: pair j belongs to
    question `owner[j]`; each question's pairs keep their order (its choices' order)."""
    loglik: list[list[float]] = [[] for _ in range(n)]
    tokens: list[list[int]] = [[] for _ in range(n)]
    for j, i in enumerate(owner):
        loglik[i].append(float(total[j]))
        tokens[i].append(int(count[j]))
    return loglik, tokens
