"""Prompts: how a multiple-choice question becomes the strings a model scores. The one table used by
the evaluator (`core.evaluate`, through `core.tasks`), the `acc` objective and the `margin` objective.

A `Question` is the neutral record every loader produces (benchmark items and calibration items
alike): `task` names its prompt family, `choices` are the answer strings, `gold` the index of the
right one, `context` a passage where the task has one (BoolQ).

Two conventions, each a column of `PROMPTS`:
* lm-evaluation-harness 0.4.x (`render`, used for accuracy: the evaluator and `acc`): per choice a
  (context, continuation) pair — `doc_to_text`, the target delimiter " ", `doc_to_choice` — exactly
  the strings lm-eval builds. WinoGrande is its multiple-input task (the context varies with the
  choice, the continuation is shared: partial scoring).
* PuDDing (`pudding_strings`, used by `margin`): `Question: {q}\\nAnswer:` + " {option}" for every
  family but BoolQ (`Question: {q}?\\nAnswer:` with " True"/" False") and WinoGrande (the sentence
  with "_" filled in, scored whole but its first token).

BoolQ questions are stored with choices ("True", "False") and gold 0 when the answer is yes; lm-eval
scores them as " no"/" yes".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    """A neutral multiple-choice record; for `winogrande`, `question` is the sentence with "_" and
    `choices` the fillers."""

    id: str
    task: str
    question: str
    choices: tuple[str, ...]
    gold: int
    context: str = ""


@dataclass(frozen=True)
class MCItem:
    """One question as lm-eval scores it: per choice the context and the continuation, the gold
    index, and the character length of each choice string (the acc_norm divisor; delimiter excluded)."""

    contexts: tuple[str, ...]
    continuations: tuple[str, ...]
    gold: int
    choice_lengths: tuple[int, ...]


def mc_item(context: str, choices: list[str], gold: int) -> MCItem:
    """A single-context item: continuation = " " + choice (lm-eval's default target delimiter)."""
    return MCItem(
        tuple([context] * len(choices)), tuple(" " + c for c in choices), gold, tuple(len(c) for c in choices)
    )


def winogrande_item(sentence: str, options: list[str], gold: int) -> MCItem:
    """lm-eval's partial scoring: context = sentence up to "_" with the option filled in; the shared
    continuation is " " + the rest of the sentence."""
    cut = sentence.index("_")
    rest = " " + sentence[cut + 1 :].strip()
    return MCItem(
        tuple(sentence[:cut] + o for o in options), (rest,) * len(options), gold, (len(rest) - 1,) * len(options)
    )


def _with_question_mark(text: str) -> str:
    return text if text.endswith("?") else text + "?"


def _question_answer(q: Question) -> MCItem:
    return mc_item(f"Question: {q.question}\nAnswer:", list(q.choices), q.gold)


def _bare(q: Question) -> MCItem:
    return mc_item(q.question, list(q.choices), q.gold)


def _boolq(q: Question) -> MCItem:
    """lm-eval's boolq: "{passage}\\nQuestion: {question}?\\nAnswer:"; without a passage (calibration
    questions) the question alone, its "?" added once."""
    text = (
        f"{q.context}\nQuestion: {q.question}?\nAnswer:"
        if q.context
        else f"Question: {_with_question_mark(q.question)}\nAnswer:"
    )
    return mc_item(text, ["no", "yes"], 1 if q.gold == 0 else 0)


@dataclass(frozen=True)
class Prompt:
    """One task family's rendering in both conventions."""

    lm_eval: Callable[[Question], MCItem]
    pudding: Callable[[Question], list[tuple[str, str]]]


def _pudding_question(q: Question) -> list[tuple[str, str]]:
    return [(f"Question: {q.question}\nAnswer:", " " + option) for option in q.choices]


PROMPTS: dict[str, Prompt] = {
    "arc": Prompt(_question_answer, _pudding_question),
    "piqa": Prompt(_question_answer, _pudding_question),
    "demo": Prompt(_question_answer, _pudding_question),
    "hellaswag": Prompt(_bare, _pudding_question),
    "obqa": Prompt(_bare, _pudding_question),
    "siqa": Prompt(lambda q: mc_item(f"Q: {q.question}\nA:", list(q.choices), q.gold), _pudding_question),
    "boolq": Prompt(
        _boolq,
        lambda q: [(f"Question: {_with_question_mark(q.question)}\nAnswer:", " " + option) for option in q.choices],
    ),
    "winogrande": Prompt(
        lambda q: winogrande_item(q.question, list(q.choices), q.gold),
        lambda q: [("", q.question.replace("_", option, 1)) for option in q.choices],
    ),
}
DEFAULT_PROMPT = PROMPTS["arc"]  # questions from a user's file: the question-answer form


def render(q: Question) -> MCItem:
    """The question as lm-eval scores it."""
    return PROMPTS.get(q.task, DEFAULT_PROMPT).lm_eval(q)


def pudding_strings(q: Question) -> list[tuple[str, str]]:
    """(context, continuation) strings per option, PuDDing's form; an empty context means "score
    all but the first token"."""
    return PROMPTS.get(q.task, DEFAULT_PROMPT).pudding(q)
