"""Benchmark evaluation of a (pruned) model: perplexity and zero-shot multiple-choice accuracy.

Perplexity (GPTQ-style): the task text tokenized once with the tokenizer's defaults (so a BOS is added
only at the very start, and only by tokenizers that add one), cut into non-overlapping windows of
`seq_len` tokens (remainder dropped), ppl = exp(mean token NLL over positions 1..seq_len-1 of every
window). Accuracy (lm-evaluation-harness 0.4.x): `acc` = argmax of summed log-likelihood is gold;
`acc_norm` = argmax of log-likelihood / character length of the choice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .engine import Engine
from .errors import UserError
from .loading import LoadedModel
from .prompts import MCItem
from .scoring import choice_batches, encode_pair, halving_on_oom, make_batches, per_owner, score_pairs, windows
from .tasks import ChoiceTask, get_task

Progress = Callable[[str, int, int], None]  # (label, done, total)


@dataclass
class MCScores:
    """Per item and choice: summed log-likelihood and token count; per item the gold index."""

    loglik: list[list[float]]
    tokens: list[list[int]]
    gold: list[int]
    choice_lengths: list[tuple[int, ...]]


def mc_pairs(items: Sequence[MCItem], tokenizer):
    """Token pairs of every (item, choice), flattened, and the item each belongs to."""
    pairs, owner = [], []
    for i, item in enumerate(items):
        for ctx, cont in zip(item.contexts, item.continuations):
            pairs.append(encode_pair(tokenizer, ctx, cont))
            owner.append(i)
    return pairs, owner


def correct(scores: MCScores) -> dict[str, list[int]]:
    """Per item, 1 where it is answered correctly under lm-eval's acc (argmax of summed log-likelihood
    is gold) and acc_norm (argmax of log-likelihood / character length), else 0; the first maximum
    wins, like numpy.argmax."""
    acc, norm = [], []
    for ll, lengths, gold in zip(scores.loglik, scores.choice_lengths, scores.gold):
        acc.append(int(max(range(len(ll)), key=lambda j: (ll[j], -j)) == gold))
        normed = [x / max(n, 1) for x, n in zip(ll, lengths)]
        norm.append(int(max(range(len(ll)), key=lambda j: (normed[j], -j)) == gold))
    return {"acc": acc, "acc_norm": norm}


def shares(hits: dict[str, list[int]]) -> dict[str, float]:
    """Per metric, the share of items with a 1 (the accuracy behind `correct`)."""
    return {m: sum(c) / len(c) for m, c in hits.items()}


def accuracy(scores: MCScores) -> dict[str, float]:
    """lm-eval's acc and acc_norm: the share of items `correct` under each."""
    return shares(correct(scores))


def perplexity_of(nll: Sequence[float], tokens: Sequence[int]) -> dict:
    """ppl = exp(Σ window NLL / Σ window tokens), the sums exactly rounded (math.fsum), so the stored
    per-window values give back the stored perplexity bit for bit."""
    mean = math.fsum(nll) / sum(tokens)
    return {"ppl": math.exp(mean), "nll": mean, "windows": len(nll), "tokens": sum(tokens)}


class Evaluator:
    """Scores benchmark tasks on one loaded model for any removal set (original block indices)."""

    def __init__(
        self,
        lm: LoadedModel,
        *,
        batch_size: int = 8,
        max_length: int = 2048,
        progress: Progress | None = None,
        shared_context: bool = True,
    ):
        self.lm, self.engine = lm, Engine(lm.model, lm.family)
        self.batch_size, self.max_length, self.progress = batch_size, max_length, progress
        self.shared = self.engine.shared_context_mask_dtype() if shared_context else (False, None)

    def _hidden(self, removed):
        return lambda _i, b: self.engine.final_hidden(b.input_ids, b.attention_mask, removed, b.position_ids)

    def _tick(self, label: str, total: int):
        done = 0

        def advance(n):
            nonlocal done
            done += n
            if self.progress:
                self.progress(label, done, total)

        return advance

    def perplexity(
        self, text: str, removed=(), seq_len: int = 2048, limit: int | None = None, label: str = "ppl"
    ) -> dict:
        return perplexity_of(*self.window_nll(text, removed, seq_len, limit, label))

    def window_nll(
        self, text: str, removed=(), seq_len: int = 2048, limit: int | None = None, label: str = "ppl"
    ) -> tuple[list[float], list[int]]:
        """Per window (see `core.scoring.windows`): the summed NLL of its scored tokens and their count."""
        ids = self.lm.tokenizer(text).input_ids
        pairs = windows(ids, seq_len, limit)
        if not pairs:
            raise UserError(f"{label}: the text has {len(ids)} tokens, fewer than one window of --seq-len {seq_len}")
        total, count, _ = halving_on_oom(
            lambda size: score_pairs(
                make_batches(pairs, size, seq_len, self.lm.tokenizer.pad_token_id),
                self._hidden(removed),
                self.engine.head_logprobs,
                len(pairs),
                self._tick(label, len(pairs)),
            ),
            self.batch_size,
            f"scoring {label}",
        )
        return [-float(t) for t in total], [int(c) for c in count]

    def multiple_choice(self, items: Sequence[MCItem], removed=(), label: str = "mc") -> MCScores:
        pairs, owner = mc_pairs(items, self.lm.tokenizer)
        total, count, _ = halving_on_oom(
            lambda size: score_pairs(
                choice_batches(
                    pairs,
                    owner,
                    size,
                    self.max_length,
                    self.lm.tokenizer.pad_token_id,
                    self.shared,
                    self.engine.sliding_window,
                ),
                self._hidden(removed),
                self.engine.head_logprobs,
                len(pairs),
                self._tick(label, len(pairs)),
            ),
            self.batch_size,
            f"scoring {label}",
        )
        loglik, tokens = per_owner(total, count, owner, len(items))
        return MCScores(loglik, tokens, [it.gold for it in items], [it.choice_lengths for it in items])


def evaluate(
    lm: LoadedModel,
    task_names: Sequence[str],
    removed: Sequence[int] = (),
    *,
    limit: int | None = None,
    seq_len: int = 2048,
    data_dir: Path | None = None,
    batch_size: int = 8,
    progress: Progress | None = None,
    shared_context: bool = True,
) -> dict:
    """Evaluate the model with `removed` skipped on each task; a JSON-ready report with provenance.
    `items` holds the per-item results behind each task's scores (the layout of `core.items`)."""
    tasks = [get_task(n) for n in task_names]
    evaluator = Evaluator(
        lm, batch_size=batch_size, max_length=seq_len, progress=progress, shared_context=shared_context
    )
    started = time.perf_counter()
    results: dict[str, dict] = {}
    items: dict[str, dict] = {}
    for task in tasks:
        if not isinstance(task, ChoiceTask):
            nll, tokens = evaluator.window_nll(task.load(data_dir), removed, seq_len, limit, task.name)
            results[task.name] = perplexity_of(nll, tokens)
            items[task.name] = {"nll": nll, "tokens": tokens}
        else:
            data = task.load(data_dir)
            questions = data[:limit] if limit is not None else data
            if not questions:
                raise UserError(f"task {task.name!r} has no items")
            hits = items[task.name] = correct(evaluator.multiple_choice(questions, removed, task.name))
            metrics = shares(hits)
            results[task.name] = {m: metrics[m] for m in task.metrics} | {
                "primary": task.primary,
                "items": len(questions),
            }
    return {
        "model": lm.spec,
        "model_id": lm.model_id,
        "revision": lm.revision,
        "removed": sorted(removed),
        "n_blocks": lm.n_blocks,
        "seq_len": seq_len,
        "bos": "tokenizer default (a BOS only where the tokenizer adds one): once per ppl text, per request for multiple choice (lm-eval 0.4.13)",
        "dtype": lm.dtype,
        "device": lm.device,
        "device_map": lm.device_map,
        "tasks": results,
        "items": items,
        "seconds": round(time.perf_counter() - started, 3),
        "notes": lm.notes,
    }
