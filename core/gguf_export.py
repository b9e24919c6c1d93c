"""GGUF export of a pruned model whose source is a GGUF file (the demo model, user `.gguf` files).

The new file is the source with, for removal set R (original 0-based indices) of N blocks:
* every `blk.<i>.*` tensor with i in R dropped, the others renamed `blk.<new index>.*` in order;
* every tensor kept byte for byte in its original quantisation (the raw GGUF data, no re-quantisation);
* `<arch>.block_count` set to N − |R|, and every metadata array under `<arch>.` with exactly N entries
  (per-layer head counts, feed-forward lengths, sliding-window patterns ...) sliced to the kept blocks
  (llama.cpp's own `--prune-layers` leaves these at full length);
* all other metadata (tokenizer, chat template, general.*) copied; `depthprune.removed_blocks` added.
It is verified by loading it through transformers' GGUF path and comparing its logits on a fixed prompt
with the engine's logits of the source model with R skipped: both dequantise the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from .errors import UserError
from .surgery import VERIFY_PROMPT, validate_removed

BLOCK_TENSOR = re.compile(r"^blk\.(\d+)\.(.+)$")
CONVERT_HINT = (
    "export it with --format hf, then convert that directory with llama.cpp's convert_hf_to_gguf.py "
    "(python convert_hf_to_gguf.py DIR --outtype q8_0)"
)
VERIFY_TOLERANCE = 1e-4


def gguf_source(spec: str) -> Path:
    """The GGUF file behind a model spec (`demo` or a `.gguf` path); a UserError for any other source."""
    from .loading import demo_gguf

    if spec == "demo":
        return demo_gguf()
    if spec.endswith(".gguf"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UserError(f"GGUF file {spec!r} (from --model) not found")
        return path.resolve()
    raise UserError(f"GGUF export needs a GGUF source, but model {spec!r} is not one; {CONVERT_HINT}")


def _field_value(field):
    """A reader field as (value, type, sub_type) for `GGUFWriter.add_key_value`."""
    import gguf

    main = field.types[0]
    sub = field.types[-1] if main == gguf.GGUFValueType.ARRAY else None
    return field.contents(), main, sub


def write_pruned_gguf(source: Path, removed: Iterable[int], out_file: Path) -> dict:
    """Write `source` without the blocks in `removed` to `out_file` (see the module docstring); returns
    what was done: architecture, block counts, the sliced metadata arrays, tensors kept and dropped."""
    import gguf

    reader = gguf.GGUFReader(source, "r")
    arch_field = reader.fields.get(gguf.Keys.General.ARCHITECTURE)
    if arch_field is None:
        raise UserError(f"GGUF file {str(source)!r} has no general.architecture")
    arch = arch_field.contents()
    count_key = f"{arch}.block_count"
    if count_key not in reader.fields:
        raise UserError(f"GGUF file {str(source)!r} has no {count_key}")
    n = int(reader.fields[count_key].contents())
    removed = validate_removed(removed, n)
    keep = [i for i in range(n) if i not in removed]
    new_index = {old: new for new, old in enumerate(keep)}

    writer = gguf.GGUFWriter(out_file, arch, endianess=reader.endianess)
    writer.data_alignment = reader.alignment
    sliced = []
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        value, main, sub = _field_value(field)
        if field.name == count_key:
            value = len(keep)
        elif main == gguf.GGUFValueType.ARRAY and field.name.startswith(f"{arch}.") and len(value) == n:
            value = [value[i] for i in keep]
            sliced.append(field.name)
        writer.add_key_value(field.name, value, main, sub_type=sub)
    writer.add_array("depthprune.removed_blocks", list(removed))

    kept_tensors, dropped = [], 0
    for tensor in reader.tensors:
        match = BLOCK_TENSOR.match(tensor.name)
        name = tensor.name
        if match:
            index = int(match.group(1))
            if index not in new_index:
                dropped += 1
                continue
            name = f"blk.{new_index[index]}.{match.group(2)}"
        kept_tensors.append(tensor)
        writer.add_tensor_info(name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes, tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in kept_tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()
    return {
        "architecture": arch,
        "block_count_before": n,
        "block_count_after": len(keep),
        "sliced_arrays": sliced,
        "tensors_kept": len(kept_tensors),
        "tensors_dropped": dropped,
        "tensor_types": sorted({t.tensor_type.name for t in kept_tensors}),
    }


def verify_gguf(lm, removed: Iterable[int], gguf_file: Path) -> float:
    """Max |logit difference| on a fixed prompt between `gguf_file` loaded by transformers' GGUF reader
    and the engine running `lm` with `removed` skipped; a RuntimeError above VERIFY_TOLERANCE."""
    import torch
    from transformers import AutoModelForCausalLM

    from .engine import Engine

    ids = lm.tokenizer(VERIFY_PROMPT, return_tensors="pt").input_ids
    engine = Engine(lm.model, lm.family)
    reloaded = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    with torch.no_grad():
        expected = engine.logits(engine.final_hidden(ids, None, sorted(removed))).cpu()
        got = reloaded(ids).logits.float()
    diff = float((expected - got).abs().max())
    if expected.shape != got.shape or diff > VERIFY_TOLERANCE:
        raise RuntimeError(f"GGUF export {gguf_file} does not reproduce the pruned model (max |logit diff| {diff})")
    return diff
