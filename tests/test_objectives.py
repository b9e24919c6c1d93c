"""Objectives compute their documented definitions; calibration is disjoint from evaluation."""

import math

import pytest
import torch

from depthprune.core.calibration import Question, calibration_questions, calibration_text, overlapping_tasks
from depthprune.core.engine import Engine
from depthprune.core.evaluate import Evaluator, accuracy
from depthprune.core.loading import load_model
from depthprune.core.surgery import remove_blocks
from depthprune.core.tasks import TASKS, demo_items
from depthprune.objectives import build_objective
from depthprune.objectives.base import Objective
from depthprune.objectives.margin import Margin


@pytest.fixture(scope="module")
def lm():
    return load_model("tiny:gemma2", device="cpu")  # soft-capped head, sliding + global blocks


def mean_logprob(model, tokenizer, context: str, continuation: str) -> float:
    """Independent reference: PuDDing's option score from one plain forward of the full string."""
    if context:
        ctx = tokenizer(context).input_ids
        whole = tokenizer(context + continuation).input_ids
    else:
        whole = tokenizer(continuation).input_ids
        ctx = whole[:1]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), -1)
    scored = range(len(ctx), len(whole))
    return sum(float(logp[t - 1, whole[t]]) for t in scored) / len(scored)


def test_ppl_objective_equals_evaluator_perplexity_for_removal_sets(lm):
    objective = build_objective("ppl", lm, calib="demo", samples=3, seq_len=64)
    text, _ = calibration_text("demo", None)
    evaluator = Evaluator(lm, batch_size=2)
    for removed in [(), (2,), (0, 5)]:
        expected = evaluator.perplexity(text, removed, seq_len=64, limit=3)
        assert objective(removed) == pytest.approx(expected["nll"], rel=1e-5)
        assert objective.report(objective(removed))["ppl"] == pytest.approx(math.exp(expected["nll"]), rel=1e-5)


def test_kl_is_zero_for_the_dense_model_and_matches_a_direct_computation(lm):
    objective = build_objective("kl", lm, calib="demo", samples=2, seq_len=48)
    assert objective(()) == pytest.approx(0.0, abs=1e-7)
    windows = torch.tensor([c + t for c, t in objective.pairs])
    pruned = load_model("tiny:gemma2", device="cpu")
    remove_blocks(pruned.model, (1, 3))
    with torch.no_grad():
        p = torch.log_softmax(lm.model(windows).logits[:, :-1].float(), -1)
        q = torch.log_softmax(pruned.model(windows).logits[:, :-1].float(), -1)
    expected = float((p.exp() * (p - q)).sum(-1).mean())
    assert objective((1, 3)) == pytest.approx(expected, rel=1e-4)
    assert objective((1, 3)) > 0


def test_margin_is_minus_the_mean_summed_gap_of_mean_token_logprobs(lm):
    questions = [
        Question("a", "arc", "What melts ice fastest?", ("salt", "sand", "paper", "wood"), 0),
        Question("b", "boolq", "is water wet", ("True", "False"), 0),
        Question("c", "winogrande", "The cup broke because _ was fragile.", ("the cup", "the floor"), 0),
    ]
    objective = Margin(Engine(lm.model), lm.tokenizer, questions, "test")
    strings = {
        "a": [("Question: What melts ice fastest?\nAnswer:", " " + c) for c in questions[0].choices],
        "b": [("Question: is water wet?\nAnswer:", " True"), ("Question: is water wet?\nAnswer:", " False")],
        "c": [("", "The cup broke because the cup was fragile."), ("", "The cup broke because the floor was fragile.")],
    }
    margins = []
    for q in questions:
        scores = [mean_logprob(lm.model, lm.tokenizer, c, t) for c, t in strings[q.id]]
        margins.append(sum(scores[q.gold] - s for j, s in enumerate(scores) if j != q.gold))
    assert objective(()) == pytest.approx(-sum(margins) / 3, rel=1e-4)
    mean_variant = Margin(Engine(lm.model), lm.tokenizer, questions, "test", wrong_reduce="mean")
    assert mean_variant(()) == pytest.approx(-(margins[0] / 3 + margins[1] + margins[2]) / 3, rel=1e-4)


def test_acc_objective_is_one_minus_lm_eval_accuracy(lm):
    objective = build_objective("acc", lm, calib="demo", samples=12)
    questions, _ = calibration_questions("demo", None, 12)
    items = [objective.items[i] for i in range(12)]
    for removed in [(), (4,)]:
        expected = accuracy(Evaluator(lm).multiple_choice(items, removed))["acc"]
        assert objective(removed) == pytest.approx(1 - expected)
    assert len(questions) == 12


def test_every_objective_is_an_objective_with_a_full_description(lm):
    for name, calib in [("ppl", "demo"), ("kl", "demo"), ("margin", "demo"), ("acc", "demo")]:
        objective = build_objective(name, lm, calib=calib, samples=2, seq_len=32)
        assert isinstance(objective, Objective)
        assert objective.describe()["objective"] == name and objective.describe()["calib"]


def test_builtin_calibration_and_evaluation_halves_are_disjoint():
    calib_questions, _ = calibration_questions("demo", None, None)
    eval_contexts = {i.contexts[0] for i in demo_items("eval")}
    assert len(calib_questions) == 60 and len(eval_contexts) == 60
    assert not {f"Question: {q.question}\nAnswer:" for q in calib_questions} & eval_contexts
    calib_text, _ = calibration_text("demo", None)
    heldout = TASKS["demo-text"].load(None)
    calib_sentences = {s.strip() for s in calib_text.split(".") if len(s.strip()) > 20}
    assert not {s.strip() for s in heldout.split(".") if len(s.strip()) > 20} & calib_sentences


def test_calibrating_on_an_evaluation_file_is_detected(data_dir):
    _, source = calibration_text("lambada", data_dir)
    assert overlapping_tasks(source, ["wikitext2", "lambada", "piqa"], data_dir) == ["lambada"]
    _, commonsense = calibration_questions("commonsense", data_dir, 16)
    assert overlapping_tasks(commonsense, ["arc_easy", "winogrande"], data_dir) == []


def test_commonsense_calibration_draws_reproducibly_from_training_splits(data_dir):
    a, _ = calibration_questions("commonsense", data_dir, 32, seed=0)
    b, _ = calibration_questions("commonsense", data_dir, 32, seed=0)
    c, _ = calibration_questions("commonsense", data_dir, 32, seed=1)
    assert [q.id for q in a] == [q.id for q in b] != [q.id for q in c]
    assert {q.task for q in a} <= {"arc", "obqa", "siqa", "winogrande", "boolq"}
    assert all(0 <= q.gold < len(q.choices) for q in a)


def test_acc_renders_each_task_family_as_lm_eval_does():
    from depthprune.core.prompts import render as lm_eval_item

    boolq = lm_eval_item(Question("b", "boolq", "is the sky blue", ("True", "False"), 0))
    assert boolq.contexts[0] == "Question: is the sky blue?\nAnswer:" and boolq.continuations == (" no", " yes")
    assert boolq.gold == 1  # "True" is lm-eval's "yes"
    assert lm_eval_item(Question("b", "boolq", "is it?", ("True", "False"), 1)).gold == 0
    assert lm_eval_item(Question("o", "obqa", "The sun is", ("hot", "cold"), 0)).contexts[0] == "The sun is"
    assert (
        lm_eval_item(Question("s", "siqa", "Kai ran. Why?", ("a", "b", "c"), 2)).contexts[0] == "Q: Kai ran. Why?\nA:"
    )
    wino = lm_eval_item(Question("w", "winogrande", "Ann thanked Bo because _ helped.", ("Ann", "Bo"), 1))
    assert wino.contexts == ("Ann thanked Bo because Ann", "Ann thanked Bo because Bo") and wino.gold == 1


def test_a_mix_is_the_weighted_sum_of_its_terms_relative_to_the_dense_model(lm):
    from depthprune.objectives import build_mix
    from depthprune.objectives.mix import SCALE_FLOOR, Mix

    calibrations = {"ppl": ("demo", 3, 64), "margin": ("demo", 4, 128)}
    mix = build_mix("mix:ppl=0.25,margin=2", lm, calibrations, shared_context=False)
    assert isinstance(mix, Mix) and len(mix.batches) == sum(len(o.batches) for _, o in mix.terms)
    ppl = build_objective("ppl", lm, calib="demo", samples=3, seq_len=64)  # built apart, as references
    margin = build_objective("margin", lm, calib="demo", samples=4, seq_len=128, shared_context=False)
    scale = lambda o: max(abs(o(())), SCALE_FLOOR)
    assert mix(()) == pytest.approx(0.0, abs=1e-9)  # every term is 0 for the dense model
    for removed in [(2,), (0, 5)]:
        expected = 0.25 * (ppl(removed) - ppl(())) / scale(ppl) + 2 * (margin(removed) - margin(())) / scale(margin)
        assert mix(removed) == pytest.approx(expected, rel=1e-6)
    assert [t["weight"] for t in mix.describe()["terms"]] == [0.25, 2.0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mix:ppl=0.5,nope=1", "unknown term 'nope'"),
        ("mix:ppl=0.5,ppl=1", "term 'ppl' given twice"),
        ("mix:ppl=-1", "weight '-1' of ppl must be a finite number > 0"),
        ("mix:ppl=nan", "weight 'nan' of ppl must be a finite number > 0"),
        ("mix:ppl=1e309", "weight '1e309' of ppl must be a finite number > 0"),
        ("mix:ppl", "each term is name=weight"),
        ("mix:mix:ppl=1", "unknown term 'mix:ppl'"),
    ],
)
def test_a_bad_mix_is_one_line_naming_the_spec(spec, message):
    from depthprune.core.errors import UserError
    from depthprune.objectives import objective_class

    with pytest.raises(UserError, match=message) as caught:
        objective_class(spec)
    assert "\n" not in str(caught.value) and repr(spec) in str(caught.value)


def test_an_objective_list_keeps_each_mix_whole():
    from depthprune.objectives import split_objectives

    assert split_objectives("ppl, mix:ppl=0.5,margin=0.5 ,margin,mix:kl=1,acc=2") == [
        "ppl",
        "mix:ppl=0.5,margin=0.5",
        "margin",
        "mix:kl=1,acc=2",
    ]
    assert split_objectives("ppl=1,margin") == ["ppl=1", "margin"]  # no mix before it: left to the checks
    assert split_objectives(" , ") == []
