"""The four "how to add" recipes of ARCHITECTURE.md, each done from this test module: a searcher, an
objective, a benchmark and a model family are one class or record plus one registry entry, and then
work through the real `depthprune` commands."""

import json
import sys

import pytest
import torch

from depthprune import cli
from depthprune.core.engine import Engine
from depthprune.core.families import _DECODER, _GQA, FAMILIES, Family
from depthprune.core.loading import load_model
from depthprune.core.prompts import Question
from depthprune.core.surgery import remove_blocks
from depthprune.core.tasks import TASKS, ChoiceTask
from depthprune.objectives import OBJECTIVES, build_objective
from depthprune.objectives.ppl import WindowObjective
from depthprune.searchers import SEARCHERS
from depthprune.searchers.base import Searcher


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["depthprune", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


class FirstBlocks(Searcher):
    """Throw-away searcher: scores the first k allowed blocks and the last k, keeps the better."""

    name = "first-blocks"

    def search(self):
        allowed, k = self.space.allowed, self.space.k
        candidates = [frozenset(allowed[:k]), frozenset(allowed[-k:])]
        scores = yield from self.score(candidates)
        return min(candidates, key=lambda s: scores[s])

    def planned_evaluations(self):
        return 2


class LastTokenNLL(WindowObjective):
    """Throw-away objective: the mean NLL of the text windows, like ppl, under another name."""

    name = "nll-copy"

    def batch_stats(self, i, hidden):
        total, count = self.pair_stats(i, hidden)
        return -float(total.sum()), int(count.sum())


def test_a_new_searcher_and_objective_run_through_depthprune_prune(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(SEARCHERS, FirstBlocks.name, FirstBlocks)
    monkeypatch.setitem(OBJECTIVES, LastTokenNLL.name, LastTokenNLL)
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "prune",
        "--model",
        "tiny:llama:6",
        "--searcher",
        "first-blocks",
        "--objective",
        "nll-copy",
        "--k",
        "2",
        "--calib",
        "demo",
        "--calib-samples",
        "2",
        "--calib-seq-len",
        "32",
        "--runs-dir",
        str(tmp_path),
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["removed"] in ([0, 1], [4, 5]) and result["evaluations"] == 2
    ppl = build_objective("ppl", load_model("tiny:llama:6", device="cpu"), calib="demo", samples=2, seq_len=32)
    assert result["value"] == pytest.approx(ppl(result["removed"]), rel=1e-9)  # the copy scores what ppl scores


def test_a_new_benchmark_is_one_record(monkeypatch, capsys, tmp_path):
    rows = [("Which is a colour?", ("red", "seven"), 0), ("Which is a number?", ("blue", "three"), 1)]

    def read(_data_dir):
        return [Question(f"colours-{i}", "arc", q, c, g) for i, (q, c, g) in enumerate(rows)]

    monkeypatch.setitem(TASKS, "colours", ChoiceTask("colours", read, ("acc", "acc_norm"), "acc"))
    code, out, err = run_cli(monkeypatch, capsys, "eval", "--model", "tiny:llama", "--tasks", "colours", "--json")
    assert code == 0, err
    scores = json.loads(out)["tasks"]["colours"]
    assert scores["items"] == 2 and 0.0 <= scores["acc"] <= 1.0 and scores["primary"] == "acc"


def test_a_new_family_is_one_row(monkeypatch):
    """A family transformers knows but the table does not (Granite): one row, then `tiny:granite` builds,
    and skipping blocks in the engine equals the physically pruned model."""
    monkeypatch.setitem(FAMILIES, "granite", Family("granite", *_DECODER, tiny=_GQA))
    lm = load_model("tiny:granite:5", device="cpu")
    ids = torch.tensor([[5, 17, 99, 3, 42, 8]])
    engine = Engine(lm.model, lm.family)
    skipped = engine.logits(engine.final_hidden(ids, None, [1, 3]))
    pruned = remove_blocks(lm.model, [1, 3])
    with torch.no_grad():
        physical = pruned(input_ids=ids).logits
    assert torch.allclose(skipped, physical, atol=1e-5)
