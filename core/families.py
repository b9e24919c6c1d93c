"""Per-family facts: where the block list lives, what runs after it, which config fields are per-layer,
and the shape of the family's `tiny:` test model.

One table instead of `if "llama" in name` branches (the transformers way). Adding a family that
follows one of these layouts is one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .errors import UserError


def _alternating(every: int) -> Callable[[int], dict[str, Any]]:
    """`layer_types` of n blocks where every `every`-th block attends globally, the others in a window."""
    return lambda n: {
        "layer_types": ["full_attention" if (i + 1) % every == 0 else "sliding_attention" for i in range(n)]
    }


@dataclass(frozen=True)
class Family:
    """Where a family keeps its blocks and the modules applied between the last block and the head;
    `tiny` are the config fields of its `tiny:` test model (a fixed dict, plus fields computed from the
    block count by `tiny_per_blocks`), `layers_field` the config field holding the block count."""

    model_type: str
    blocks: str  # dotted path of the nn.ModuleList of decoder blocks
    final: tuple[str, ...]  # dotted paths applied in order after the blocks (absent/None ones skipped)
    tiny: dict[str, Any] = field(default_factory=dict)
    tiny_per_blocks: Callable[[int], dict[str, Any]] = lambda _n: {}
    layers_field: str = "num_hidden_layers"
    aliases: tuple[str, ...] = ()  # other names `tiny:<name>` accepts
    # Linear healing (`heal --method linear`): dotted path, inside a block, of the MLP's last linear layer
    # whose output is added to the residual stream unchanged, where a d x d map T fuses exactly;
    # None where the MLP output passes a norm before the add (Gemma2/3 post_feedforward_layernorm).
    mlp_out: str | None = "mlp.down_proj"


_DECODER = ("model.layers", ("model.norm",))
# Tiny shapes; sliding windows are short (8 tokens) so local and global blocks differ.
_WIDTH = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, max_position_embeddings=1024)
_GQA = dict(_WIDTH, num_key_value_heads=2, head_dim=16)

FAMILIES: dict[str, Family] = {
    f.model_type: f
    for f in [
        Family("llama", *_DECODER, tiny=_GQA),
        Family("mistral", *_DECODER, tiny=dict(_GQA, sliding_window=8)),
        Family("qwen2", *_DECODER, tiny=dict(_GQA, use_sliding_window=True, sliding_window=8, max_window_layers=2)),
        Family("qwen3", *_DECODER, tiny=dict(_GQA, use_sliding_window=True, sliding_window=8, max_window_layers=3)),
        Family(
            "gemma2",
            *_DECODER,
            tiny=dict(_GQA, sliding_window=8, final_logit_softcapping=30.0, query_pre_attn_scalar=16),
            tiny_per_blocks=_alternating(2),
            mlp_out=None,
        ),
        Family(
            "gemma3_text",
            *_DECODER,
            tiny=dict(_GQA, sliding_window=8, query_pre_attn_scalar=16),
            tiny_per_blocks=_alternating(3),
            aliases=("gemma3",),
            mlp_out=None,
        ),
        Family("phi3", *_DECODER, tiny=_GQA),
        Family(
            "gpt2",
            "transformer.h",
            ("transformer.ln_f",),
            tiny=dict(n_embd=64, n_head=4, n_positions=1024),
            layers_field="n_layer",
            mlp_out="mlp.c_proj",
        ),
        Family("gpt_neox", "gpt_neox.layers", ("gpt_neox.final_layer_norm",), tiny=_WIDTH, mlp_out="mlp.dense_4h_to_h"),
        Family(
            "opt",
            "model.decoder.layers",
            ("model.decoder.final_layer_norm", "model.decoder.project_out"),
            tiny=dict(_WIDTH, ffn_dim=128, word_embed_proj_dim=48),
            mlp_out="fc2",
        ),
    ]
}
ALIASES = {alias: f.model_type for f in FAMILIES.values() for alias in f.aliases}

# Every other config list with one entry per block is sliced to the kept blocks (`surgery`), except
# these fields, which may have as many entries by coincidence.
NOT_PER_LAYER = (
    "architectures",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "id2label",
    "label2id",
    "bad_words_ids",
    "suppress_tokens",
    "begin_suppress_tokens",
    "forced_decoder_ids",
    "depthprune",
)
# Config fields holding a set of block indices: remapped to the new indices of the kept blocks.
LAYER_INDEX_LISTS = ("mlp_only_layers", "moe_layers")
# Config fields meaning "blocks below this index": replaced by the count of kept blocks below it.
LAYER_THRESHOLDS = ("max_window_layers", "first_k_dense_replace")


def family_of(config) -> Family:
    """The family row for a config, or a UserError naming the supported families."""
    family = FAMILIES.get(config.model_type)
    if family is None:
        raise UserError(
            f"unsupported model family {config.model_type!r} (from the model's config.json); "
            f"supported: {', '.join(sorted(FAMILIES))}"
        )
    if getattr(config, "scale_attn_by_inverse_layer_idx", False):
        raise UserError(
            "config sets scale_attn_by_inverse_layer_idx=true: a block's computation depends on its "
            "index, so removing blocks cannot give a model that stock transformers rebuilds identically"
        )
    return family


def get_path(root: nn.Module, path: str):
    """Follow a dotted attribute path; None if any step is missing or None."""
    obj: Any = root
    for name in path.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def set_path(root: nn.Module, path: str, value) -> None:
    parent, _, name = path.rpartition(".")
    setattr(get_path(root, parent) if parent else root, name, value)
