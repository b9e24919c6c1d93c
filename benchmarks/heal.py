"""Healing, measured: held-out quality of the dense, pruned, linear-healed and LoRA-healed models.

One removal set (from a finished run, or --remove) on one model. Every model is scored on the same
suite: WikiText-2 perplexity (first `--ppl-windows` windows of `--seq-len`) and zero-shot accuracy on
ARC-Easy, ARC-Challenge, PIQA, HellaSwag and WinoGrande (first `--limit` items each). Healed models
are exported by `depthprune heal`'s pipeline and scored after reloading the checkpoint with stock
`from_pretrained` (nothing removed: they are the physically pruned, healed models). Wall time of each
heal is the method alone (no evaluation, no export). Results go to `--out` (JSON), one entry per model,
written as each finishes, so `--only` can split the work across invocations.

    python benchmarks/heal.py --run RUN --runs-dir runs --data-dir ../shared/data [--limit 200] [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from depthprune.core.evaluate import evaluate
from depthprune.core.loading import load_model
from depthprune.core.runs import Run
from depthprune.heal.lora import LoraSettings
from depthprune.heal.pipeline import HealRequest, heal

MC_TASKS = ["arc_easy", "arc_challenge", "piqa", "hellaswag", "winogrande"]


def _score(lm, removed, args) -> dict:
    started = time.perf_counter()
    ppl = evaluate(lm, ["wikitext2"], removed, limit=args.ppl_windows, seq_len=args.seq_len, data_dir=args.data_dir,
                   batch_size=args.batch_size)["tasks"]
    mc = evaluate(lm, MC_TASKS, removed, limit=args.limit, seq_len=args.seq_len, data_dir=args.data_dir,
                  batch_size=args.batch_size)["tasks"]
    tasks = {**ppl, **mc}
    primary = [mc[t][mc[t]["primary"]] for t in MC_TASKS]
    return {"tasks": tasks, "wikitext2_ppl": ppl["wikitext2"]["ppl"], "mean_acc": sum(primary) / len(primary),
            "eval_seconds": round(time.perf_counter() - started, 1)}


def _heal(args, removed, method: str, work: Path) -> dict:
    lm = load_model(args.model, device="cpu")
    request = HealRequest(method=method, removed=list(removed), out=work / f"healed-{method}", calib=args.calib,
                          calib_samples=args.calib_samples, calib_seq_len=args.calib_seq_len, data_dir=args.data_dir,
                          ridge=args.ridge, skip_positions=args.skip_positions, batch_size=args.heal_batch,
                          lora=LoraSettings(steps=args.steps, rank=args.rank, lr=args.lr, batch_size=args.heal_batch,
                                            save_every=max(args.steps, 1)))
    record = heal(lm, request)
    healed = load_model(str(request.out), device="cpu")
    return {"heal_seconds": record["seconds"], "calibration": record["calibration"], "settings": record["settings"],
            "losses": record["losses"], **_score(healed, (), args)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="demo")
    p.add_argument("--run", help="a finished run: its model and removal set")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"))
    p.add_argument("--remove", default="", help="without --run: blocks to remove, 3,7,9")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--limit", type=int, default=200, help="items per multiple-choice task")
    p.add_argument("--ppl-windows", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--calib", default="lambada")
    p.add_argument("--calib-samples", type=int, default=64)
    p.add_argument("--calib-seq-len", type=int, default=256)
    p.add_argument("--ridge", type=float, default=0.01)
    p.add_argument("--skip-positions", type=int, default=4)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--heal-batch", type=int, default=2)
    p.add_argument("--only", default="dense,pruned,linear,lora")
    p.add_argument("--out", type=Path, default=Path("heal-benchmark.json"))
    args = p.parse_args()
    if args.run:
        run = Run.open(args.run, args.runs_dir)
        args.model, removed = run.config["model"], tuple(run.result()["removed"])
    else:
        removed = tuple(int(x) for x in args.remove.split(",") if x)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["settings"] = {"model": args.model, "removed": list(removed), "limit": args.limit,
                           "ppl_windows": args.ppl_windows, "seq_len": args.seq_len, "threads": torch.get_num_threads(),
                           "machine": platform.processor() or platform.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            if name in ("dense", "pruned"):
                results[name] = _score(load_model(args.model, device="cpu"), removed if name == "pruned" else (), args)
            else:
                results[name] = _heal(args, removed, name, Path(tmp))
            args.out.write_text(json.dumps(results, indent=2) + "\n")
            entry = results[name]
            print(f"{name:>7}: wikitext2 ppl {entry['wikitext2_ppl']:.2f}  mean acc {entry['mean_acc']:.4f}"
                  + (f"  heal {entry['heal_seconds']:.1f} s" if "heal_seconds" in entry else ""), flush=True)


if __name__ == "__main__":
    main()
