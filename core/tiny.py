"""`tiny:<family>[:<blocks>]` — deterministic, randomly initialised tiny models for tests and smoke runs.

Weights are drawn with a fixed seed from each family's own transformers config class, so a tiny model
exercises the real modelling code of its family (masks, rotary embeddings, sliding/global layer types,
soft-capping). They never need the network: the tokenizer is `byte_tokenizer()`, a byte-level BPE
with no merges (256 byte tokens plus three special tokens) built here. Their outputs mean nothing.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from .errors import UserError
from .families import FAMILIES

SPECIAL_TOKENS = ("<|bos|>", "<|eos|>", "<|pad|>")
DEFAULT_BLOCKS = 6
_SEED = 0

_WIDTH = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, max_position_embeddings=1024)
_GQA = dict(_WIDTH, num_key_value_heads=2, head_dim=16)


def _alternating(n: int, every: int) -> list[str]:
    return ["full_attention" if (i + 1) % every == 0 else "sliding_attention" for i in range(n)]


def _config_kwargs(family: str, n: int) -> dict:
    """Per-family tiny shapes. Sliding windows are short (8 tokens) so local and global blocks differ."""
    return {
        "llama": dict(_GQA),
        "mistral": dict(_GQA, sliding_window=8),
        "qwen2": dict(_GQA, use_sliding_window=True, sliding_window=8, max_window_layers=2),
        "qwen3": dict(_GQA, use_sliding_window=True, sliding_window=8, max_window_layers=3),
        "gemma2": dict(_GQA, sliding_window=8, layer_types=_alternating(n, 2), final_logit_softcapping=30.0,
                       query_pre_attn_scalar=16),
        "gemma3_text": dict(_GQA, sliding_window=8, layer_types=_alternating(n, 3), query_pre_attn_scalar=16),
        "phi3": dict(_GQA),
        "gpt2": dict(n_embd=64, n_head=4, n_positions=1024),
        "gpt_neox": dict(_WIDTH),
        "opt": dict(_WIDTH, ffn_dim=128, word_embed_proj_dim=48),
    }[family]


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level tokenizer: every UTF-8 byte is one token (ids 0-255); <|bos|>=256, <|eos|>=257, <|pad|>=258.
    Adds no BOS token (like SmolLM2's)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet, key=lambda c: bytes_of(c)))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    bos, eos, pad = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad)


def bytes_of(ch: str) -> int:
    """The byte a ByteLevel alphabet character stands for (GPT-2's bytes_to_unicode inverse)."""
    code = ord(ch)
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    if code in printable:
        return code
    others = [b for b in range(256) if b not in printable]
    return others[code - 256]


def parse_tiny(spec: str) -> tuple[str, int]:
    """`tiny:llama` -> ("llama", 6); `tiny:gpt2:4` -> ("gpt2", 4)."""
    parts = spec.split(":")
    family = parts[1] if len(parts) > 1 else ""
    if family == "gemma3":
        family = "gemma3_text"
    if family not in FAMILIES or len(parts) > 3:
        raise UserError(f"unknown tiny model {spec!r} (from --model); use tiny:<family>[:<blocks>] with a family "
                        f"among {', '.join(sorted(FAMILIES))}")
    blocks = DEFAULT_BLOCKS
    if len(parts) == 3:
        if not parts[2].isdigit() or not 1 <= int(parts[2]) <= 64:
            raise UserError(f"bad block count {parts[2]!r} in {spec!r} (from --model): expected 1-64")
        blocks = int(parts[2])
    return family, blocks


def build_tiny(spec: str):
    """A seeded random model of the family in `spec` and the byte tokenizer."""
    family, blocks = parse_tiny(spec)
    tokenizer = byte_tokenizer()
    kwargs = _config_kwargs(family, blocks)
    layers_key = "n_layer" if family == "gpt2" else "num_hidden_layers"
    config = AutoConfig.for_model(
        family,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **{layers_key: blocks},
        **kwargs,
    )
    torch.manual_seed(_SEED)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # Default initialisation (std 0.02) makes every block nearly the identity; a larger scale makes
    # removal sets produce clearly different logits, so equality tests can fail.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.15)
    return model.eval(), tokenizer
