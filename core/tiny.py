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
from .families import ALIASES, FAMILIES

SPECIAL_TOKENS = ("<|bos|>", "<|eos|>", "<|pad|>")
DEFAULT_BLOCKS = 6
_SEED = 0


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
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    if code in printable:
        return code
    others = [b for b in range(256) if b not in printable]
    return others[code - 256]


def parse_tiny(spec: str) -> tuple[str, int]:
    """`tiny:llama` -> ("llama", 6); `tiny:gpt2:4` -> ("gpt2", 4)."""
    parts = spec.split(":")
    family = parts[1] if len(parts) > 1 else ""
    family = ALIASES.get(family, family)
    if family not in FAMILIES or len(parts) > 3:
        raise UserError(
            f"unknown tiny model {spec!r} (from --model); use tiny:<family>[:<blocks>] with a family "
            f"among {', '.join(sorted(FAMILIES))}"
        )
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
    row = FAMILIES[family]
    config = AutoConfig.for_model(
        family,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **{row.layers_field: blocks},
        **row.tiny,
        **row.tiny_per_blocks(blocks),
    )
    torch.manual_seed(_SEED)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # Default initialisation (std 0.02) makes every block nearly the identity; a larger scale makes
    # removal sets produce clearly different logits, so equality tests can fail.
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.15)
    return model.eval(), tokenizer
