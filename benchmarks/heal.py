"""Healing, measured: held-out quality of the dense, pruned, linear-healed and LoRA-healed models.

One removal set (from a finished run, or --remove) on one model. Every model is scored on the same
suite: WikiText-2 perplexity (first `--ppl-windows` windows of `--seq-len`) and zero-shot accuracy on
ARC-Easy, ARC-Challenge, PIQA, HellaSwag and WinoGrande (first `--limit` items each). Healed models
are exported by `depthprune heal`'s pipeline into `--work` and scored after reloading the checkpoint with
stock `from_pretrained` (nothing removed: they are the physically pruned, healed models). Wall time of
each heal is the method alone (no evaluation, no export). Results go to `--out` (JSON), written after
every stage (`<model>:ppl` or `<model>:mc`), so `--only` can split the work across invocations.

    python benchmarks/heal.py --run RUN --runs-dir runs --data-dir ../shared/data [--limit 200] [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from depthprune.core.evaluate import evaluate
from depthprune.core.loading import load_model
from depthprune.core.runs import Run
from depthprune.heal.lora import LoraSettings
from depthprune.heal.pipeline import HealRequest, heal

MC_TASKS = ["arc_easy", "arc_challenge", "piqa", "hellaswag", "winogrande"]


def _ppl(lm, removed, args) -> dict:
    started = time.perf_counter()
    task = evaluate(
        lm,
        ["wikitext2"],
        removed,
        limit=args.ppl_windows,
        seq_len=args.seq_len,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
    )["tasks"]["wikitext2"]
    return {"wikitext2": task, "wikitext2_ppl": task["ppl"], "ppl_seconds": round(time.perf_counter() - started, 1)}


def _mc(lm, removed, args) -> dict:
    started = time.perf_counter()
    mc = evaluate(
        lm,
        MC_TASKS,
        removed,
        limit=args.limit,
        seq_len=args.seq_len,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
    )["tasks"]
    primary = [mc[t][mc[t]["primary"]] for t in MC_TASKS]
    return {"mc": mc, "mean_acc": sum(primary) / len(primary), "mc_seconds": round(time.perf_counter() - started, 1)}


def _heal(args, removed, method: str, out: Path) -> dict:
    """Heal a fresh copy of the model into `out` (kept, so a later stage can score it again)."""
    lm = load_model(args.model, device="cpu")
    request = HealRequest(
        method=method,
        removed=list(removed),
        out=out,
        calib=args.calib,
        calib_samples=args.calib_samples,
        calib_seq_len=args.calib_seq_len,
        data_dir=args.data_dir,
        ridge=args.ridge,
        skip_positions=args.skip_positions,
        batch_size=args.heal_batch,
        lora=LoraSettings(
            steps=args.steps, rank=args.rank, lr=args.lr, batch_size=args.heal_batch, save_every=max(args.steps, 1)
        ),
    )
    record = heal(lm, request)
    return {
        "heal_seconds": record["seconds"],
        "calibration": record["calibration"],
        "settings": record["settings"],
        "losses": record["losses"],
    }


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
    p.add_argument("--ridge", type=float, default=0.1)
    p.add_argument("--skip-positions", type=int, default=4)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--heal-batch", type=int, default=2)
    p.add_argument(
        "--only",
        default="dense:ppl,pruned:ppl,linear:ppl,lora:ppl,dense:mc,pruned:mc,linear:mc,lora:mc",
        help="stages <model>:<ppl|mc> in order",
    )
    p.add_argument("--out", type=Path, default=Path("heal-benchmark.json"))
    p.add_argument("--work", type=Path, default=Path("heal-benchmark-checkpoints"), help="healed checkpoints")
    args = p.parse_args()
    if args.run:
        run = Run.open(args.run, args.runs_dir)
        args.model, removed = run.config["model"], tuple(run.result()["removed"])
    else:
        removed = tuple(int(x) for x in args.remove.split(",") if x)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["settings"] = {
        "model": args.model,
        "removed": list(removed),
        "limit": args.limit,
        "ppl_windows": args.ppl_windows,
        "seq_len": args.seq_len,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    args.work.mkdir(parents=True, exist_ok=True)
    for stage in args.only.split(","):  # <model>:<ppl|mc>; healed models are healed on first use
        name, what = stage.split(":")
        entry = results.setdefault(name, {})
        if name in ("dense", "pruned"):
            lm, drop = load_model(args.model, device="cpu"), (removed if name == "pruned" else ())
        else:
            out = args.work / f"healed-{name}"
            if not (out / "config.json").is_file():
                entry.update(_heal(args, removed, name, out))
            lm, drop = load_model(str(out), device="cpu"), ()  # the exported, physically pruned checkpoint
        entry.update(_ppl(lm, drop, args) if what == "ppl" else _mc(lm, drop, args))
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(
            f"{stage:>12}: "
            + "  ".join(f"{k} {entry[k]:.4f}" for k in ("wikitext2_ppl", "mean_acc", "heal_seconds") if k in entry),
            flush=True,
        )


if __name__ == "__main__":
    main()
