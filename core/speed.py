"""Inference speed of the dense and a physically pruned model, measured in one process.

Definitions (every figure is a median over `repeats` with its min and max):
* the pruned model is the dense one rebuilt without the removed blocks (`surgery.remove_blocks` on a
  copy), so `generate` and its KV cache see a stock, shorter model;
* one measurement is one `generate` call (greedy, `min_new_tokens = max_new_tokens = gen_len`, a
  fixed random prompt of `prompt_len` tokens per row, `batch` rows, KV cache on). A logits processor
  time-stamps every step: *time to first token* (ttft) is the time from the call to the first step
  (the prefill forward), *prefill tokens/s* = batch × prompt_len / ttft, *decode tokens/s* =
  batch × (gen_len − 1) / (time from the first step to the last);
* dense and pruned alternate (A B A B ...) for every repeat and batch size after one warm-up call
  each, so a machine shared with other work slows both alike;
* *head+embedding* time: the embedding lookup, final norm and LM head of one step timed on their own
  (the part of the cost removal cannot touch); the *ideal* speed-up of a phase is then
  1 / (rest + blocks × (N − k) / N) in shares of the dense time, next to the plain N / (N − k);
* *peak memory* of a model: measured in a fresh child process that loads only that model (saved to a
  temporary checkpoint) and runs the largest-batch `generate` once: on CUDA `max_memory_allocated`;
  on CPU the RSS high-water mark (VmHWM), reset after the imports (/proc/self/clear_refs), minus the
  RSS at that moment (without the reset: `getrusage` ru_maxrss minus its value after the imports).
  A high-water mark only grows within a process, so dense and pruned cannot share one; the
  interpreter and libraries (the baseline) are reported apart;
* parameters count shared (tied) tensors once; weight bytes = their element counts × element size.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UserError
from .families import get_path
from .loading import LoadedModel
from .surgery import remove_blocks, validate_removed

Progress = Callable[[str, int, int], None]
SEED = 0


def check_settings(prompt_len: int, gen_len: int, batches: Sequence[int], repeats: int) -> None:
    """A UserError naming the flag of the first unusable setting."""
    if prompt_len < 1:
        raise UserError(f"--prompt-len {prompt_len} must be at least 1")
    if gen_len < 2:
        raise UserError(f"--gen-len {gen_len} must be at least 2 (decode speed needs a second token)")
    if not batches:
        raise UserError("no batch size given (from --batch)")
    for b in batches:
        if b < 1:
            raise UserError(f"batch size {b} (from --batch) must be at least 1")
    if repeats < 1:
        raise UserError(f"--repeats {repeats} must be at least 1")


def size_of(model: nn.Module) -> dict:
    """Parameter count and weight bytes (shared tensors once)."""
    params = {id(p): p for p in model.parameters()}.values()
    return {"params": sum(p.numel() for p in params), "weight_bytes": sum(p.numel() * p.element_size() for p in params)}


def prompt(vocab: int, batch: int, prompt_len: int) -> torch.Tensor:
    """Fixed pseudo-random token ids (seeded), the same for both models."""
    gen = torch.Generator().manual_seed(SEED)
    return torch.randint(0, vocab, (batch, prompt_len), generator=gen)


class _Clock:
    """A logits processor that records when each generation step's logits arrive."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stamps: list[float] = []

    def __call__(self, input_ids, scores):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.stamps.append(time.perf_counter())
        return scores


@torch.no_grad()
def generate_once(model: Any, ids: torch.Tensor, gen_len: int) -> dict:
    """One timed greedy `generate` of exactly `gen_len` tokens: ttft and decode time in seconds."""
    from transformers import LogitsProcessorList

    device = next(model.parameters()).device
    ids = ids.to(device)
    clock = _Clock(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=gen_len,
        min_new_tokens=gen_len,
        do_sample=False,
        use_cache=True,
        logits_processor=LogitsProcessorList([clock]),
        pad_token_id=0,
        eos_token_id=None,
    )
    if out.shape[1] != ids.shape[1] + gen_len or len(clock.stamps) != gen_len:
        raise RuntimeError(f"generate produced {out.shape[1] - ids.shape[1]} tokens, expected {gen_len}")
    return {"ttft": clock.stamps[0] - start, "decode": clock.stamps[-1] - clock.stamps[0]}


@torch.no_grad()
def rest_seconds(model: Any, family, ids: torch.Tensor) -> float:
    """Seconds of one step's non-block work on `ids` ([batch, tokens]): embedding lookup of every token,
    final norm and LM head of the last position (what `generate` computes besides the blocks)."""
    device = next(model.parameters()).device
    ids = ids.to(device)
    embed = model.get_input_embeddings()
    finals = [m for m in (get_path(model, p) for p in family.final) if m is not None]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    h = embed(ids)[:, -1:]
    for m in finals:
        h = m(h)
    model.get_output_embeddings()(h)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def spread(values: Sequence[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def measure(
    lm: LoadedModel,
    removed: Sequence[int],
    *,
    prompt_len: int = 512,
    gen_len: int = 128,
    batches: Sequence[int] = (1, 8),
    repeats: int = 5,
    threads: int | None = None,
    memory: bool = True,
    progress: Progress | None = None,
) -> dict:
    """Dense vs pruned (`removed`, original indices) speed and memory; a JSON-ready dict with
    `settings`, `dense`, `pruned`, `ratios` (pruned / dense of every figure) and `ideal`."""
    check_settings(prompt_len, gen_len, batches, repeats)
    removed = validate_removed(removed, lm.n_blocks)
    if not removed:
        raise UserError("nothing to remove (from --remove): speed compares a pruned model with the dense one")
    cpu = lm.device == "cpu"
    if cpu:
        threads = threads or torch.get_num_threads()
        torch.set_num_threads(threads)
    dense: Any = lm.model.eval()
    pruned = remove_blocks(copy.deepcopy(dense), removed).eval()
    models = {"dense": dense, "pruned": pruned}
    vocab = dense.get_output_embeddings().weight.shape[0]
    n, k = lm.n_blocks, len(removed)
    steps = len(batches) * (repeats + 1) * 2
    done = 0

    def tick():
        nonlocal done
        done += 1
        if progress:
            progress("speed", done, steps)

    samples: dict[str, dict[int, dict[str, list[float]]]] = {
        name: {b: {"ttft": [], "decode": [], "rest_decode": [], "rest_prefill": []} for b in batches} for name in models
    }
    for b in batches:
        ids = prompt(vocab, b, prompt_len)
        for model in models.values():  # warm-up (kernels, allocator, caches)
            generate_once(model, ids, gen_len)
            tick()
    for _ in range(repeats):
        for b in batches:
            ids = prompt(vocab, b, prompt_len)
            for name, model in models.items():
                timing = generate_once(model, ids, gen_len)
                s = samples[name][b]
                s["ttft"].append(timing["ttft"])
                s["decode"].append(timing["decode"])
                s["rest_prefill"].append(rest_seconds(model, lm.family, ids))
                s["rest_decode"].append(rest_seconds(model, lm.family, ids[:, -1:]))
                tick()

    result: dict[str, Any] = {
        "settings": {
            "device": lm.device,
            "dtype": lm.dtype,
            "threads": threads if cpu else None,
            "prompt_len": prompt_len,
            "gen_len": gen_len,
            "batches": list(batches),
            "repeats": repeats,
            "warmup": 1,
            "order": "interleaved dense, pruned per repeat and batch",
            "torch": torch.__version__,
            "transformers": _version("transformers"),
        },
        "model": lm.spec,
        "removed": list(removed),
        "n_blocks": n,
    }
    for name, model in models.items():
        figures = {**size_of(model), "batch": {}}
        for b in batches:
            s = samples[name][b]
            decode_rate = [b * (gen_len - 1) / t for t in s["decode"]]
            figures["batch"][str(b)] = {
                "prefill_tok_s": spread([b * prompt_len / t for t in s["ttft"]]),
                "decode_tok_s": spread(decode_rate),
                "ttft_s": spread(s["ttft"]),
                "rest_prefill_s": spread(s["rest_prefill"]),
                "rest_decode_step_s": spread(s["rest_decode"]),
            }
        result[name] = figures
    if memory:
        mem = peak_memory(
            {"dense": dense, "pruned": pruned}, lm.device, prompt_len, gen_len, max(batches), threads if cpu else None
        )
        for name in models:
            result[name]["memory"] = mem[name]
            result[name]["peak_memory_bytes"] = mem[name]["peak_bytes"]
    result["ratios"] = ratios(result["dense"], result["pruned"])
    result["ideal"] = ideal(result["dense"], result["pruned"], n, k)
    return result


def ratios(dense: dict, pruned: dict) -> dict:
    """pruned / dense of every figure (medians for timed ones)."""
    out: dict[str, Any] = {
        key: _ratio(pruned[key], dense[key]) for key in ("params", "weight_bytes", "peak_memory_bytes") if key in dense
    }
    out["batch"] = {
        b: {
            m: _ratio(pruned["batch"][b][m]["median"], dense["batch"][b][m]["median"])
            for m in ("prefill_tok_s", "decode_tok_s", "ttft_s")
        }
        for b in dense["batch"]
    }
    return out


def ideal(dense: dict, pruned: dict, n: int, k: int) -> dict:
    """The speed-up the block count allows: N/(N−k) if blocks were the whole cost, and with the measured
    head+embedding share of the dense time (which removal cannot reduce) taken out. `split`: one
    decode step of the dense model in seconds, cut into head+embedding (timed apart), blocks (per
    block: the dense − pruned step time over k, times N) and the remainder (generate's own work)."""
    out: dict[str, Any] = {"blocks_only": n / (n - k), "batch": {}}
    for b, fig in dense["batch"].items():
        step = int(b) / fig["decode_tok_s"]["median"]
        pruned_step = int(b) / pruned["batch"][b]["decode_tok_s"]["median"]
        rest = fig["rest_decode_step_s"]["median"]
        shares = {
            "decode": min(1.0, rest / step),
            "prefill": min(1.0, fig["rest_prefill_s"]["median"] / fig["ttft_s"]["median"]),
        }
        per_block = (step - pruned_step) / k
        out["batch"][b] = (
            {f"{phase}_rest_share": share for phase, share in shares.items()}
            | {f"{phase}_speedup": 1.0 / (share + (1.0 - share) * (n - k) / n) for phase, share in shares.items()}
            | {
                "split": {
                    "decode_step_s": step,
                    "head_embedding_s": rest,
                    "blocks_s": per_block * n,
                    "per_block_s": per_block,
                    "other_s": step - rest - per_block * n,
                }
            }
        )
    return out


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# -- peak memory, one fresh process per model ---------------------------------------------------


def peak_memory(
    models: dict[str, Any], device: str, prompt_len: int, gen_len: int, batch: int, threads: int | None
) -> dict:
    """{name: {"peak_bytes", "baseline_bytes", "kind"}}: each model saved to a temporary checkpoint and
    run once (largest batch) in its own child process; see the module docstring."""
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="depthprune-speed-") as tmp:
        for name, model in models.items():
            folder = Path(tmp) / name
            model.save_pretrained(folder)
            cmd = [
                sys.executable,
                "-m",
                "depthprune.core.speed",
                str(folder),
                device,
                str(prompt_len),
                str(gen_len),
                str(batch),
                str(threads or 0),
            ]
            proc = subprocess.run(
                cmd, check=False, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
            )
            if proc.returncode != 0:
                raise RuntimeError(f"memory measurement of the {name} model failed: {proc.stderr.strip()[-2000:]}")
            out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _proc_status(key: str) -> int:
    """A memory figure of /proc/self/status (VmRSS, VmHWM) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no {key} in /proc/self/status")


def _reset_high_water() -> int | None:
    """Reset this process's RSS high-water mark to its current RSS (Linux: /proc/self/clear_refs)
    and return that RSS; None where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _proc_status("VmRSS")
    except OSError:
        return None


def _child(folder: str, device: str, prompt_len: int, gen_len: int, batch: int, threads: int) -> dict:
    import transformers.generation  # noqa: F401 -- imported before the reset: libraries count as the baseline
    from transformers import AutoConfig, AutoModelForCausalLM

    if threads:
        torch.set_num_threads(threads)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    AutoModelForCausalLM._model_mapping[type(AutoConfig.from_pretrained(folder))]  # imports the modelling code
    baseline = _reset_high_water()
    fallback = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    model.to(device).eval()
    vocab = model.get_output_embeddings().weight.shape[0]
    generate_once(model, prompt(vocab, batch, prompt_len), gen_len)
    if device.startswith("cuda"):
        return {
            "kind": "cuda max_memory_allocated",
            "peak_bytes": torch.cuda.max_memory_allocated(),
            "baseline_bytes": 0,
        }
    if baseline is not None:
        return {
            "kind": "RSS high-water mark of a fresh process, reset after its imports, minus its RSS then",
            "peak_bytes": _proc_status("VmHWM") - baseline,
            "baseline_bytes": baseline,
        }
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return {
        "kind": "ru_maxrss of a fresh process minus its value after the imports (the mark cannot be reset here)",
        "peak_bytes": peak - fallback,
        "baseline_bytes": fallback,
    }


if __name__ == "__main__":
    folder_, device_, *numbers = sys.argv[1:]
    print(json.dumps(_child(folder_, device_, *map(int, numbers))))
