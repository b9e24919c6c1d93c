"""A model spec's block count without loading its weights (for Setup's instant checks).

* `tiny:<family>[:blocks]`: from the spec;
* `demo` and `.gguf` files: the GGUF header's `<architecture>.block_count` (read, not converted);
* a local directory: its config.json (`num_hidden_layers`, or that of `text_config`);
* a hub id: its config through `transformers.AutoConfig` from the local cache only (no download);
  None when it is not cached.
Errors are `UserError`s naming the model field.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import UserError


def _layers(config: dict) -> int | None:
    for holder in (config, config.get("text_config") or {}):
        blocks = holder.get("num_hidden_layers") or holder.get("n_layer")
        if isinstance(blocks, int):
            return blocks
    return None


def gguf_blocks(path: Path) -> int | None:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except (OSError, ValueError) as exc:
        raise UserError(f"GGUF file {str(path)!r} (from Model) cannot be read: {exc}") from None
    arch = reader.fields.get("general.architecture")
    if arch is None:
        return None
    name = bytes(arch.parts[arch.data[0]]).decode()
    field = reader.fields.get(f"{name}.block_count")
    return int(field.parts[field.data[0]][0]) if field is not None else None


def block_count(spec: str) -> int | None:
    """The number of Transformer blocks of `spec`, None when it cannot be known without a download."""
    spec = spec.strip()
    if not spec:
        raise UserError("a model is required")
    if spec.startswith("tiny:"):
        from ..core.tiny import parse_tiny

        return parse_tiny(spec)[1]
    if spec == "demo":
        from ..core.loading import demo_gguf

        return gguf_blocks(demo_gguf())
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise UserError(f"GGUF file {spec!r} not found")
        return gguf_blocks(path)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise UserError(f"model directory {spec!r} has no config.json")
        return _layers(json.loads(config.read_text()))
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise UserError(f"{spec!r} is neither a model directory nor a hub id")
    try:
        from transformers import AutoConfig

        return _layers(AutoConfig.from_pretrained(spec, local_files_only=True).to_dict())
    except (OSError, ValueError):
        return None
