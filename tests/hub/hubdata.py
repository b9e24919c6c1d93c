"""The offline Hugging Face cache of the hub tests (layout: tests/hubcache.py), built from
../shared/data in the hub schema of each dataset — field names and types as on the hub, the repo ids
and configs lm-eval's task YAMLs name — plus two revisions of a `tiny:llama` model saved with
`save_pretrained`."""

from __future__ import annotations

import bz2
import csv
import io
import json
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hubcache

MODEL_REPO = "depthprune-test/tiny-llama"
MODEL_MAIN = hubcache.commit_of(MODEL_REPO, "main")
MODEL_OLD = hubcache.commit_of(MODEL_REPO, "old")
C4_COMMIT = hubcache.commit_of("allenai/c4")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _features():
    from datasets import ClassLabel, Features, List, Value

    s, choices = Value("string"), {"text": List(Value("string")), "label": List(Value("string"))}
    return {
        "arc": Features({"id": s, "question": s, "choices": choices, "answerKey": s}),
        "piqa": Features({"goal": s, "sol1": s, "sol2": s, "label": Value("int64")}),
        "winogrande": Features({"sentence": s, "option1": s, "option2": s, "answer": s}),
        "hellaswag": Features(
            {
                "ind": Value("int32"),
                "activity_label": s,
                "ctx_a": s,
                "ctx_b": s,
                "ctx": s,
                "endings": List(s),
                "source_id": s,
                "split": s,
                "split_type": s,
                "label": s,
            }
        ),
        "boolq": Features(
            {"question": s, "passage": s, "idx": Value("int32"), "label": ClassLabel(names=["False", "True"])}
        ),
        "openbookqa": Features({"id": s, "question_stem": s, "choices": choices, "answerKey": s}),
        "text": Features({"text": s}),
        "cs170k": Features({"instruction": s, "input": s, "output": s, "answer": s}),
    }


def _arc_rows(path: Path) -> list[dict]:
    """Original ARC jsonl (question.stem, question.choices) -> the hub's ai2_arc rows."""
    return [
        {
            "id": r["id"],
            "question": r["question"]["stem"],
            "answerKey": r["answerKey"],
            "choices": {
                "text": [c["text"] for c in r["question"]["choices"]],
                "label": [c["label"] for c in r["question"]["choices"]],
            },
        }
        for r in _jsonl(path)
    ]


def _hellaswag_rows(path: Path) -> list[dict]:
    """llama.cpp's text form -> Rowan/hellaswag rows. The form lost the ctx_a/ctx_b split, so the whole
    context is ctx_a and ctx_b is empty; source_id and split_type are lost too (empty here)."""
    with bz2.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    rows = []
    for k in range(len(lines) // 6):
        ctx, gold, *endings = lines[6 * k : 6 * k + 6]
        label, rest = ctx.split(": ", 1)
        rows.append(
            {
                "ind": k,
                "activity_label": label,
                "ctx_a": rest,
                "ctx_b": "",
                "ctx": rest,
                "endings": endings,
                "source_id": "",
                "split": "val",
                "split_type": "",
                "label": gold,
            }
        )
    return rows


def _openbookqa_rows(path: Path) -> list[dict]:
    rows = []
    for r in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")), delimiter="\t"):
        texts = [t.strip() for t in re.split(r"\s*\(([A-D])\)\s*", r["Choices"])[2::2]]
        rows.append(
            {
                "id": r["ID"],
                "question_stem": r["Question Stem"],
                "answerKey": r["Answer Key"],
                "choices": {"text": texts, "label": list("ABCD")[: len(texts)]},
            }
        )
    return rows


def build_cache(hf_home: Path, data_dir: Path) -> None:
    from depthprune.core.tasks import wikitext_rows
    from depthprune.core.tiny import build_tiny

    f = _features()
    d = data_dir
    hubcache.write_dataset(
        hf_home,
        "allenai/ai2_arc",
        {
            "ARC-Easy": {"test": _arc_rows(d / "arc_easy/ARC-Easy-Test.jsonl")},
            "ARC-Challenge": {"test": _arc_rows(d / "arc_challenge/ARC-Challenge-Test.jsonl")},
        },
        f["arc"],
    )
    piqa = [
        r | {"label": int(y)}
        for r, y in zip(_jsonl(d / "piqa/valid.jsonl"), (d / "piqa/valid-labels.lst").read_text().split())
    ]
    hubcache.write_dataset(hf_home, "baber/piqa", {None: {"validation": piqa}}, f["piqa"])
    wino = [{k: r[k] for k in ("sentence", "option1", "option2", "answer")} for r in _jsonl(d / "winogrande/dev.jsonl")]
    hubcache.write_dataset(hf_home, "allenai/winogrande", {"winogrande_xl": {"validation": wino}}, f["winogrande"])
    hubcache.write_dataset(
        hf_home,
        "Rowan/hellaswag",
        {None: {"validation": _hellaswag_rows(d / "hellaswag/hellaswag_val_full.txt.bz2")}},
        f["hellaswag"],
    )
    boolq = [
        {"question": r["question"], "passage": r["passage"], "idx": r["idx"], "label": int(r["label"] == "true")}
        for r in _jsonl(d / "boolq/val.jsonl")
    ]
    hubcache.write_dataset(hf_home, "aps/super_glue", {"boolq": {"validation": boolq}}, f["boolq"])
    hubcache.write_dataset(
        hf_home, "allenai/openbookqa", {"main": {"test": _openbookqa_rows(d / "openbookqa/test.tsv")}}, f["openbookqa"]
    )
    wiki = [{"text": t} for t in wikitext_rows((d / "wikitext2/wiki.test.raw").read_text(encoding="utf-8"))]
    hubcache.write_dataset(hf_home, "wikitext", {"wikitext-2-raw-v1": {"test": wiki}}, f["text"])
    lambada = _jsonl(d / "lambada_openai/lambada_test.jsonl")
    hubcache.write_dataset(hf_home, "EleutherAI/lambada_openai", {"default": {"test": lambada}}, f["text"])
    cs170k = [
        r
        for task in ("ARC-Challenge", "ARC-Easy", "boolq", "openbookqa")
        for r in json.loads((d / f"llm_adapters/{task}/train.json").read_text(encoding="utf-8"))
    ]
    hubcache.write_dataset(hf_home, "zwhe99/commonsense_170k", {None: {"train": cs170k}}, f["cs170k"])
    # C4 itself is not in the offline folder: its shards here hold LAMBADA passages in C4's JSON-lines form.
    docs = [
        {"text": r["text"], "timestamp": "2019-04-25T12:57:54Z", "url": f"https://example.org/lambada/{i}"}
        for i, r in enumerate(lambada)
    ]
    hubcache.write_jsonl_gz(
        hf_home / "hub",
        "allenai/c4",
        {"en/c4-train.00000-of-01024.json.gz": docs[:2000], "en/c4-validation.00000-of-00008.json.gz": docs[2000:3200]},
        C4_COMMIT,
    )
    model, tokenizer = build_tiny("tiny:llama")
    hubcache.write_model(hf_home / "hub", MODEL_REPO, model, tokenizer, MODEL_MAIN)
    with torch.no_grad():  # an older revision: other weights, no branch pointing at it
        for p in model.parameters():
            p.mul_(0.5)
    hubcache.write_model(hf_home / "hub", MODEL_REPO, model, tokenizer, MODEL_OLD, branch=None)


def offline_env(hf_home: Path) -> dict[str, str]:
    return {
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HF_DATASETS_CACHE": str(hf_home / "datasets"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
