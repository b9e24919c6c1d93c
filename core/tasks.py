"""Benchmark tasks as data: one record per task — where it comes from (files under `--data-dir`, the
hub dataset lm-eval uses), how its rows map to `Question`s, its metrics and the one it is averaged by.

Multiple-choice rows become neutral `Question`s, rendered by the prompt table (`core/prompts.py`)
into exactly the strings lm-evaluation-harness 0.4.x scores. Perplexity tasks become one text,
joined with "\\n\\n" (the GPTQ-style convention).

Sources: `--data-dir DIR` in the layout of the project's shared data folder (see SOURCES.md there),
or, without it, the hub through `datasets` with the ids lm-eval uses. `demo-text` and `demo-mc` are
the built-in pack (core/data, CC0), which needs neither.
"""

from __future__ import annotations

import bz2
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .prompts import MCItem, Question, render, winogrande_item
from .readers import builtin_file, read_jsonl, read_labels, read_text

__all__ = ["TASKS", "ChoiceTask", "MCItem", "TextTask", "get_task", "winogrande_item"]


@dataclass(frozen=True)
class TextTask:
    """A perplexity benchmark: `read` gives its text (from `--data-dir` files, else the hub)."""

    name: str
    read: Callable[[Path | None], str]
    files: tuple[str, ...] = ()  # what it reads under --data-dir
    kind = "ppl"

    def load(self, data_dir: Path | None) -> str:
        return self.read(data_dir)

    def paths(self, data_dir: Path | None) -> set[Path]:
        return {(data_dir / f).resolve() for f in self.files} if data_dir else set()


@dataclass(frozen=True)
class ChoiceTask:
    """A zero-shot multiple-choice benchmark: `read` maps its rows to Questions; `metrics` are those
    lm-eval reports; `primary` is the one used in averages (the seed paper's convention: acc_norm for
    HellaSwag and ARC-Challenge)."""

    name: str
    read: Callable[[Path | None], list[Question]]
    metrics: tuple[str, ...]
    primary: str
    files: tuple[str, ...] = ()
    kind = "mc"

    def load(self, data_dir: Path | None) -> list[MCItem]:
        """The items exactly as lm-eval scores them."""
        return [render(q) for q in self.read(data_dir)]

    def paths(self, data_dir: Path | None) -> set[Path]:
        return {(data_dir / f).resolve() for f in self.files} if data_dir else set()


Task = TextTask | ChoiceTask


def _data_file(data_dir: Path | None, relative: str) -> Path | None:
    return None if data_dir is None else data_dir / relative


def _hub(path: str, name: str | None, split: str, task: str):
    """A hub split through `datasets` (lm-eval's dataset ids); a UserError when unreachable."""
    from .hub import hub_dataset

    return hub_dataset(path, name, split, task=task)


# -- perplexity texts --------------------------------------------------------------------------


def wikitext_rows(text: str) -> list[str]:
    """The Hugging Face `wikitext-2-raw-v1` rows of the raw file (blank lines " \\n" become "")."""
    return [line if line.strip() else "" for line in io.StringIO(text, newline="")]


def _wikitext2(data_dir) -> str:
    path = _data_file(data_dir, "wikitext2/wiki.test.raw")
    rows = (
        wikitext_rows(read_text(path, "--data-dir"))
        if path
        else _hub("wikitext", "wikitext-2-raw-v1", "test", "wikitext2")["text"]
    )
    return "\n\n".join(rows)


def lambada_text(data_dir) -> str:
    path = _data_file(data_dir, "lambada_openai/lambada_test.jsonl")
    rows = (
        [r["text"] for r in read_jsonl(path, "--data-dir", ("text",))]
        if path
        else _hub("EleutherAI/lambada_openai", "default", "test", "lambada")["text"]
    )
    return "\n\n".join(rows)


def _c4(data_dir) -> str:
    """GPTQ's C4 evaluation text: the first 1100 documents of the en validation shard 0, joined by " "."""
    shard = "c4-validation.00000-of-00008.json.gz"
    path = _data_file(data_dir, f"c4/{shard}")
    if path is not None:
        import gzip
        import json

        if not path.is_file():
            raise UserError(f"data file {str(path)!r} (from --data-dir) not found")
        with gzip.open(path, "rt", encoding="utf-8") as f:
            docs = [json.loads(line)["text"] for _, line in zip(range(1100), f)]
    else:
        from .c4 import VALIDATION_SHARD, shard_texts

        docs = shard_texts(VALIDATION_SHARD, what="task 'c4'", source="--tasks")[:1100]
    return " ".join(docs)


def _demo_text(_data_dir) -> str:
    return read_text(builtin_file("heldout.txt"), "built-in data")


# -- multiple choice -----------------------------------------------------------------------------


def _arc(split_dir: str, file: str, hub_name: str, task: str) -> Callable[[Path | None], list[Question]]:
    def load(data_dir) -> list[Question]:
        path = _data_file(data_dir, f"{split_dir}/{file}")
        rows = (
            read_jsonl(path, "--data-dir", ("question", "answerKey"))
            if path
            else _hub("allenai/ai2_arc", hub_name, "test", task)
        )
        items = []
        for n, row in enumerate(rows, start=1):
            q = row["question"]
            try:
                if isinstance(q, dict):  # original ARC schema: question.stem, question.choices[{text,label}]
                    texts, labels, stem = (
                        [c["text"] for c in q["choices"]],
                        [c["label"] for c in q["choices"]],
                        q["stem"],
                    )
                else:  # Hugging Face schema
                    texts, labels, stem = list(row["choices"]["text"]), list(row["choices"]["label"]), q
                gold = labels.index(row["answerKey"])
            except (KeyError, TypeError, ValueError):
                raise UserError(
                    f"{path or 'hub allenai/ai2_arc'}: item {n} of {task} is not an ARC question with its "
                    f"answer key {row.get('answerKey')!r} among the choice labels (from --data-dir)"
                ) from None
            items.append(Question(str(row.get("id", f"{task}-{n}")), "arc", stem, tuple(texts), gold))
        return items

    return load


def _piqa(data_dir) -> list[Question]:
    path = _data_file(data_dir, "piqa/valid.jsonl")
    if path:
        rows = read_jsonl(path, "--data-dir", ("goal", "sol1", "sol2"))
        labels = read_labels(path.with_name("valid-labels.lst"), "--data-dir", len(rows))
    else:
        rows = _hub("baber/piqa", None, "validation", "piqa")
        labels = [r["label"] for r in rows]
    return [
        Question(f"piqa-{i}", "piqa", r["goal"], (r["sol1"], r["sol2"]), y)
        for i, (r, y) in enumerate(zip(rows, labels))
    ]


def hellaswag_preprocess(text: str) -> str:
    """lm-eval's HellaSwag cleaning: strip, " [title]" -> ". ", drop [bracketed] tags, collapse double spaces."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(data_dir) -> list[Question]:
    """From the llama.cpp text form (6 lines a task: "activity_label: ctx", gold, 4 endings) or the hub.

    The text form joined ctx_a and ctx_b without lm-eval's `ctx_b.capitalize()`, so a context whose
    ctx_b starts lower-case differs from lm-eval's by that one letter; the hub path is exact."""
    path = _data_file(data_dir, "hellaswag/hellaswag_val_full.txt.bz2")
    items = []
    if path:
        if not path.is_file():
            raise UserError(f"data file {str(path)!r} (from --data-dir) not found")
        with bz2.open(path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) % 6:
            raise UserError(f"{path}: {len(lines)} lines, expected a multiple of 6 (from --data-dir)")
        for start in range(0, len(lines), 6):
            ctx, gold, *endings = lines[start : start + 6]
            if not gold.strip().isdigit():
                raise UserError(f"{path}:{start + 2}: expected the gold label 0-3, got {gold!r} (from --data-dir)")
            items.append(
                Question(
                    f"hellaswag-{start // 6}",
                    "hellaswag",
                    hellaswag_preprocess(ctx),
                    tuple(hellaswag_preprocess(e) for e in endings),
                    int(gold),
                )
            )
        return items
    for n, r in enumerate(_hub("Rowan/hellaswag", None, "validation", "hellaswag")):
        ctx = r["ctx_a"] + " " + r["ctx_b"].capitalize()
        items.append(
            Question(
                f"hellaswag-{n}",
                "hellaswag",
                hellaswag_preprocess(r["activity_label"] + ": " + ctx),
                tuple(hellaswag_preprocess(e) for e in r["endings"]),
                int(r["label"]),
            )
        )
    return items


def _winogrande(data_dir) -> list[Question]:
    path = _data_file(data_dir, "winogrande/dev.jsonl")
    rows = (
        read_jsonl(path, "--data-dir", ("sentence", "option1", "option2", "answer"))
        if path
        else _hub("allenai/winogrande", "winogrande_xl", "validation", "winogrande")
    )
    return [
        Question(f"winogrande-{i}", "winogrande", r["sentence"], (r["option1"], r["option2"]), int(r["answer"]) - 1)
        for i, r in enumerate(rows)
    ]


def _boolq(data_dir) -> list[Question]:
    path = _data_file(data_dir, "boolq/val.jsonl")
    rows = (
        read_jsonl(path, "--data-dir", ("question", "passage", "label"))
        if path
        else _hub("aps/super_glue", "boolq", "validation", "boolq")
    )
    return [
        Question(
            f"boolq-{i}",
            "boolq",
            r["question"],
            ("True", "False"),
            0 if r["label"] in (1, True, "true", "True") else 1,
            context=r["passage"],
        )
        for i, r in enumerate(rows)
    ]


def _openbookqa(data_dir) -> list[Question]:
    path = _data_file(data_dir, "openbookqa/test.tsv")
    items = []
    if path:
        text = read_text(path, "--data-dir")
        for lineno, row in enumerate(csv.DictReader(io.StringIO(text), delimiter="\t"), start=2):
            try:
                choices = [c.strip() for c in re.split(r"\s*\(([A-D])\)\s*", row["Choices"])[2::2]]
                items.append(
                    Question(
                        row.get("ID") or f"openbookqa-{lineno}",
                        "obqa",
                        row["Question Stem"],
                        tuple(choices),
                        "ABCD".index(row["Answer Key"].strip()),
                    )
                )
            except (KeyError, ValueError, AttributeError):
                raise UserError(f"{path}:{lineno}: not an OpenBookQA row (from --data-dir)") from None
        return items
    for r in _hub("allenai/openbookqa", "main", "test", "openbookqa"):
        items.append(
            Question(
                r["id"], "obqa", r["question_stem"], tuple(r["choices"]["text"]), "ABCD".index(r["answerKey"].strip())
            )
        )
    return items


def demo_questions(split: str) -> list[Question]:
    """The built-in commonsense questions (core/data/mc.jsonl) of one split ("calib" or "eval")."""
    rows = read_jsonl(builtin_file("mc.jsonl"), "built-in data", ("id", "question", "choices", "label", "split"))
    return [
        Question(r["id"], "demo", r["question"], tuple(r["choices"]), r["label"]) for r in rows if r["split"] == split
    ]


def demo_items(split: str) -> list[MCItem]:
    """The built-in questions of one split as lm-eval scores them (prompted like PIQA/ARC)."""
    return [render(q) for q in demo_questions(split)]


_ALL: list[Task] = [
    TextTask("wikitext2", _wikitext2, ("wikitext2/wiki.test.raw",)),
    TextTask("c4", _c4, ("c4/c4-validation.00000-of-00008.json.gz",)),
    TextTask("lambada", lambada_text, ("lambada_openai/lambada_test.jsonl",)),
    TextTask("demo-text", _demo_text),
    ChoiceTask(
        "arc_easy",
        _arc("arc_easy", "ARC-Easy-Test.jsonl", "ARC-Easy", "arc_easy"),
        ("acc", "acc_norm"),
        "acc",
        ("arc_easy/ARC-Easy-Test.jsonl",),
    ),
    ChoiceTask(
        "arc_challenge",
        _arc("arc_challenge", "ARC-Challenge-Test.jsonl", "ARC-Challenge", "arc_challenge"),
        ("acc", "acc_norm"),
        "acc_norm",
        ("arc_challenge/ARC-Challenge-Test.jsonl",),
    ),
    ChoiceTask("piqa", _piqa, ("acc", "acc_norm"), "acc", ("piqa/valid.jsonl",)),
    ChoiceTask("hellaswag", _hellaswag, ("acc", "acc_norm"), "acc_norm", ("hellaswag/hellaswag_val_full.txt.bz2",)),
    ChoiceTask("winogrande", _winogrande, ("acc",), "acc", ("winogrande/dev.jsonl",)),
    ChoiceTask("boolq", _boolq, ("acc",), "acc", ("boolq/val.jsonl",)),
    ChoiceTask("openbookqa", _openbookqa, ("acc", "acc_norm"), "acc", ("openbookqa/test.tsv",)),
    ChoiceTask("demo-mc", lambda _d: demo_questions("eval"), ("acc", "acc_norm"), "acc"),
]
TASKS: dict[str, Task] = {t.name: t for t in _ALL}


def get_task(name: str, source: str = "--tasks") -> Task:
    if name not in TASKS:
        raise UserError(f"unknown task {name!r} (from {source}); available: {', '.join(TASKS)}")
    return TASKS[name]
