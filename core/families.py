"""Per-family facts: where the block list lives, what runs after it, which config fields are per-layer.

One table instead of `if "llama" in name` branches (the transformers way). Adding a family that
follows one of these layouts is one row here plus a tiny config in `tiny.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .errors import UserError


@dataclass(frozen=True)
class Family:
    """Where a family keeps its blocks and the modules applied between the last block and the head."""

    model_type: str
    blocks: str  # dotted path of the nn.ModuleList of decoder blocks
    final: tuple[str, ...]  # dotted paths applied in order after the blocks (absent/None ones skipped)


_DECODER = ("model.layers", ("model.norm",))

FAMILIES: dict[str, Family] = {
    f.model_type: f
    for f in [
        Family("llama", *_DECODER),
        Family("mistral", *_DECODER),
        Family("qwen2", *_DECODER),
        Family("qwen3", *_DECODER),
        Family("gemma2", *_DECODER),
        Family("gemma3_text", *_DECODER),
        Family("phi3", *_DECODER),
        Family("gpt2", "transformer.h", ("transformer.ln_f",)),
        Family("gpt_neox", "gpt_neox.layers", ("gpt_neox.final_layer_norm",)),
        Family("opt", "model.decoder.layers", ("model.decoder.final_layer_norm", "model.decoder.project_out")),
    ]
}

# Every other config list with one entry per block is sliced to the kept blocks (`surgery`), except
# these fields, which may have as many entries by coincidence.
NOT_PER_LAYER = ("architectures", "bos_token_id", "eos_token_id", "pad_token_id", "id2label", "label2id",
                 "bad_words_ids", "suppress_tokens", "begin_suppress_tokens", "forced_decoder_ids", "depthprune")
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
    obj = root
    for name in path.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def set_path(root: nn.Module, path: str, value) -> None:
    parent, _, name = path.rpartition(".")
    setattr(get_path(root, parent) if parent else root, name, value)
