"""Search cost at full size on a GPU: Llama-3-8B dimensions, bf16, random weights (speed does not
depend on weight values), 64 x 2048 random calibration tokens, `ppl` objective.

Workloads: greedy k=7 and one-shot (objective scorer) k=7, each naive (every candidate replays all
blocks from block 0; block inputs still captured once) and optimised (prefix reuse in trie order,
early abort; no cross-run memo). Printed per workload: evaluations, block-forwards (block
applications to a calibration batch), wall time, candidate tokens/s (calibration tokens x computed
evaluations / wall), block tokens/s (token positions pushed through blocks / wall), peak GPU memory
(torch.cuda.max_memory_allocated; on CPU the process's peak RSS), and naive/optimised ratios; and
whether both found the same set with the same value.

    python benchmarks/gpu_search.py            # full size: needs a GPU with ~40 GB free
    python benchmarks/gpu_search.py --quick    # 16 x 1024 tokens: sized for < 5 min on one H200
    python benchmarks/gpu_search.py --tiny     # a small config on CPU: checks that the script runs
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch

from depthprune.core.engine import Engine
from depthprune.core.events import Candidate
from depthprune.core.families import family_of
from depthprune.core.runs import Run
from depthprune.objectives.ppl import Perplexity
from depthprune.pipeline.loop import Speedups, run_search
from depthprune.searchers import SEARCHERS, Space

LLAMA3_8B = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    max_position_embeddings=8192,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)
TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=8,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=512,
    max_position_embeddings=512,
    tie_word_embeddings=False,
)
SIZES = {"full": (LLAMA3_8B, 64, 2048, 7, 8), "quick": (LLAMA3_8B, 16, 1024, 7, 8), "tiny": (TINY, 4, 64, 2, 2)}


def random_model(dims: dict, device: str, dtype: torch.dtype):
    """A LlamaForCausalLM of `dims` with N(0, 0.02) weights, built directly on `device` in `dtype`."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(**dims)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for _name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.02, generator=generator)
            else:
                param.fill_(1.0)
    rotary = model.model.rotary_emb  # its inv_freq buffers were left uninitialised by to_empty: build it again
    model.model.rotary_emb = type(rotary)(model.config).to(device)
    return model.eval()


def peak_memory(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def search_once(objective, name: str, space: Space, speed: Speedups, device: str) -> dict:
    engine = objective.engine
    objective.cache = None
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = (engine.block_forwards, engine.block_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run.create(
            Path(tmp), {"model": "bench", "objective": {"objective": "ppl"}, "searcher": name, "k": space.k}
        )
        started = time.perf_counter()
        result = run_search(objective, SEARCHERS[name](space, seed=0), run, speed=speed)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall = time.perf_counter() - started
        computed = sum(1 for e in run.events() if isinstance(e, Candidate) and not e.cached)
    tokens = sum(len(cont) + 1 for _, cont in objective.pairs)
    return {
        "wall_s": wall,
        "removed": result["removed"],
        "value": result["value"],
        "evaluations": computed,
        "block_forwards": engine.block_forwards - before[0],
        "block_tokens": engine.block_tokens - before[1],
        "candidate_tokens_per_s": computed * tokens / wall,
        "block_tokens_per_s": (engine.block_tokens - before[1]) / wall,
        "peak_memory_bytes": peak_memory(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="16 x 1024 calibration tokens (< 5 min on one H200)")
    size.add_argument("--tiny", action="store_true", help="a small config and data on CPU (smoke check)")
    parser.add_argument("--device", default=None, help="default: cuda if available (the --tiny default: cpu)")
    parser.add_argument("--searchers", default="greedy,oneshot")
    parser.add_argument("--cache-gib", type=float, default=40.0, help="prefix-cache budget of the optimised runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dims, windows, seq_len, k, batch = SIZES["tiny" if args.tiny else "quick" if args.quick else "full"]
    device = args.device or ("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    dtype = torch.float32 if device == "cpu" and args.tiny else torch.bfloat16

    started = time.perf_counter()
    model = random_model(dims, device, dtype)
    engine = Engine(model, family_of(model.config))
    generator = torch.Generator().manual_seed(0)
    token_windows = torch.randint(0, dims["vocab_size"], (windows, seq_len), generator=generator).tolist()

    class _Tokens:  # the objective only needs a pad id when the windows are given as token ids
        pad_token_id = 0

    objective = Perplexity(
        engine, _Tokens(), None, "random", seq_len=seq_len, batch_size=batch, token_windows=token_windows
    )
    setup_s = time.perf_counter() - started
    naive = Speedups(prefix_cache=False, early_abort=False, shared_context=False, memo=False)
    fast = Speedups(memo=False, cache_bytes=int(args.cache_gib * 2**30))
    space = Space(dims["num_hidden_layers"], k)
    rows = []
    for name in filter(None, args.searchers.split(",")):
        a = search_once(objective, name, space, naive, device)
        b = search_once(objective, name, space, fast, device)
        rows.append(
            {
                "workload": f"{name} k={k}",
                "naive": a,
                "optimised": b,
                "wall_ratio": a["wall_s"] / b["wall_s"],
                "forward_ratio": a["block_forwards"] / max(1, b["block_forwards"]),
                "identical": a["removed"] == b["removed"]
                and abs(a["value"] - b["value"]) <= 1e-6 * max(1.0, abs(a["value"])),
            }
        )
    machine = {
        "size": "tiny" if args.tiny else "quick" if args.quick else "full",
        "device": device,
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "dtype": str(dtype).replace("torch.", ""),
        "model": {k_: dims[k_] for k_ in ("hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size")},
        "calibration": f"{windows} x {seq_len} random tokens, batches of {batch}",
        "setup_s": round(setup_s, 1),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
        return
    print(" · ".join(f"{key}: {value}" for key, value in machine.items()))
    print("| workload | mode | evaluations | block-forwards | wall s | candidate tok/s | block tok/s | peak GiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        for mode in ("naive", "optimised"):
            r = row[mode]
            print(
                f"| {row['workload']} | {mode} | {r['evaluations']} | {r['block_forwards']} | {r['wall_s']:.1f} | "
                f"{r['candidate_tokens_per_s']:.0f} | {r['block_tokens_per_s']:.0f} | "
                f"{r['peak_memory_bytes'] / 2**30:.2f} |"
            )
        print(
            f"| {row['workload']} | naive/optimised | | {row['forward_ratio']:.2f}x | {row['wall_ratio']:.2f}x | | | "
            f"identical: {row['identical']} |"
        )


if __name__ == "__main__":
    main()
