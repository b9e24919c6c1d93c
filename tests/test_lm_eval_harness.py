"""`eval --harness lm-eval`: lm-eval's own `simple_evaluate` on the model with blocks removed in memory
gives exactly what lm-eval gives on the physically pruned checkpoint reloaded from disk — for a
few-shot multiple-choice task and a generative (`generate_until`) task, offline, from local YAMLs."""

import json
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lm_eval", reason="lm-eval is a pinned test dependency (requirements.lock)")

REMOVED = (1, 3)


def _jsonl(path):
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def write_tasks(folder: Path, data_dir: Path) -> Path:
    """Two lm-eval tasks over the official files: ARC-Easy test (few-shot examples from its train
    split) and a LAMBADA-style greedy completion of the last word (generate_until)."""
    folder.mkdir()
    train = _jsonl(data_dir / "arc_easy/ARC-Easy-train.jsonl")[:8]
    test = [
        {
            "question": r["question"]["stem"],
            "answerKey": r["answerKey"],
            "choices": {
                "text": [c["text"] for c in r["question"]["choices"]],
                "label": [c["label"] for c in r["question"]["choices"]],
            },
        }
        for r in _jsonl(data_dir / "arc_easy/ARC-Easy-Test.jsonl")[:6]
    ]
    (folder / "arc_train.jsonl").write_text(
        "\n".join(json.dumps({k: r[k] for k in ("question", "choices", "answerKey")}) for r in train)
    )
    (folder / "arc_test.jsonl").write_text("\n".join(json.dumps(r) for r in test))
    lambada = [{"text": r["text"]} for r in _jsonl(data_dir / "lambada_openai/lambada_test.jsonl")[:4]]
    (folder / "lambada.jsonl").write_text("\n".join(json.dumps(r) for r in lambada))
    (folder / "tiny_arc.yaml").write_text(f"""task: tiny_arc
dataset_path: json
dataset_kwargs:
  data_files:
    train: {folder / "arc_train.jsonl"}
    test: {folder / "arc_test.jsonl"}
training_split: train
fewshot_split: train
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{choices.label.index(answerKey)}}}}"
doc_to_choice: "{{{{choices.text}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
metadata:
  version: 1.0
""")
    (folder / "tiny_gen.yaml").write_text(f"""task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder / "lambada.jsonl"}
test_split: test
output_type: generate_until
doc_to_text: "{{{{text.split(' ')[:-1]|join(' ')}}}}"
doc_to_target: "{{{{' ' + text.split(' ')[-1]}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
metadata:
  version: 2.0
""")
    return folder


@pytest.fixture
def offline(monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_lm_eval_on_pruned_model_equals_lm_eval_on_the_exported_checkpoint(offline, data_dir, tmp_path):
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM

    from depthprune.core.harness import run_lm_eval, task_manager
    from depthprune.core.loading import load_model
    from depthprune.core.surgery import export_pruned

    tasks = write_tasks(tmp_path / "tasks", data_dir)
    ours = run_lm_eval(
        load_model("tiny:llama", device="cpu"),
        REMOVED,
        ["tiny_arc", "tiny_gen"],
        include_path=tasks,
        num_fewshot=2,
        limit=5,
        batch_size=4,
        log_samples=True,
    )
    export_pruned(load_model("tiny:llama", device="cpu"), REMOVED, tmp_path / "pruned")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "pruned", dtype=torch.float32).eval()
    from depthprune.core.tiny import byte_tokenizer

    theirs = simple_evaluate(
        model=HFLM(pretrained=reloaded, tokenizer=byte_tokenizer(), batch_size=4),
        tasks=["tiny_arc", "tiny_gen"],
        num_fewshot=2,
        limit=5,
        task_manager=task_manager(tasks),
        log_samples=True,
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
    )
    assert ours["harness"]["task_versions"] == {"tiny_arc": 1.0, "tiny_gen": 2.0}
    assert ours["harness"]["n_shot"] == {"tiny_arc": 2, "tiny_gen": 2}
    assert ours["harness"]["version"] == __import__("lm_eval").__version__
    for task in ("tiny_arc", "tiny_gen"):
        mine = sorted(ours["samples"][task], key=lambda s: s["doc_id"])
        ref = sorted(theirs["samples"][task], key=lambda s: s["doc_id"])
        assert len(mine) == len(ref) == {"tiny_arc": 5, "tiny_gen": 4}[task]  # --limit 5; tiny_gen has 4 documents
        assert [s["arguments"] for s in mine] == [s["arguments"] for s in ref]  # the 2-shot prompts
        for a, b in zip(mine, ref):
            if task == "tiny_gen":
                assert a["filtered_resps"] == b["filtered_resps"]  # greedy generations, token for token
            else:
                assert [ll for ll, _ in a["filtered_resps"]] == pytest.approx(
                    [ll for ll, _ in b["filtered_resps"]], abs=1e-4
                )
        for metric, value in theirs["results"][task].items():
            if metric != "alias" and isinstance(value, float):
                assert ours["tasks"][task][metric] == pytest.approx(value), (task, metric)
    arc_context = json.dumps(sorted(ours["samples"]["tiny_arc"], key=lambda s: s["doc_id"])[0]["arguments"])
    assert arc_context.count("Question:") == 3 * 4  # 2 shots + the question, in each of its 4 choice requests
    assert ours["tasks"]["tiny_arc"]["primary"] == "acc,none"


def test_cli_harness_records_a_benchmarked_event(offline, data_dir, tmp_path, monkeypatch, capsys):
    from depthprune import cli
    from depthprune.core.events import Benchmarked
    from depthprune.core.runs import Run

    tasks = write_tasks(tmp_path / "tasks", data_dir)

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["depthprune", *args])
        try:
            cli.main()
        except SystemExit as exc:
            assert exc.code == 0, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    runs = tmp_path / "runs"
    pruned = run(
        "prune",
        "--model",
        "tiny:llama",
        "--searcher",
        "oneshot",
        "--k",
        "2",
        "--calib",
        "demo",
        "--calib-samples",
        "2",
        "--calib-seq-len",
        "64",
        "--runs-dir",
        str(runs),
        "--json",
    )
    report = run(
        "eval",
        "--run",
        pruned["run"],
        "--runs-dir",
        str(runs),
        "--harness",
        "lm-eval",
        "--tasks",
        "tiny_arc",
        "--include-path",
        str(tasks),
        "--num-fewshot",
        "1",
        "--limit",
        "3",
        "--json",
    )
    assert report["removed"] == sorted(pruned["removed"]) and report["harness"]["n_shot"] == {"tiny_arc": 1}
    events = [e for e in Run.open(pruned["run"], runs, "test").events() if isinstance(e, Benchmarked)]
    assert events[-1].harness["version"] == report["harness"]["version"]
    assert events[-1].tasks["tiny_arc"]["acc,none"] == report["tasks"]["tiny_arc"]["acc,none"]
    assert events[-1].model["dtype"] == "float32" and events[-1].limit == 3
