"""Benchmark loaders read the official files into lm-eval's prompts; bad files fail with file:line."""

import json

import pytest

from depthprune.core.errors import UserError
from depthprune.core.tasks import TASKS, hellaswag_preprocess, wikitext_rows, winogrande_item

COUNTS = {
    "arc_easy": 2376,
    "arc_challenge": 1172,
    "piqa": 1838,
    "hellaswag": 10042,
    "winogrande": 1267,
    "boolq": 3270,
    "openbookqa": 500,
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_official_files_load_every_item_with_a_valid_gold(name, data_dir):
    items = TASKS[name].load(data_dir)
    assert len(items) == COUNTS[name]
    for item in items:
        assert len(item.contexts) == len(item.continuations) == len(item.choice_lengths) >= 2
        assert 0 <= item.gold < len(item.continuations)


def test_prompts_are_lm_eval_strings(data_dir):
    arc = TASKS["arc_easy"].load(data_dir)[0]
    first = json.loads(open(data_dir / "arc_easy/ARC-Easy-Test.jsonl").readline())
    assert arc.contexts[0] == f"Question: {first['question']['stem']}\nAnswer:"
    assert arc.continuations[0] == " " + first["question"]["choices"][0]["text"]
    boolq = TASKS["boolq"].load(data_dir)[0]
    assert boolq.contexts[0].endswith("?\nAnswer:") and boolq.continuations == (" no", " yes")
    obqa = TASKS["openbookqa"].load(data_dir)[0]
    stem = open(data_dir / "openbookqa/test.tsv").read().splitlines()[1].split("\t")[1]
    assert obqa.contexts[0] == stem and obqa.continuations[0].startswith(" ")
    assert all(len(i.continuations) == 4 for i in TASKS["openbookqa"].load(data_dir))


def test_arc_numeric_answer_keys_are_resolved(data_dir):
    rows = [json.loads(line) for line in open(data_dir / "arc_easy/ARC-Easy-Test.jsonl")]
    numeric = [i for i, r in enumerate(rows) if r["answerKey"].isdigit()]
    assert numeric, "the official file has numeric keys"
    items = TASKS["arc_easy"].load(data_dir)
    for i in numeric[:20]:
        labels = [c["label"] for c in rows[i]["question"]["choices"]]
        assert items[i].gold == labels.index(rows[i]["answerKey"])


def test_wikitext_rows_and_joined_text_match_the_hub_split(data_dir):
    raw = (data_dir / "wikitext2/wiki.test.raw").read_text(encoding="utf-8")
    assert len(wikitext_rows(raw)) == 4358
    assert len(TASKS["wikitext2"].load(data_dir)) == 1_294_336


def test_winogrande_partial_scoring_shares_the_continuation():
    item = winogrande_item("The cup fell off the table because _ was slippery.", ["the cup", "the table"], 1)
    assert item.contexts == (
        "The cup fell off the table because the cup",
        "The cup fell off the table because the table",
    )
    assert item.continuations == (" was slippery.", " was slippery.")


def test_hellaswag_preprocessing_matches_lm_eval():
    assert (
        hellaswag_preprocess(" Baking: [header] How to bake  bread [title] Mix.") == "Baking: How to bake bread. Mix."
    )


def test_broken_jsonl_line_is_named(tmp_path):
    (tmp_path / "winogrande").mkdir()
    (tmp_path / "winogrande/dev.jsonl").write_text(
        '{"sentence": "a _ b", "option1": "x", "option2": "y", "answer": "1"}\n{broken\n'
    )
    with pytest.raises(UserError, match=r"dev.jsonl:2: not valid JSON"):
        TASKS["winogrande"].load(tmp_path)


def test_labels_file_of_the_wrong_length_is_named(tmp_path):
    (tmp_path / "piqa").mkdir()
    (tmp_path / "piqa/valid.jsonl").write_text('{"goal": "g", "sol1": "a", "sol2": "b"}\n' * 3)
    (tmp_path / "piqa/valid-labels.lst").write_text("0\n1\n")
    with pytest.raises(UserError, match=r"valid-labels.lst.* has 2 lines, expected 3"):
        TASKS["piqa"].load(tmp_path)


def test_missing_and_binary_files_are_named(tmp_path):
    with pytest.raises(UserError, match=r"wiki.test.raw.*not found"):
        TASKS["wikitext2"].load(tmp_path)
    (tmp_path / "wikitext2").mkdir()
    (tmp_path / "wikitext2/wiki.test.raw").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(UserError, match="is binary"):
        TASKS["wikitext2"].load(tmp_path)
