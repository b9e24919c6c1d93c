"""Block-by-block execution of a causal LM with any set of blocks removed, without copying the model.

Two ways in, one semantics: the result equals the model physically rebuilt without the removed
blocks (tests/test_families.py proves it per family).

* `Engine.capture` runs the dense model once per batch and records what every block receives
  (hidden states of block 0, plus each block's own masks, rotary embeddings and flags — per-layer
  masks of sliding/global models included). `Engine.run_blocks` then replays any removal set over
  those inputs, skipping removed blocks. Searches call it thousands of times on the same batches.
* `Engine.skipping(removed)` swaps removed blocks for pass-throughs inside the model's own forward,
  for one-off evaluation of a single removal set.

Several devices (accelerate's `device_map`, offload hooks included): the captured inputs of each block
are moved once to that block's execution device, and the hidden state is moved to each block's device
before the block runs (so a prefix-cache state entering block j is stored where block j runs).

Both end in `Engine.head_logprobs`, which applies the final norm and the LM head (with the family's
logit soft-capping) only at the positions a loss needs, in fp32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .families import Family, family_of, get_path

# Logits are computed in chunks of at most this many fp32 elements (bounds memory for 256k vocabularies).
_HEAD_CHUNK_ELEMENTS = 64 * 1024 * 1024


@dataclass
class BlockInputs:
    """What each block received in the dense forward of one batch: block 0's hidden states and, per
    block, the positional and keyword arguments after `hidden_states`."""

    hidden: torch.Tensor
    args: list[tuple]
    kwargs: list[dict]


class _Stop(Exception):
    """Raised from the last block's pre-hook once everything is captured."""


class _PassThrough(nn.Module):
    """Stands in for a removed block: returns its input hidden states unchanged."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


def _hidden_of(output):
    return output[0] if isinstance(output, tuple) else output


def execution_device(module: nn.Module) -> torch.device:
    """Where `module` computes: accelerate's hook device when it has one (offloaded weights live on
    `meta` or `cpu` between calls), else the device of its first parameter or buffer."""
    hook = getattr(module, "_hf_hook", None)
    device = getattr(hook, "execution_device", None)
    if device is not None:
        return torch.device(device if not isinstance(device, int) else f"cuda:{device}")
    for tensor in list(module.parameters())[:1] + list(module.buffers())[:1]:
        if tensor.device.type != "meta":
            return tensor.device
    return torch.device("cpu")


def to_device(value, device: torch.device):
    """Tensors inside tuples, lists and dicts moved to `device` (other values unchanged)."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(to_device(v, device) for v in value)
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


class Engine:
    """Runs a loaded causal LM block by block. Indices are original 0-based block indices."""

    def __init__(self, model: Any, family: Family | None = None):  # a transformers PreTrainedModel
        self.model = model
        self.family = family or family_of(model.config)
        self.blocks: nn.ModuleList = get_path(model, self.family.blocks)
        self.n_blocks = len(self.blocks)
        self.final = [m for m in (get_path(model, p) for p in self.family.final) if m is not None]
        self.lm_head = model.get_output_embeddings()
        self.softcap = getattr(model.config, "final_logit_softcapping", None)
        self.device = execution_device(model.get_input_embeddings())
        self.block_devices = [execution_device(b) for b in self.blocks]
        self.dtype = next(model.parameters()).dtype
        self.block_forwards = 0  # block applications to a batch
        self.block_tokens = 0  # token positions those applications computed: the machine-independent cost

    def count(self, blocks: int, batch: torch.Tensor) -> None:
        """Account `blocks` block applications (forward or backward) to `batch`."""
        self.block_forwards += blocks
        self.block_tokens += blocks * batch.shape[0] * batch.shape[1]

    # -- dense capture and replay ------------------------------------------------------------

    def _base_forward(self, input_ids, attention_mask, position_ids):
        return self.model.base_model(
            input_ids=input_ids.to(self.device),
            attention_mask=None if attention_mask is None else attention_mask.to(self.device),
            position_ids=None if position_ids is None else position_ids.to(self.device),
            use_cache=False,
        )

    @torch.no_grad()
    def capture(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> BlockInputs:
        """Run the dense model on one batch and record every block's inputs (the last block is not run)."""
        args: list = [None] * self.n_blocks
        kwargs: list = [None] * self.n_blocks
        first: list = []

        def recorder(index):
            def hook(module, hook_args, hook_kwargs):
                if index == 0:
                    hidden = hook_args[0] if hook_args else hook_kwargs["hidden_states"]
                    first.append(hidden)
                args[index] = tuple(hook_args[1:])
                kwargs[index] = {k: v for k, v in hook_kwargs.items() if k != "hidden_states"}
                if index == self.n_blocks - 1:
                    raise _Stop

            return hook

        handles = [b.register_forward_pre_hook(recorder(i), with_kwargs=True) for i, b in enumerate(self.blocks)]
        self.count(self.n_blocks - 1, input_ids)
        try:
            self._base_forward(input_ids, attention_mask, position_ids)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        args = [to_device(a, d) for a, d in zip(args, self.block_devices)]
        kwargs = [to_device(k, d) for k, d in zip(kwargs, self.block_devices)]
        return BlockInputs(first[0].to(self.block_devices[0]), args, kwargs)

    def run_blocks(
        self,
        inputs: BlockInputs,
        removed: Iterable[int] = (),
        start: int = 0,
        hidden: torch.Tensor | None = None,
        gates: torch.Tensor | None = None,
        record: Callable[[int, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """Hidden states after the last block, skipping `removed`; starts at block `start` from
        `hidden` (the input of block `start`) when given, else from block 0's captured input.
        With `gates` (one scalar per block), block i's update is scaled: h + g_i (block(h) − h),
        computed in fp32 (the gates' dtype, as the CBO spec asks) and cast back to the model's dtype.
        `record(j, h)` sees the state entering every block j visited (for prefix caching)."""
        removed = set(removed)
        h = inputs.hidden if hidden is None else hidden
        with torch.set_grad_enabled(gates is not None and gates.requires_grad):
            for i in range(start, self.n_blocks):
                h = h.to(self.block_devices[i])
                if record is not None:
                    record(i, h)
                if i in removed:
                    continue
                self.count(1, h)
                out = _hidden_of(self.blocks[i](h, *inputs.args[i], **inputs.kwargs[i]))
                h = (
                    out
                    if gates is None
                    else (h.float() + gates[i].to(out.device) * (out.float() - h.float())).to(out.dtype)
                )
        return h

    def per_block_states(self, inputs: BlockInputs) -> list[torch.Tensor]:
        """The dense residual stream: the input of every block, then the last block's output
        (N + 1 states, before the final norm — unlike `output_hidden_states`)."""
        states: list[torch.Tensor] = []
        states.append(self.run_blocks(inputs, record=lambda _j, h: states.append(h)))
        return states

    def finalize(self, hidden: torch.Tensor) -> torch.Tensor:
        """The family's modules between the last block and the head (final norm, projection)."""
        for module in self.final:
            hidden = module(hidden)
        return hidden

    # -- one-off forward with removed blocks skipped ----------------------------------------

    @contextmanager
    def skipping(self, removed: Iterable[int]):
        """Inside the block, the model's own forward skips `removed` (pass-through modules)."""
        originals = {i: self.blocks[i] for i in sorted(set(removed))}
        for i in originals:
            self.blocks[i] = _PassThrough()
        try:
            yield self.model
        finally:
            for i, block in originals.items():
                self.blocks[i] = block

    @torch.no_grad()
    def final_hidden(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        removed=(),
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Post-norm hidden states of the model with `removed` skipped (the head's input)."""
        self.count(self.n_blocks - len(set(removed)), input_ids)
        with self.skipping(removed):
            return self._base_forward(input_ids, attention_mask, position_ids).last_hidden_state

    @property
    def sliding_window(self) -> int | None:
        return getattr(self.model.config, "sliding_window", None)

    def shared_context_mask_dtype(self):
        """How this model takes a custom 4-D mask: (True, None) boolean for SDPA, (True, dtype)
        additive for eager attention, (False, None) when it cannot (other kernels)."""
        impl = getattr(self.model.config, "_attn_implementation", None)
        if impl == "sdpa":
            return True, None
        if impl == "eager":
            return True, next(self.model.parameters()).dtype
        return False, None

    # -- the head --------------------------------------------------------------------------

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """fp32 logits of post-norm hidden states [..., d], with the family's final soft-capping."""
        logits = self.lm_head(hidden).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def head_logprobs(self, hidden: torch.Tensor, positions: torch.Tensor, targets: torch.Tensor):
        """Log-probabilities (fp32) of `targets` [n] predicted at `positions` [n, 2] (batch, time) of the
        post-norm hidden states, and whether each target is the argmax (lm-eval's `is_greedy`).
        The head runs only at those positions, in chunks that bound memory."""
        vocab = self.lm_head.weight.shape[0]
        chunk = max(1, _HEAD_CHUNK_ELEMENTS // vocab)
        logprobs, greedy = [], []
        for s in range(0, positions.shape[0], chunk):
            pos = positions[s : s + chunk]
            rows = hidden[pos[:, 0], pos[:, 1]]
            lp = torch.log_softmax(self.logits(rows), dim=-1)
            tgt = targets[s : s + chunk].to(lp.device)
            logprobs.append(lp.gather(-1, tgt[:, None])[:, 0])
            greedy.append(lp.argmax(-1) == tgt)
        if not logprobs:
            return torch.zeros(0), torch.zeros(0, dtype=torch.bool)
        return torch.cat(logprobs).cpu(), torch.cat(greedy).cpu()
