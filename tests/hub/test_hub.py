"""The user's hub path, offline, through the real libraries: models by id (`from_pretrained`), benchmarks
and calibration data by hub id (`datasets.load_dataset`, `hf_hub_download`), from a cache laid out as
they write it (conftest.py). Every task read from the hub equals the same task read with --data-dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from hubdata import C4_COMMIT, MODEL_MAIN, MODEL_OLD, MODEL_REPO, offline_env

from depthprune.core.errors import UserError

HUB_TASKS = [
    "arc_easy",
    "arc_challenge",
    "piqa",
    "winogrande",
    "hellaswag",
    "boolq",
    "openbookqa",
    "wikitext2",
    "lambada",
]


def test_every_hub_task_equals_its_data_dir_form(hf_offline, data_dir):
    """Item for item (contexts, continuations, gold, lengths) or text for text: identical inputs give
    identical scores. HellaSwag: the hub rows here carry the whole context in ctx_a (see conftest)."""
    from depthprune.core.tasks import TASKS

    for name in HUB_TASKS:
        hub, local = TASKS[name].load(None), TASKS[name].load(data_dir)
        assert type(hub) is type(local) and len(hub) == len(local), name
        assert hub == local, name


def test_hellaswag_hub_context_differs_from_the_text_form_only_by_capitalisation():
    """lm-eval builds `ctx_a + " " + ctx_b.capitalize()`; the llama.cpp text form kept `ctx_a + " " + ctx_b`.
    `str.capitalize` upper-cases the first letter of ctx_b and lower-cases the rest of it."""
    from depthprune.core.tasks import hellaswag_preprocess

    row = {
        "activity_label": "Removing ice from car",
        "ctx_a": "Then, the man writes over the snow covering the window.",
        "ctx_b": "a person then Uses a ski",
        "endings": ["x"],
        "label": "0",
    }
    hub = hellaswag_preprocess(row["activity_label"] + ": " + row["ctx_a"] + " " + row["ctx_b"].capitalize())
    text_form = hellaswag_preprocess(row["activity_label"] + ": " + row["ctx_a"] + " " + row["ctx_b"])
    assert hub != text_form and hub.lower() == text_form.lower()
    assert hub.endswith("A person then uses a ski")


def test_c4_task_and_calibration_windows(hf_offline):
    from depthprune.core import c4
    from depthprune.core.tasks import TASKS
    from depthprune.core.tiny import byte_tokenizer

    validation = c4.shard_texts(c4.VALIDATION_SHARD, what="t", source="s")
    assert TASKS["c4"].load(None) == " ".join(validation[:1100])
    tok = byte_tokenizer()
    docs = c4.shard_texts(c4.TRAIN_SHARD, what="t", source="s")
    first = c4.calibration_windows(tok, 6, 300, seed=3)
    assert first == c4.calibration_windows(tok, 6, 300, seed=3) != c4.calibration_windows(tok, 6, 300, seed=4)
    encoded = [tok(d).input_ids for d in docs]
    for window in first:
        assert len(window) == 300
        # each window is a contiguous slice of one document longer than the window
        assert any(len(ids) > 300 and any(ids[i : i + 300] == window for i in range(len(ids) - 299)) for ids in encoded)
    with pytest.raises(UserError, match="no document"):
        c4.calibration_windows(tok, 1, 10**6, seed=0)


def test_commonsense_170k_from_the_hub(hf_offline, data_dir):
    from depthprune.core.calibration import calibration_questions

    pool, sid = calibration_questions("commonsense", None, None, seed=0)
    assert sid == "hub:zwhe99/commonsense_170k" and len(pool) == 1119 + 2251 + 9427 + 4957
    by_id = {q.id: q for q in pool}
    first_arc_c = by_id["cs170k-0"]  # the fixture's first rows are LLM-Adapters' ARC-Challenge train
    local = calibration_questions("arc_challenge-train", data_dir, 1)[0][0]
    assert (first_arc_c.question, first_arc_c.choices, first_arc_c.gold) == (local.question, local.choices, local.gold)
    assert {q.task for q in pool} == {"arc", "boolq"}


def test_model_by_hub_id_and_revision(hf_offline):
    from depthprune.core.loading import load_model
    from depthprune.core.tiny import build_tiny

    reference, _ = build_tiny("tiny:llama")
    ids = torch.tensor([[5, 70, 71, 72, 300 % 256]])
    lm = load_model(MODEL_REPO, device="cpu")
    assert lm.revision == MODEL_MAIN and lm.model_id == MODEL_REPO
    torch.testing.assert_close(lm.model(ids).logits, reference(ids).logits, rtol=0, atol=0)
    old = load_model(MODEL_REPO, device="cpu", revision=MODEL_OLD)
    assert old.revision == MODEL_OLD
    assert not torch.equal(old.model(ids).logits, lm.model(ids).logits)
    with pytest.raises(UserError, match=r"depthprune-test/nope.*not in the local Hugging Face cache"):
        load_model("depthprune-test/nope", device="cpu")
    with pytest.raises(UserError, match=r"--revision 0123"):
        load_model(MODEL_REPO, device="cpu", revision="0123456789abcdef0123456789abcdef01234567")


def test_hub_dataset_failures_are_one_line(hf_offline):
    from depthprune.core.hub import hub_dataset, hub_file

    with pytest.raises(UserError) as missing_config:
        hub_dataset("allenai/ai2_arc", "ARC-Nope", "test", task="arc_easy")
    assert "allenai/ai2_arc (config ARC-Nope)" in str(missing_config.value)
    with pytest.raises(UserError) as not_cached:
        hub_dataset("allenai/not_cached", None, "test", task="x")
    assert "allenai/not_cached" in str(not_cached.value) and "offline" in str(not_cached.value)
    with pytest.raises(UserError, match="allenai/c4"):
        hub_file("allenai/c4", "en/c4-train.00001-of-01024.json.gz", what="c4", source="--calib")
    for exc in (missing_config.value, not_cached.value):
        assert "\n" not in str(exc)


def _cli(args, hf_home, tmp_path):
    env = {**os.environ, **offline_env(hf_home), "DEPTHPRUNE_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "depthprune.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_cli_eval_by_hub_id_equals_data_dir(hf_home, data_dir, tmp_path):
    """`depthprune eval --model org/name` with no --data-dir, offline: the same scores as --data-dir."""
    args = [
        "eval",
        "--model",
        MODEL_REPO,
        "--tasks",
        ",".join([*HUB_TASKS, "c4"]),
        "--limit",
        "3",
        "--seq-len",
        "64",
        "--remove",
        "2",
        "--json",
    ]
    hub = _cli(args, hf_home, tmp_path)
    local = _cli([*args[:3], "--tasks", ",".join(HUB_TASKS), *args[5:], "--data-dir", str(data_dir)], hf_home, tmp_path)
    assert hub["revision"] == MODEL_MAIN
    assert "c4" in hub["tasks"]
    for name in HUB_TASKS:
        assert hub["tasks"][name] == local["tasks"][name], name


def test_cli_prune_with_c4_calibration(hf_home, tmp_path):
    out = _cli(
        [
            "prune",
            "--model",
            MODEL_REPO,
            "--calib",
            "c4",
            "--calib-samples",
            "4",
            "--calib-seq-len",
            "64",
            "--k",
            "1",
            "--searcher",
            "oneshot",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--json",
        ],
        hf_home,
        tmp_path,
    )
    config = json.loads((tmp_path / "runs" / out["run"] / "run.json").read_text())
    assert config["revision"] == MODEL_MAIN
    assert config["objective"]["calib"] == "hub:allenai/c4:en/c4-train.00000-of-01024.json.gz:random-windows:seed=0"
    assert config["objective"]["windows"] == 4
    assert C4_COMMIT  # the shard came from the hub cache's allenai/c4 snapshot


def test_gated_and_missing_revision_advice():
    """The hub's own error types (as raised online) map to one actionable line."""
    import httpx2
    from huggingface_hub.errors import GatedRepoError, RevisionNotFoundError

    from depthprune.core.hub import _advice

    def response(code):
        return httpx2.Response(code, request=httpx2.Request("GET", "https://huggingface.co/api/models/x"))

    gated = _advice(GatedRepoError("401 gated", response=response(401)), "meta-llama/Llama-3.1-8B")
    assert "gated" in gated and "huggingface.co/meta-llama/Llama-3.1-8B" in gated and "HF_TOKEN" in gated
    missing = _advice(RevisionNotFoundError("404", response=response(404)), "org/name")
    assert "revision does not exist" in missing
