"""The run store: append-only events, torn last lines ignored, atomic JSON, clear errors."""

import json

import pytest

from depthprune.core.errors import UserError
from depthprune.core.events import Candidate
from depthprune.core.runs import Run, list_runs

CONFIG = {"model": "tiny:llama", "objective": {"objective": "ppl"}, "searcher": "greedy", "k": 2}


def test_events_round_trip_and_build_the_memo(tmp_path):
    run = Run.create(tmp_path, CONFIG)
    run.append(Candidate(n=0, removed=[3], value=1.5, seconds=0.1))
    run.append(Candidate(n=0, removed=[1, 3], value=2.0, seconds=0.1))
    reopened = Run.open(run.id, tmp_path)
    assert reopened.memo() == {frozenset({3}): 1.5, frozenset({1, 3}): 2.0}
    assert all(e.kind == "candidate" and e.t > 0 for e in reopened.events())
    assert reopened.state == "incomplete"


def test_a_torn_last_line_is_ignored(tmp_path):
    run = Run.create(tmp_path, CONFIG)
    run.append(Candidate(n=0, removed=[3], value=1.5, seconds=0.1))
    with open(run.path / "events.jsonl", "a") as f:
        f.write('{"v": 1, "type": "evaluation", "removed": [2], "val')
    assert run.memo() == {frozenset({3}): 1.5}


def test_appending_after_a_crash_cuts_the_torn_line_first(tmp_path):
    run = Run.create(tmp_path, CONFIG)
    run.append(Candidate(n=0, removed=[3], value=1.5, seconds=0.1))
    with open(run.path / "events.jsonl", "a") as f:
        f.write('{"v": 1, "type": "evaluation", "removed": [2], "val')
    run.append(Candidate(n=0, removed=[4], value=2.5, seconds=0.1))
    assert run.memo() == {frozenset({3}): 1.5, frozenset({4}): 2.5}


def test_a_runs_directory_that_is_a_file_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is not writable"):
        Run.create(tmp_path / "file", CONFIG)


def test_a_broken_line_in_the_middle_is_named(tmp_path):
    run = Run.create(tmp_path, CONFIG)
    with open(run.path / "events.jsonl", "a") as f:
        f.write("garbage\n")
    run.append(Candidate(n=0, removed=[3], value=1.5, seconds=0.1))
    with pytest.raises(UserError, match=r"events.jsonl:1: broken event line"):
        run.events()


def test_foreign_and_corrupt_directories_are_refused(tmp_path):
    (tmp_path / "foreign").mkdir()
    with pytest.raises(UserError, match="not a depthprune run directory"):
        Run.open(tmp_path / "foreign")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt/run.json").write_text("{half")
    with pytest.raises(UserError, match=r"corrupt run\.json"):
        Run.open(tmp_path / "corrupt")
    (tmp_path / "other").mkdir()
    (tmp_path / "other/run.json").write_text(json.dumps({"schema": 99}))
    with pytest.raises(UserError, match="not a depthprune run"):
        Run.open(tmp_path / "other")
    with pytest.raises(UserError, match="not found"):
        Run.open("nope", tmp_path)
    assert list_runs(tmp_path) == []


def test_result_is_written_atomically_and_marks_the_run_finished(tmp_path):
    run = Run.create(tmp_path, CONFIG)
    run.write_result({"removed": [1, 2], "value": 3.0})
    assert run.result() == {"removed": [1, 2], "value": 3.0}
    assert run.state == "finished"
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == []


def test_two_runs_created_in_the_same_second_get_distinct_directories(tmp_path):
    a, b = Run.create(tmp_path, CONFIG), Run.create(tmp_path, CONFIG)
    assert a.path != b.path and [r.id for r in list_runs(tmp_path)] == sorted([a.id, b.id])
