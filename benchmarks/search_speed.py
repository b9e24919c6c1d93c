"""Search cost, naive versus optimised, measured in one process on the same model, data and seed.

Naive: every candidate replays all blocks from block 0 (as SLEB and ShortGPT do; the block inputs
are still captured once). Optimised: prefix reuse in trie order, early abort inside argmins, and
shared-context multiple-choice scoring. The cross-run memo is off in both (it would make a second
search free rather than faster); its effect is shown on its own line.

Reports, per search: wall time, evaluations, block-forwards (block applications to a calibration
batch), the lower bound on block-forwards for any exact method that scores the same candidates (the
distinct (block, removed-prefix) pairs the candidates' paths traverse), and whether the chosen set
and its value are identical. For multiple choice, the forward ratio is in block-token applications
(packed rows are longer than single sequences).

    python benchmarks/search_speed.py [--model demo] [--k 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from depthprune.core.calibration import calibration_text
from depthprune.core.engine import Engine
from depthprune.core.evaluate import Evaluator
from depthprune.core.events import Candidate
from depthprune.core.loading import load_model
from depthprune.core.prefix import exact_lower_bound
from depthprune.core.runs import Run
from depthprune.core.tasks import TASKS
from depthprune.objectives.ppl import Perplexity
from depthprune.pipeline.loop import Speedups, run_search
from depthprune.pipeline.memo import SharedMemo
from depthprune.searchers import SEARCHERS, Space

NAIVE = Speedups(prefix_cache=False, early_abort=False, shared_context=False, memo=False)
FAST = Speedups(memo=False, cache_bytes=4 << 30)


def search_once(objective, name, space, seed, speed, memo=None):
    engine = objective.engine
    objective.cache = None
    before = (engine.block_forwards, engine.block_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run.create(
            Path(tmp), {"model": "bench", "objective": {"objective": "ppl"}, "searcher": name, "k": space.k}
        )
        t = time.perf_counter()
        result = run_search(objective, SEARCHERS[name](space, seed=seed), run, speed=speed, shared=memo)
        wall = time.perf_counter() - t
        evaluated = [frozenset(e.removed) for e in run.events() if isinstance(e, Candidate) and not e.cached]
    return {
        "wall": wall,
        "removed": result["removed"],
        "value": result["value"],
        "evaluations": result["evaluations"],
        "aborted": result["aborted"],
        "block_forwards": engine.block_forwards - before[0],
        "block_tokens": engine.block_tokens - before[1],
        "evaluated": evaluated,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--searchers", default="greedy,beam,ga,oneshot")
    parser.add_argument("--calib-samples", type=int, default=2)
    parser.add_argument("--calib-seq-len", type=int, default=64)
    parser.add_argument(
        "--batch-size", type=int, default=1, help="calibration windows per batch (early abort works between batches)"
    )
    parser.add_argument("--mc-tasks", default="hellaswag,arc_easy", help="4-choice tasks (demo-mc without --data-dir)")
    parser.add_argument("--mc-items", type=int, default=40)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    lm = load_model(args.model, device=args.device)
    engine = Engine(lm.model, lm.family)
    text, source = calibration_text("demo", None)
    objective = Perplexity(
        engine,
        lm.tokenizer,
        text,
        source,
        seq_len=args.calib_seq_len,
        n_windows=args.calib_samples,
        batch_size=args.batch_size,
    )
    space = Space(lm.n_blocks, args.k)
    rows, fast_runs = [], {}
    for name in filter(None, args.searchers.split(",")):
        naive = search_once(objective, name, space, args.seed, NAIVE)
        fast = fast_runs[name] = search_once(objective, name, space, args.seed, FAST)
        rows.append(
            {
                "workload": f"{name} k={args.k}",
                "naive_s": round(naive["wall"], 2),
                "fast_s": round(fast["wall"], 2),
                "wall_ratio": round(naive["wall"] / fast["wall"], 2),
                "evaluations": fast["evaluations"],
                "aborted": fast["aborted"],
                "naive_block_forwards": naive["block_forwards"],
                "fast_block_forwards": fast["block_forwards"],
                "forward_ratio": round(naive["block_forwards"] / fast["block_forwards"], 2),
                "exact_lower_bound": exact_lower_bound(naive["evaluated"], lm.n_blocks) * len(objective.batches),
                "identical": naive["removed"] == fast["removed"]
                and abs(naive["value"] - fast["value"]) <= 1e-6 * max(1, abs(naive["value"])),
            }
        )
    if {"greedy", "beam"} <= set(fast_runs):
        with tempfile.TemporaryDirectory() as tmp:
            memo = SharedMemo(Path(tmp), {"bench": True})
            search_once(objective, "greedy", space, args.seed, FAST, memo)
            second = search_once(objective, "beam", space, args.seed, FAST, memo)
        alone = fast_runs["beam"]
        rows.append(
            {
                "workload": f"beam k={args.k} after greedy, shared memo (vs optimised beam alone)",
                "naive_s": round(alone["wall"], 2),
                "fast_s": round(second["wall"], 2),
                "wall_ratio": round(alone["wall"] / second["wall"], 2),
                "evaluations": second["evaluations"],
                "aborted": second["aborted"],
                "naive_block_forwards": alone["block_forwards"],
                "fast_block_forwards": second["block_forwards"],
                "forward_ratio": round(alone["block_forwards"] / max(1, second["block_forwards"]), 2),
                "exact_lower_bound": None,
                "identical": alone["removed"] == second["removed"],
            }
        )

    data_dir = Path(args.data_dir)
    tasks = args.mc_tasks.split(",") if (data_dir / "SOURCES.md").is_file() else ["demo-mc"]
    for task in filter(None, tasks):
        items = TASKS[task].load(data_dir if task != "demo-mc" else None)[: args.mc_items]
        results = {}
        for shared in (False, True):
            evaluator = Evaluator(lm, batch_size=8, shared_context=shared)
            t = time.perf_counter()
            results[shared] = (evaluator.multiple_choice(items), time.perf_counter() - t, evaluator.engine.block_tokens)
        (plain, t_plain, tok_plain), (packed, t_packed, tok_packed) = results[False], results[True]
        same = all(
            torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-3) for a, b in zip(plain.loglik, packed.loglik)
        )
        rows.append(
            {
                "workload": f"{task} {len(items)} items, shared context",
                "naive_s": round(t_plain, 2),
                "fast_s": round(t_packed, 2),
                "wall_ratio": round(t_plain / t_packed, 2),
                "evaluations": None,
                "aborted": None,
                "naive_block_forwards": None,
                "fast_block_forwards": None,
                "forward_ratio": round(tok_plain / tok_packed, 2),
                "exact_lower_bound": None,
                "identical": same,
            }
        )

    machine = {
        "model": args.model,
        "device": lm.device,
        "dtype": lm.dtype,
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "calibration": f"{args.calib_samples} x {args.calib_seq_len} tokens, {len(objective.batches)} batches",
    }
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
        return
    print(" · ".join(f"{k}: {v}" for k, v in machine.items()))
    header = [
        "workload",
        "naive_s",
        "fast_s",
        "wall_ratio",
        "naive_block_forwards",
        "fast_block_forwards",
        "forward_ratio",
        "exact_lower_bound",
        "evaluations",
        "aborted",
        "identical",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join("" if row[h] is None else str(row[h]) for h in header) + " |")


if __name__ == "__main__":
    main()
