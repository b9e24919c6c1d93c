"""Calibration data for objectives: text for `ppl`/`kl`, questions for `margin`/`acc`.

Sources (`--calib`): `demo` (the built-in pack's calibration half), a local `.txt` (text) or `.jsonl`
(questions: {"question", "choices", "label"}) file, `lambada` (text; needs --data-dir), and for
questions `commonsense` — the training splits of the Commonsense-170k task mix found in --data-dir
(ARC-Easy/Challenge, OpenBookQA, Social IQa, WinoGrande, BoolQ questions; PIQA and HellaSwag train
are not in the offline folder) or, without --data-dir, the full mixture from the hub
(`zwhe99/commonsense_170k`) — or one part by name. `c4` draws random windows
(core/c4.py). Every source records an id, so a run can
name exactly which items it used and detect overlap with evaluation data.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import zipfile
from pathlib import Path

from .errors import UserError
from .prompts import Question
from .readers import builtin_file, read_jsonl, read_text
from .tasks import demo_questions, get_task, lambada_text

__all__ = ["COMMONSENSE_PARTS", "Question", "calibration_questions", "calibration_text", "overlapping_tasks"]


def calibration_text(source: str, data_dir: Path | None) -> tuple[str, str]:
    """(text, source id) for token-level objectives."""
    if source == "demo":
        return read_text(builtin_file("calib.txt"), "built-in data"), "demo:calib.txt"
    if source == "lambada":
        path = _need(data_dir, source) / "lambada_openai" / "lambada_test.jsonl"
        return lambada_text(data_dir), f"file:{path.resolve()}"
    path = Path(source)
    if path.suffix in (".txt", ".md") or path.is_file():
        return read_text(path, "--calib"), f"file:{path.resolve()}"
    raise UserError(f"unknown text calibration source {source!r} (from --calib); use demo, c4, lambada or a .txt file")


def calibration_token_windows(
    source: str, tokenizer, n_windows: int, seq_len: int, seed: int
) -> tuple[list[list[int]], str] | None:
    """(token windows, source id) for sources drawn as random windows (`c4`, see core/c4.py); None for
    sources that are one text cut into consecutive windows (`calibration_text`)."""
    if source != "c4":
        return None
    from .c4 import REPO, TRAIN_SHARD, calibration_windows

    windows = calibration_windows(tokenizer, n_windows, seq_len, seed)
    return windows, f"hub:{REPO}:{TRAIN_SHARD}:random-windows:seed={seed}"


def _need(data_dir: Path | None, source: str) -> Path:
    if data_dir is None:
        raise UserError(f"calibration source {source!r} (from --calib) reads the official files: pass --data-dir")
    return data_dir


def _arc_train(data_dir: Path, name: str, file: str) -> list[Question]:
    path = data_dir / name / file
    out = []
    for i, r in enumerate(read_jsonl(path, "--data-dir", ("id", "question", "choices", "answerKey")), start=1):
        try:
            out.append(
                Question(
                    r["id"],
                    "arc",
                    r["question"],
                    tuple(r["choices"]["text"]),
                    list(r["choices"]["label"]).index(r["answerKey"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            raise UserError(
                f"{path}: row {i} is not an ARC question with its answer among the choices (from --data-dir)"
            ) from None
    return out


def _obqa_train(data_dir: Path) -> list[Question]:
    path = data_dir / "openbookqa" / "train.tsv"
    out = []
    for lineno, r in enumerate(csv.DictReader(io.StringIO(read_text(path, "--data-dir")), delimiter="\t"), start=2):
        pieces = re.split(r"\s*\(([A-D])\)\s*", r["Choices"])[1:]
        choices: dict[str, str] = {}
        for label, text in zip(pieces[::2], pieces[1::2]):  # a repeated marker joins onto the earlier choice
            choices[label] = (choices[label] + f" ({label}) " + text) if label in choices else text.strip()
        try:
            out.append(
                Question(
                    r["ID"],
                    "obqa",
                    r["Question Stem"],
                    tuple(choices.values()),
                    list(choices).index(r["Answer Key"].strip()),
                )
            )
        except ValueError:
            raise UserError(f"{path}:{lineno}: answer key not among the choices (from --data-dir)") from None
    return out


def _siqa_train(data_dir: Path) -> list[Question]:
    path = data_dir / "siqa" / "socialiqa-train-dev.zip"
    if not path.is_file():
        raise UserError(f"data file {str(path)!r} (from --data-dir) not found")
    try:
        with zipfile.ZipFile(path) as z:
            rows = [
                json.loads(line) for line in z.read("socialiqa-train-dev/train.jsonl").decode().splitlines() if line
            ]
            labels = [int(x) for x in z.read("socialiqa-train-dev/train-labels.lst").decode().split()]
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UserError(
            f"{path}: not the Social IQa train/dev archive ({type(exc).__name__}) (from --data-dir)"
        ) from None
    return [
        Question(
            f"siqa-train-{i}",
            "siqa",
            f"{r['context']} {r['question']}",
            (r["answerA"], r["answerB"], r["answerC"]),
            y - 1,
        )
        for i, (r, y) in enumerate(zip(rows, labels))
    ]


def _winogrande_train(data_dir: Path) -> list[Question]:
    rows = read_jsonl(
        data_dir / "winogrande" / "train_l.jsonl", "--data-dir", ("qID", "sentence", "option1", "option2", "answer")
    )
    return [
        Question(r["qID"], "winogrande", r["sentence"], (r["option1"], r["option2"]), int(r["answer"]) - 1)
        for r in rows
    ]


def _boolq_train(data_dir: Path) -> list[Question]:
    """LLM-Adapters' BoolQ rows (question only, as in Commonsense-170k)."""
    path = data_dir / "llm_adapters" / "boolq" / "train.json"
    try:
        rows = json.loads(read_text(path, "--data-dir"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON (from --data-dir)") from None
    out = []
    for i, r in enumerate(rows):
        q = r["instruction"].split("question:", 1)[-1].split("\n\nAnswer format:", 1)[0].strip().rstrip("?")
        out.append(Question(f"boolq-train-{i}", "boolq", q, ("True", "False"), 0 if r["answer"] == "true" else 1))
    return out


COMMONSENSE_170K = "zwhe99/commonsense_170k"  # LLM-Adapters' commonsense_170k.json on the hub (train split)
_CHOICE_TASKS = {"Answer": "arc", "Solution": "piqa", "Ending": "hellaswag", "Option": "winogrande"}


def commonsense_170k_question(row: dict, index: int) -> Question:
    """One LLM-Adapters instruction row as a neutral question: the stem after "Please ...: ", the
    choices marked `Answer1:`/`Solution1:`/`Ending1:`/`Option1:` (WinoGrande fillers), the gold from
    `answer` (`answer2` -> 1); BoolQ rows ("true/false") get the choices ("True", "False")."""
    parts = row["instruction"].split("\n\n")
    stem = re.sub(r"^Please [^:]*: ", "", parts[0]).strip()
    answer = row["answer"].strip().lower()
    if answer in ("true", "false"):
        return Question(f"cs170k-{index}", "boolq", stem.rstrip("?"), ("True", "False"), 0 if answer == "true" else 1)
    pieces = re.split(r"\s*\b(Answer|Solution|Ending|Option)(\d+): ", parts[1])
    choices = tuple(p.strip() for p in pieces[3::3])
    gold = int(re.sub(r"\D", "", answer)) - 1
    if not pieces[1:] or not 0 <= gold < len(choices):
        raise ValueError(f"answer {row['answer']!r} not among {len(choices)} choices")
    return Question(f"cs170k-{index}", _CHOICE_TASKS[pieces[1]], stem, choices, gold)


def _commonsense_170k(source: str) -> list[Question]:
    from .hub import hub_dataset

    rows = hub_dataset(COMMONSENSE_170K, None, "train", task=source, source="--calib")
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(commonsense_170k_question(row, i))
        except (KeyError, IndexError, ValueError) as exc:
            raise UserError(
                f"hub dataset {COMMONSENSE_170K}: row {i} is not an LLM-Adapters question ({exc}) "
                f"(from --calib {source})"
            ) from None
    return out


def _file_questions(path: Path) -> list[Question]:
    rows = read_jsonl(path, "--calib", ("question", "choices", "label"))
    out = []
    for i, r in enumerate(rows):
        label = r["label"]
        if (
            not isinstance(r["choices"], list)
            or len(r["choices"]) < 2
            or not all(isinstance(c, str) and c for c in r["choices"])
            or not isinstance(label, int)
            or isinstance(label, bool)
            or not 0 <= label < len(r["choices"])
        ):
            raise UserError(
                f"{path}: item {i + 1} needs at least 2 non-empty choices and an integer label among them (from --calib)"
            )
        out.append(
            Question(
                str(r.get("id", f"{path.name}-{i}")),
                r.get("task", "file"),
                r["question"],
                tuple(r["choices"]),
                int(r["label"]),
            )
        )
    return out


COMMONSENSE_PARTS = {
    "arc_easy-train": lambda d: _arc_train(d, "arc_easy", "ARC-Easy-train.jsonl"),
    "arc_challenge-train": lambda d: _arc_train(d, "arc_challenge", "ARC-Challenge-train.jsonl"),
    "openbookqa-train": _obqa_train,
    "siqa-train": _siqa_train,
    "winogrande-train": _winogrande_train,
    "boolq-train": _boolq_train,
}


def calibration_questions(
    source: str, data_dir: Path | None, n: int | None, seed: int = 0
) -> tuple[list[Question], str]:
    """(questions, source id). `demo` and files keep file order (first n); `commonsense` draws n
    uniformly from the pooled training splits with `seed` (recorded ids make it reproducible)."""
    if source == "demo":
        pool, sid, shuffle = demo_questions("calib"), "demo:mc.jsonl[calib]", False
    elif source in COMMONSENSE_PARTS:
        pool, sid, shuffle = COMMONSENSE_PARTS[source](_need(data_dir, source)), source, False
    elif source == "commonsense" and data_dir is not None:
        pool = [q for part in COMMONSENSE_PARTS.values() for q in part(data_dir)]
        sid, shuffle = "commonsense:" + "+".join(COMMONSENSE_PARTS), True
    elif source == "commonsense":  # without --data-dir: the whole Commonsense-170k mixture from the hub
        pool, sid, shuffle = _commonsense_170k(source), f"hub:{COMMONSENSE_170K}", True
    elif source.endswith(".jsonl"):
        pool, sid, shuffle = _file_questions(Path(source)), f"file:{Path(source).resolve()}", False
    else:
        raise UserError(
            f"unknown question calibration source {source!r} (from --calib); use demo, commonsense, "
            f"{', '.join(COMMONSENSE_PARTS)} or a .jsonl file"
        )
    if shuffle:
        pool = random.Random(seed).sample(pool, len(pool) if n is None else min(n, len(pool)))
    elif n is not None:
        pool = pool[:n]
    if not pool:
        raise UserError(f"calibration source {source!r} (from --calib) gave no items")
    return pool, sid


def overlapping_tasks(source_id: str, task_names, data_dir: Path | None) -> list[str]:
    """Evaluation tasks that read the very file a calibration source read (warn loudly about them).
    Built-in and training-split sources are disjoint from evaluation data by construction."""
    if not source_id.startswith("file:"):
        return []
    path = Path(source_id[len("file:") :]).resolve()
    return [n for n in task_names if path in get_task(n).paths(data_dir)]
