"""Physical block removal and export: a model identical to one built without the removed blocks.

Removal (the checklist of the anchors notes): find the block list through the family table; keep the
other blocks in order; re-index `layer_idx` on every submodule that has one (it indexes the KV cache);
set `num_hidden_layers`; slice every per-layer config list, remap per-layer index sets and thresholds;
record the original indices of the removed blocks as provenance in the config.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from .errors import UserError
from .families import LAYER_INDEX_LISTS, LAYER_THRESHOLDS, NOT_PER_LAYER, family_of, get_path, set_path

PROVENANCE_KEY = "depthprune"


def validate_removed(removed: Iterable[int], n_blocks: int, source: str = "--remove") -> tuple[int, ...]:
    """Sorted original 0-based indices; rejects out-of-range, duplicate and all-blocks removals."""
    removed = list(removed)
    for i in removed:
        if not 0 <= i < n_blocks:
            raise UserError(
                f"block index {i} out of range (from {source}): the model has {n_blocks} blocks, 0-{n_blocks - 1}"
            )
    dupes = sorted({i for i in removed if removed.count(i) > 1})
    if dupes:
        raise UserError(f"block index {dupes[0]} given twice (from {source})")
    if len(removed) >= n_blocks:
        raise UserError(f"cannot remove all {n_blocks} blocks (from {source}): at least one must stay")
    return tuple(sorted(removed))


def _slice_per_layer(cfg, n: int, keep: list[int]) -> None:
    """Slice, in place, every per-layer field of `cfg` and of its sub-configs that describe the same n
    blocks (a multimodal model's `text_config`): any list or tuple with exactly n entries (`layer_types`,
    `mlp_layer_types`, `no_rope_layers`, per-layer head counts or rope thetas, ...) except the fields in
    NOT_PER_LAYER; any dict keyed by exactly the block indices 0..n-1 (as ints or strings) is re-keyed to
    the new indices. Index sets and thresholds are remapped (LAYER_INDEX_LISTS, LAYER_THRESHOLDS)."""
    new_index = {old: new for new, old in enumerate(keep)}
    for name, value in list(vars(cfg).items()):
        if name.startswith("_") or name in NOT_PER_LAYER:
            continue
        if name in LAYER_INDEX_LISTS and isinstance(value, (list, tuple)):
            setattr(cfg, name, [new_index[i] for i in value if i in new_index])
        elif name in LAYER_THRESHOLDS and isinstance(value, int) and not isinstance(value, bool):
            setattr(cfg, name, sum(1 for i in keep if i < value))
        elif isinstance(value, (list, tuple)) and len(value) == n:
            setattr(cfg, name, type(value)(value[i] for i in keep))
        elif isinstance(value, dict) and value and {str(key) for key in value} == {str(i) for i in range(n)}:
            by_index = {int(key): v for key, v in value.items()}
            key_type = type(next(iter(value)))
            setattr(cfg, name, {key_type(new_index[i]): by_index[i] for i in keep})
        elif hasattr(value, "to_dict") and getattr(value, "num_hidden_layers", None) == n and value is not cfg:
            value.num_hidden_layers = len(keep)
            _slice_per_layer(value, n, keep)


def pruned_config(config, removed: Iterable[int]):
    """A copy of `config` describing the model without `removed` (original indices)."""
    n = config.num_hidden_layers
    removed = set(validate_removed(removed, n))
    keep = [i for i in range(n) if i not in removed]
    cfg = copy.deepcopy(config)
    cfg.num_hidden_layers = len(keep)
    _slice_per_layer(cfg, n, keep)
    previous = getattr(config, PROVENANCE_KEY, None) or {}
    original = previous.get("original_blocks", list(range(n)))
    setattr(
        cfg,
        PROVENANCE_KEY,
        {
            "original_num_hidden_layers": len(original),
            "original_blocks": [original[i] for i in keep],
            "removed": sorted(set(previous.get("removed", [])) | {original[i] for i in removed}),
        },
    )
    return cfg


def remove_blocks(model: nn.Module, removed: Iterable[int]) -> nn.Module:
    """Physically remove blocks in place (indices are the model's current 0-based indices)."""
    family = family_of(model.config)
    blocks = get_path(model, family.blocks)
    removed = validate_removed(removed, len(blocks))
    old_config, new_config = model.config, pruned_config(model.config, removed)
    keep = [b for i, b in enumerate(blocks) if i not in removed]
    for new_idx, block in enumerate(keep):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_idx
    set_path(model, family.blocks, nn.ModuleList(keep))
    for module in model.modules():  # every module sharing the old config object
        if getattr(module, "config", None) is old_config:
            module.config = new_config
    return model


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_record(out: Path) -> dict:
    """sha256 and size of every file written in `out` (depthprune.json itself excepted), and the total."""
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "depthprune.json")
    return {
        "files": {str(p.relative_to(out)): sha256_file(p) for p in files},
        "file_bytes": {str(p.relative_to(out)): p.stat().st_size for p in files},
        "bytes_after": sum(p.stat().st_size for p in files),
    }


def source_bytes(lm) -> int | None:
    """Size on disk of the dense model's weight files in the format an HF export writes: the safetensors
    and .bin files of its directory (for a GGUF source, the converted fp32 directory); None when the
    model is not on disk (tiny models)."""
    folder = Path(lm.model_id)
    if not folder.is_dir():
        return None
    return sum(f.stat().st_size for pattern in ("*.safetensors", "*.bin") for f in folder.glob(pattern))


def check_config(out: Path) -> dict:
    """Reload `out/config.json` with the pinned transformers' AutoConfig and run its strict validation
    (`validate()`: per-layer lists against num_hidden_layers, layer types, token ids); a RuntimeError if
    it fails. Returns the loaders checked, for the record."""
    import transformers
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(out)
        if hasattr(config, "validate"):
            config.validate()
    except (StrictDataclassError, ValueError) as exc:
        raise RuntimeError(
            f"{out / 'config.json'} fails the strict validation of transformers "
            f"{transformers.__version__}: {' '.join(str(exc).split())}"
        ) from None
    return {"transformers.AutoConfig (strict validate)": transformers.__version__}


def write_record(out: Path, info: dict) -> None:
    (out / "depthprune.json").write_text(json.dumps(info, indent=2) + "\n")


def export(model: Any, tokenizer, out_dir: str | Path, provenance: dict | None = None) -> dict:
    """Write a (pruned) model as a stock Hugging Face checkpoint (safetensors) that `from_pretrained`
    loads, with `depthprune.json` beside it: removed original indices, provenance, every file's sha256
    and size, and the loaders its config.json was checked with."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"output directory {str(out)!r} (from --out) exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = dict(getattr(model.config, PROVENANCE_KEY, None) or {"removed": []})
    info.update(provenance or {})
    info["format"] = "hf"
    info["loaders_checked"] = check_config(out)
    info.update(files_record(out))
    write_record(out, info)
    return info


VERIFY_PROMPT = "The quick brown fox jumps over the lazy dog because"


def export_pruned(lm, removed: Iterable[int], out_dir: str | Path, provenance: dict | None = None) -> dict:
    """Remove `removed` from the loaded model in place, export it, reload it with stock
    `from_pretrained` and check its logits on a fixed prompt equal the in-memory pruned model's."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    removed = validate_removed(removed, lm.n_blocks)
    before = source_bytes(lm)
    model = remove_blocks(lm.model, removed)
    info = export(
        model,
        lm.tokenizer,
        out_dir,
        {
            "source_model": lm.spec,
            "model_id": lm.model_id,
            "revision": lm.revision,
            "bytes_before": before,
            **(provenance or {}),
        },
    )
    ids = lm.tokenizer(VERIFY_PROMPT, return_tensors="pt").input_ids
    reloaded = AutoModelForCausalLM.from_pretrained(out_dir, dtype=next(model.parameters()).dtype)
    with torch.no_grad():
        expected = model(ids.to(lm.device)).logits.float().cpu()
        got = reloaded(ids).logits.float()
    diff = float((expected - got).abs().max())
    dtype = next(model.parameters()).dtype  # reduced precision: a few units in the last place of the logits
    if diff > max(1e-3, 4 * torch.finfo(dtype).eps) * max(1.0, float(expected.abs().max())):
        raise RuntimeError(
            f"exported checkpoint in {out_dir} does not reproduce the pruned model (max |logit diff| {diff})"
        )
    info["verified_max_logit_diff"] = diff
    info["loaders_checked"]["transformers.AutoModelForCausalLM (reload, logits)"] = transformers.__version__
    write_record(Path(out_dir), info)
    return info
