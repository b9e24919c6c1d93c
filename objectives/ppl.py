"""`ppl`: mean token negative log-likelihood over calibration windows.

Definition: the calibration text is tokenized once (tokenizer defaults), cut into `n` non-overlapping
windows of `seq_len` tokens (GPTQ style, remainder dropped); the value is the mean NLL (nats) over
positions 1..seq_len-1 of all windows, computed in fp32. Reported also as perplexity = exp(value).
The paper's default is C4, 64 windows of 2048 tokens.
"""

from __future__ import annotations

import math

from ..core.engine import Engine
from ..core.errors import UserError
from ..core.scoring import make_batches, windows
from .base import Objective


class WindowObjective(Objective):
    """An objective over GPTQ-style windows of a calibration text (the first `n_windows`), or over
    windows already drawn as token ids (`token_windows`, e.g. random C4 windows; `text` is then unused)."""

    def __init__(
        self,
        engine: Engine,
        tokenizer,
        text: str | None,
        source: str,
        *,
        seq_len: int = 2048,
        n_windows: int | None = 64,
        batch_size: int = 8,
        token_windows: list[list[int]] | None = None,
    ):
        if token_windows is not None:
            self.pairs = [(w[:1], w[1:]) for w in token_windows]
        else:
            ids = tokenizer(text).input_ids
            self.pairs = windows(ids, seq_len, n_windows)
            if not self.pairs:
                raise UserError(
                    f"calibration text {source!r} has {len(ids)} tokens, fewer than one window of {seq_len}"
                )
        self.source, self.seq_len = source, seq_len
        self.total_tokens = sum(len(cont) for _, cont in self.pairs)
        super().__init__(
            engine, make_batches(self.pairs, batch_size, seq_len, tokenizer.pad_token_id), len(self.pairs), seq_len
        )

    def combine(self, stats) -> float:
        return sum(s for s, _ in stats) / sum(n for _, n in stats)

    def lower_bound(self, stats) -> float:
        """The per-token losses are non-negative, so the unseen tokens add at least 0."""
        return sum(s for s, _ in stats) / self.total_tokens

    def describe(self) -> dict:
        return {
            "objective": self.name,
            "calib": self.source,
            "seq_len": self.seq_len,
            "windows": len(self.pairs),
            "data_sha256": self.data_hash(),
        }


class Perplexity(WindowObjective):
    name = "ppl"

    def samples(self):
        return [[pair] for pair in self.pairs]

    def sample_loss(self, index, totals, counts):
        return -totals[0] / counts[0]

    def batch_stats(self, i, hidden):
        """(summed NLL, token count) of the batch's windows."""
        total, count = self.pair_stats(i, hidden)
        return -float(total.sum()), int(count.sum())

    @classmethod
    def report(cls, value: float) -> dict:
        return {"nll": value, "ppl": math.exp(value)}
