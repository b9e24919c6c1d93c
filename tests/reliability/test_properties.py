"""Property tests (Hypothesis): the run-store reader and the CLI's small parsers never fail with
anything but a UserError, whatever bytes or text they are given, and read valid input back exactly."""

import json
import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depthprune.cli import parse_indices, parse_options
from depthprune.core.errors import UserError
from depthprune.core.events import Candidate, Event, Started, Stopped
from depthprune.core.runs import Run

CONFIG = {"model": "tiny:llama", "objective": {"objective": "ppl"}, "searcher": "greedy", "k": 2}
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

blocks = st.lists(st.integers(0, 63), max_size=6, unique=True)
candidate = st.builds(
    lambda n, r, v, s: Candidate(n=n, removed=r, value=v, seconds=s),
    st.integers(0, 99),
    blocks,
    st.floats(0, 100, allow_nan=False),
    st.floats(0, 10, allow_nan=False),
)
events = st.lists(st.one_of(candidate, st.just(Started()), st.just(Stopped(evaluations=3))), max_size=8)


def fresh_run(valid: list[Event]) -> Run:
    run = Run.create(Path(tempfile.mkdtemp()), CONFIG)
    for event in valid:
        run.append(event)
    return run


def read_back(run: Run) -> list[Event]:
    return [replace(e, t=0.0) for e in run.events()]


@SETTINGS
@given(events, st.binary(max_size=300))
def test_garbage_after_valid_events_is_a_user_error_or_reads_the_valid_prefix(tally, valid, garbage):
    tally["property cases"] += 1
    run = fresh_run(valid)
    with open(run.path / "events.jsonl", "ab") as f:
        f.write(garbage)
    try:
        got = read_back(run)
    except UserError:
        assert b"\n" in garbage, "a torn tail (no newline) must never be an error"
        return
    assert got[: len(valid)] == valid


@SETTINGS
@given(events, st.binary(max_size=300).filter(lambda b: b"\n" not in b))
def test_a_torn_tail_is_ignored_and_cut_by_the_next_append(tally, valid, torn):
    tally["property cases"] += 1
    run = fresh_run(valid)
    with open(run.path / "events.jsonl", "ab") as f:
        f.write(torn)
    assert read_back(run) == valid
    run.append(Stopped(evaluations=1))
    assert read_back(run) == [*valid, Stopped(evaluations=1)]


@SETTINGS
@given(events, st.floats(0, 1))
def test_a_file_cut_at_any_byte_reads_back_its_complete_lines(tally, valid, fraction):
    tally["property cases"] += 1
    run = fresh_run(valid)
    path = run.path / "events.jsonl"
    raw = path.read_bytes()
    cut = round(fraction * len(raw))
    path.write_bytes(raw[:cut])
    assert read_back(run) == valid[: raw[:cut].count(b"\n")]


@SETTINGS
@given(st.lists(st.integers(-(10**6), 10**6), max_size=10))
def test_parse_indices_reads_back_any_list_of_integers(tally, indices):
    tally["property cases"] += 1
    assert parse_indices(", ".join(map(str, indices)), "--remove") == indices


@SETTINGS
@given(st.text(max_size=40))
def test_parse_indices_on_any_text_gives_integers_or_a_user_error(tally, text):
    tally["property cases"] += 1
    try:
        assert all(isinstance(i, int) for i in parse_indices(text, "--remove"))
    except UserError as exc:
        assert "(from --remove)" in str(exc) and "\n" not in str(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@SETTINGS
@given(st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: "=" not in k), json_values, max_size=5))
def test_parse_options_reads_back_json_values(tally, options):
    tally["property cases"] += 1
    assert parse_options([f"{k}={json.dumps(v)}" for k, v in options.items()]) == options


@SETTINGS
@given(st.lists(st.text(max_size=30), max_size=5))
def test_parse_options_on_any_text_gives_a_dict_or_a_user_error(tally, items):
    tally["property cases"] += 1
    try:
        assert isinstance(parse_options(items), dict)
    except UserError as exc:
        assert "(from --option)" in str(exc) and "\n" not in str(exc)


def test_parse_options_survives_absurdly_deep_json():
    assert parse_options(["x=" + "[" * 100000]) == {"x": "[" * 100000}
