"""Benchmark tasks as data: where each comes from and how lm-evaluation-harness 0.4.x prompts it.

Multiple-choice tasks become `MCItem`s — per choice a (context, continuation) request, exactly the
strings lm-eval builds (`doc_to_text`, target delimiter " ", `doc_to_choice`); WinoGrande is a
multiple-input task (the context varies, the continuation is shared: partial scoring). Perplexity
tasks become one text, joined with "\\n\\n" (the GPTQ-style convention).

Sources: `--data-dir DIR` in the layout of the project's shared data folder (see SOURCES.md there),
or, without it, the hub through `datasets` with the ids lm-eval uses. `demo-text` and `demo-mc` are
the built-in pack (core/data, CC0), which needs neither.
"""

from __future__ import annotations

import bz2
import csv
import io
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from .errors import UserError
from .readers import read_jsonl, read_labels, read_text


@dataclass(frozen=True)
class MCItem:
    """One question: per choice the context and the continuation lm-eval scores, the gold index, and
    the character length of each choice string (the acc_norm divisor; delimiter excluded)."""

    contexts: tuple[str, ...]
    continuations: tuple[str, ...]
    gold: int
    choice_lengths: tuple[int, ...]


def mc_item(context: str, choices: list[str], gold: int) -> MCItem:
    """A single-context item: continuation = " " + choice (lm-eval's default target delimiter)."""
    return MCItem(tuple([context] * len(choices)), tuple(" " + c for c in choices), gold, tuple(len(c) for c in choices))


@dataclass(frozen=True)
class Task:
    """A benchmark: `kind` is "ppl" (a text) or "mc" (items); `metrics` are those lm-eval reports;
    `primary` is the metric used in averages (paper convention: acc_norm for HellaSwag and ARC-Challenge)."""

    name: str
    kind: str
    load: Callable[[Path | None], object]
    metrics: tuple[str, ...] = ()
    primary: str = ""
    files: tuple[str, ...] = ()  # what it reads under --data-dir

    def paths(self, data_dir: Path | None) -> set[Path]:
        return {(data_dir / f).resolve() for f in self.files} if data_dir else set()


def _data_file(data_dir: Path | None, relative: str) -> Path | None:
    return None if data_dir is None else data_dir / relative


def _hub(path: str, name: str | None, split: str, task: str):
    """A hub split through `datasets` (lm-eval's dataset ids); a UserError when unreachable."""
    from .hub import hub_dataset

    return hub_dataset(path, name, split, task=task)


def _builtin(name: str) -> Path:
    return Path(str(resources.files("depthprune.core") / "data" / name))


# -- perplexity texts --------------------------------------------------------------------------

def wikitext_rows(text: str) -> list[str]:
    """The Hugging Face `wikitext-2-raw-v1` rows of the raw file (blank lines " \\n" become "")."""
    return [line if line.strip() else "" for line in io.StringIO(text, newline="")]


def _wikitext2(data_dir):
    path = _data_file(data_dir, "wikitext2/wiki.test.raw")
    rows = wikitext_rows(read_text(path, "--data-dir")) if path else _hub("wikitext", "wikitext-2-raw-v1", "test", "wikitext2")["text"]
    return "\n\n".join(rows)


def _lambada(data_dir):
    path = _data_file(data_dir, "lambada_openai/lambada_test.jsonl")
    rows = [r["text"] for r in read_jsonl(path, "--data-dir", ("text",))] if path else \
        _hub("EleutherAI/lambada_openai", "default", "test", "lambada")["text"]
    return "\n\n".join(rows)


def _c4(data_dir):
    """GPTQ's C4 evaluation text: the first 1100 documents of the en validation shard 0, joined by " "."""
    shard = "c4-validation.00000-of-00008.json.gz"
    path = _data_file(data_dir, f"c4/{shard}")
    if path is not None:
        import gzip, json

        if not path.is_file():
            raise UserError(f"data file {str(path)!r} (from --data-dir) not found")
        with gzip.open(path, "rt", encoding="utf-8") as f:
            docs = [json.loads(line)["text"] for _, line in zip(range(1100), f)]
    else:
        from .c4 import VALIDATION_SHARD, shard_texts

        docs = shard_texts(VALIDATION_SHARD, what="task 'c4'", source="--tasks")[:1100]
    return " ".join(docs)


def _demo_text(_data_dir):
    return read_text(_builtin("heldout.txt"), "built-in data")


# -- multiple choice -----------------------------------------------------------------------------

def _arc(split_dir: str, file: str, hub_name: str, task: str):
    def load(data_dir):
        path = _data_file(data_dir, f"{split_dir}/{file}")
        rows = read_jsonl(path, "--data-dir", ("question", "answerKey")) if path else _hub("allenai/ai2_arc", hub_name, "test", task)
        items = []
        for n, row in enumerate(rows, start=1):
            q = row["question"]
            try:
                if isinstance(q, dict):  # original ARC schema: question.stem, question.choices[{text,label}]
                    texts, labels, stem = [c["text"] for c in q["choices"]], [c["label"] for c in q["choices"]], q["stem"]
                else:  # Hugging Face schema
                    texts, labels, stem = list(row["choices"]["text"]), list(row["choices"]["label"]), q
                gold = labels.index(row["answerKey"])
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{path or 'hub allenai/ai2_arc'}: item {n} of {task} is not an ARC question with its "
                                f"answer key {row.get('answerKey')!r} among the choice labels (from --data-dir)") from None
            items.append(mc_item(f"Question: {stem}\nAnswer:", texts, gold))
        return items

    return load


def _piqa(data_dir):
    path = _data_file(data_dir, "piqa/valid.jsonl")
    if path:
        rows = read_jsonl(path, "--data-dir", ("goal", "sol1", "sol2"))
        labels = read_labels(path.with_name("valid-labels.lst"), "--data-dir", len(rows))
    else:
        rows = _hub("baber/piqa", None, "validation", "piqa")
        labels = [r["label"] for r in rows]
    return [mc_item(f"Question: {r['goal']}\nAnswer:", [r["sol1"], r["sol2"]], y) for r, y in zip(rows, labels)]


def hellaswag_preprocess(text: str) -> str:
    """lm-eval's HellaSwag cleaning: strip, " [title]" -> ". ", drop [bracketed] tags, collapse double spaces."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(data_dir):
    """From the llama.cpp text form (6 lines a task: "activity_label: ctx", gold, 4 endings) or the hub.

    The text form joined ctx_a and ctx_b without lm-eval's `ctx_b.capitalize()`, so a context whose
    ctx_b starts lower-case differs from lm-eval's by that one letter; the hub path is exact."""
    path = _data_file(data_dir, "hellaswag/hellaswag_val_full.txt.bz2")
    items = []
    if path:
        if not path.is_file():
            raise UserError(f"data file {str(path)!r} (from --data-dir) not found")
        lines = bz2.open(path, "rt", encoding="utf-8").read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) % 6:
            raise UserError(f"{path}: {len(lines)} lines, expected a multiple of 6 (from --data-dir)")
        for start in range(0, len(lines), 6):
            ctx, gold, *endings = lines[start : start + 6]
            if not gold.strip().isdigit():
                raise UserError(f"{path}:{start + 2}: expected the gold label 0-3, got {gold!r} (from --data-dir)")
            items.append(mc_item(hellaswag_preprocess(ctx), [hellaswag_preprocess(e) for e in endings], int(gold)))
        return items
    for r in _hub("Rowan/hellaswag", None, "validation", "hellaswag"):
        ctx = r["ctx_a"] + " " + r["ctx_b"].capitalize()
        items.append(mc_item(hellaswag_preprocess(r["activity_label"] + ": " + ctx),
                             [hellaswag_preprocess(e) for e in r["endings"]], int(r["label"])))
    return items


def winogrande_item(sentence: str, options: list[str], gold: int) -> MCItem:
    """lm-eval's partial scoring: context = sentence up to "_" with the option filled in; the shared
    continuation is " " + the rest of the sentence."""
    cut = sentence.index("_")
    rest = " " + sentence[cut + 1 :].strip()
    return MCItem(tuple(sentence[:cut] + o for o in options), (rest,) * len(options), gold,
                  (len(rest) - 1,) * len(options))


def _winogrande(data_dir):
    path = _data_file(data_dir, "winogrande/dev.jsonl")
    rows = read_jsonl(path, "--data-dir", ("sentence", "option1", "option2", "answer")) if path else \
        _hub("allenai/winogrande", "winogrande_xl", "validation", "winogrande")
    return [winogrande_item(r["sentence"], [r["option1"], r["option2"]], int(r["answer"]) - 1) for r in rows]


def _boolq(data_dir):
    path = _data_file(data_dir, "boolq/val.jsonl")
    rows = read_jsonl(path, "--data-dir", ("question", "passage", "label")) if path else \
        _hub("aps/super_glue", "boolq", "validation", "boolq")
    return [mc_item(f"{r['passage']}\nQuestion: {r['question']}?\nAnswer:", ["no", "yes"],
                    int(r["label"] in (1, True, "true", "True"))) for r in rows]


def _openbookqa(data_dir):
    path = _data_file(data_dir, "openbookqa/test.tsv")
    items = []
    if path:
        text = read_text(path, "--data-dir")
        for lineno, row in enumerate(csv.DictReader(io.StringIO(text), delimiter="\t"), start=2):
            try:
                choices = [c.strip() for c in re.split(r"\s*\(([A-D])\)\s*", row["Choices"])[2::2]]
                items.append(mc_item(row["Question Stem"], choices, "ABCD".index(row["Answer Key"].strip())))
            except (KeyError, ValueError, AttributeError):
                raise UserError(f"{path}:{lineno}: not an OpenBookQA row (from --data-dir)") from None
        return items
    for r in _hub("allenai/openbookqa", "main", "test", "openbookqa"):
        items.append(mc_item(r["question_stem"], list(r["choices"]["text"]), "ABCD".index(r["answerKey"].strip())))
    return items


def demo_items(split: str) -> list[MCItem]:
    """The built-in commonsense items (core/data/mc.jsonl) of one split, prompted like PIQA/ARC."""
    rows = read_jsonl(_builtin("mc.jsonl"), "built-in data", ("question", "choices", "label", "split"))
    return [mc_item(f"Question: {r['question']}\nAnswer:", r["choices"], r["label"]) for r in rows if r["split"] == split]


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("wikitext2", "ppl", _wikitext2, files=("wikitext2/wiki.test.raw",)),
        Task("c4", "ppl", _c4, files=("c4/c4-validation.00000-of-00008.json.gz",)),
        Task("lambada", "ppl", _lambada, files=("lambada_openai/lambada_test.jsonl",)),
        Task("demo-text", "ppl", _demo_text),
        Task("arc_easy", "mc", _arc("arc_easy", "ARC-Easy-Test.jsonl", "ARC-Easy", "arc_easy"), ("acc", "acc_norm"), "acc",
             ("arc_easy/ARC-Easy-Test.jsonl",)),
        Task("arc_challenge", "mc", _arc("arc_challenge", "ARC-Challenge-Test.jsonl", "ARC-Challenge", "arc_challenge"),
             ("acc", "acc_norm"), "acc_norm", ("arc_challenge/ARC-Challenge-Test.jsonl",)),
        Task("piqa", "mc", _piqa, ("acc", "acc_norm"), "acc", ("piqa/valid.jsonl",)),
        Task("hellaswag", "mc", _hellaswag, ("acc", "acc_norm"), "acc_norm", ("hellaswag/hellaswag_val_full.txt.bz2",)),
        Task("winogrande", "mc", _winogrande, ("acc",), "acc", ("winogrande/dev.jsonl",)),
        Task("boolq", "mc", _boolq, ("acc",), "acc", ("boolq/val.jsonl",)),
        Task("openbookqa", "mc", _openbookqa, ("acc", "acc_norm"), "acc", ("openbookqa/test.tsv",)),
        Task("demo-mc", "mc", lambda _d: demo_items("eval"), ("acc", "acc_norm"), "acc"),
    ]
}


def get_task(name: str, source: str = "--tasks") -> Task:
    if name not in TASKS:
        raise UserError(f"unknown task {name!r} (from {source}); available: {', '.join(TASKS)}")
    return TASKS[name]
