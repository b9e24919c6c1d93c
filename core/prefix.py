"""Prefix-activation reuse: candidates that keep the same blocks up to block j share every activation
before j, so the state entering block j is computed once and reused.

A state is keyed by (calibration batch, block j, the removed blocks below j): that triple fully
determines the hidden states entering block j. `trie_order` sorts a batch of removal sets so that
consecutive candidates share the longest prefixes (a depth-first walk of the trie of keep/remove
decisions), and `branch_points` tells, for each candidate, at which blocks a later candidate of the
batch will branch off its path — the only states worth keeping for the batch.
"""

from __future__ import annotations

from collections import OrderedDict

import torch


def trie_key(removed, n_blocks: int) -> tuple[int, ...]:
    """The keep(0)/remove(1) decision of every block, in block order."""
    return tuple(1 if i in removed else 0 for i in range(n_blocks))


def divergence(a, b, n_blocks: int) -> int:
    """The first block where two removal sets decide differently (n_blocks if none)."""
    for i in range(n_blocks):
        if (i in a) != (i in b):
            return i
    return n_blocks


def trie_order(sets, n_blocks: int) -> list:
    return sorted(sets, key=lambda s: trie_key(s, n_blocks))


def branch_points(ordered: list, n_blocks: int) -> list[set[int]]:
    """For candidate t of a trie-ordered batch: the blocks j where some later candidate leaves t's
    path (its state entering j is needed later)."""
    steps = [divergence(ordered[t], ordered[t + 1], n_blocks) for t in range(len(ordered) - 1)]
    out = []
    for t in range(len(ordered)):
        points, low = set(), n_blocks
        for d in steps[t:]:
            low = min(low, d)
            points.add(low)
            if low == 0:
                break
        out.append(points)
    return out


class PrefixCache:
    """States entering blocks, under a byte budget. Two tiers: branch points the current batch will
    need, and speculative states (every other state a candidate passed through, which the next batch
    may start from, e.g. the winner's path in greedy). Speculative states are evicted first, least
    recently used first; beyond the budget, states are recomputed."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.tiers: tuple[OrderedDict, OrderedDict] = (OrderedDict(), OrderedDict())  # (speculative, branch)
        self.bytes = 0
        self.hits = self.misses = self.evictions = 0

    @staticmethod
    def key(batch: int, block: int, removed) -> tuple:
        return batch, block, frozenset(i for i in removed if i < block)

    def deepest(self, batch: int, removed, n_blocks: int) -> tuple[int, torch.Tensor | None]:
        """(j, state entering block j) for the deepest cached j on `removed`'s path; (0, None) if none."""
        for j in range(n_blocks - 1, 0, -1):
            key = self.key(batch, j, removed)
            for tier in self.tiers:
                if key in tier:
                    tier.move_to_end(key)
                    self.hits += 1
                    return j, tier[key]
        self.misses += 1
        return 0, None

    def put(self, batch: int, block: int, removed, state: torch.Tensor, branch: bool = True) -> None:
        size = state.numel() * state.element_size()
        key = self.key(batch, block, removed)
        if size > self.max_bytes or any(key in tier for tier in self.tiers):
            return
        while self.bytes + size > self.max_bytes:
            victims = self.tiers[0] or self.tiers[1]
            if not branch and not self.tiers[0]:
                return  # never evict a branch point for a speculative state
            _, old = victims.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()
            self.evictions += 1
        self.tiers[1 if branch else 0][key] = state
        self.bytes += size

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "evictions": self.evictions, "bytes": self.bytes}


def exact_lower_bound(evaluated, n_blocks: int) -> int:
    """Block applications (per calibration batch) that any method computing the exact value of every
    set in `evaluated` needs: one per distinct (kept block j, removed blocks below j) on their paths."""
    return len({(j, frozenset(i for i in s if i < j)) for s in evaluated for j in range(n_blocks) if j not in s})
