"""Our multiple-choice scores equal lm-evaluation-harness's on the same model and items.

lm-eval 0.4.13 runs its own task definitions (the YAML prompts, choices, targets and metrics of
arc_easy, arc_challenge, piqa, hellaswag, winogrande, boolq, openbookqa) with its HFLM model wrapper
on the real demo model; only the dataset location is redirected to the official files, converted
here to the hub schema lm-eval expects. Per-choice log-likelihoods and acc/acc_norm must agree.
"""

import bz2
import csv
import io
import json
import re

import pytest

from depthprune.core.evaluate import Evaluator, accuracy
from depthprune.core.tasks import TASKS

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is a pinned test dependency (requirements.lock)")

N_ITEMS = 6


def _jsonl(path):
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def hub_schema_docs(data_dir):
    """The first N_ITEMS documents of each task, in the schema of lm-eval's hub datasets."""

    def arc(path):
        return [
            {
                "question": r["question"]["stem"],
                "answerKey": r["answerKey"],
                "choices": {
                    "text": [c["text"] for c in r["question"]["choices"]],
                    "label": [c["label"] for c in r["question"]["choices"]],
                },
            }
            for r in _jsonl(path)[:N_ITEMS]
        ]

    piqa_rows = _jsonl(data_dir / "piqa/valid.jsonl")[:N_ITEMS]
    piqa_labels = open(data_dir / "piqa/valid-labels.lst").read().split()[:N_ITEMS]
    lines = bz2.open(data_dir / "hellaswag/hellaswag_val_full.txt.bz2", "rt", encoding="utf-8").read().split("\n")
    hellaswag = []
    for k in range(N_ITEMS):
        ctx, gold, *endings = lines[6 * k : 6 * k + 6]
        label, rest = ctx.split(": ", 1)
        hellaswag.append({"activity_label": label, "ctx_a": rest, "ctx_b": "", "endings": endings, "label": gold})
    obqa = []
    for r in list(csv.DictReader(io.StringIO(open(data_dir / "openbookqa/test.tsv").read()), delimiter="\t"))[:N_ITEMS]:
        texts = [t.strip() for t in re.split(r"\(([A-D])\)", r["Choices"])[2::2]]
        obqa.append(
            {
                "question_stem": r["Question Stem"],
                "answerKey": r["Answer Key"],
                "choices": {"text": texts, "label": ["A", "B", "C", "D"]},
            }
        )
    return {
        "arc_easy": ("arc/arc_easy.yaml", arc(data_dir / "arc_easy/ARC-Easy-Test.jsonl")),
        "arc_challenge": ("arc/arc_challenge.yaml", arc(data_dir / "arc_challenge/ARC-Challenge-Test.jsonl")),
        "piqa": ("piqa/piqa.yaml", [r | {"label": int(y)} for r, y in zip(piqa_rows, piqa_labels)]),
        "hellaswag": ("hellaswag/hellaswag.yaml", hellaswag),
        "winogrande": ("winogrande/default.yaml", _jsonl(data_dir / "winogrande/dev.jsonl")[:N_ITEMS]),
        "boolq": (
            "super_glue/boolq/default.yaml",
            [r | {"label": int(r["label"] == "true")} for r in _jsonl(data_dir / "boolq/val.jsonl")[:N_ITEMS]],
        ),
        "openbookqa": ("openbookqa/openbookqa.yaml", obqa),
    }


@pytest.mark.demo
def test_multiple_choice_scores_match_lm_eval(demo, data_dir, tmp_path, monkeypatch):
    from pathlib import Path

    from lm_eval.evaluator import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks._yaml_loader import load_yaml

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tasks_dir = Path(lm_eval.__file__).parent / "tasks"
    configs = []
    for name, (yaml_file, docs) in hub_schema_docs(data_dir).items():
        file = tmp_path / f"{name}.jsonl"
        file.write_text("\n".join(json.dumps(d) for d in docs))
        cfg = load_yaml(tasks_dir / yaml_file)
        cfg.pop("tag", None)
        cfg.update(
            dataset_path="json",
            dataset_name=None,
            dataset_kwargs={"data_files": {"test": str(file)}},
            training_split=None,
            validation_split=None,
            test_split="test",
        )
        configs.append(cfg)
    reference = simple_evaluate(
        model=HFLM(pretrained=demo.model, tokenizer=demo.tokenizer, batch_size=4), tasks=configs, log_samples=True
    )

    evaluator = Evaluator(demo, batch_size=4)
    for name in ["arc_easy", "arc_challenge", "piqa", "hellaswag", "winogrande", "boolq", "openbookqa"]:
        ours = evaluator.multiple_choice(TASKS[name].load(data_dir)[:N_ITEMS])
        samples = sorted(reference["samples"][name], key=lambda s: s["doc_id"])
        theirs = [[ll for ll, _greedy in s["filtered_resps"]] for s in samples]
        assert len(theirs) == N_ITEMS
        for ours_item, theirs_item in zip(ours.loglik, theirs):
            assert ours_item == pytest.approx(theirs_item, abs=2e-3, rel=1e-4), name
        metrics = accuracy(ours)
        for metric in TASKS[name].metrics:
            assert metrics[metric] == pytest.approx(reference["results"][name][f"{metric},none"]), (name, metric)
