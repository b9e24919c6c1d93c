"""Every speed-up changes no result: same removal sets, equal objective values, equal scores."""

import math
from types import SimpleNamespace

import pytest
import torch

from depthprune.core.evaluate import Evaluator
from depthprune.core.loading import load_model
from depthprune.core.prefix import PrefixCache, branch_points, divergence, exact_lower_bound, trie_order
from depthprune.core.runs import Run
from depthprune.core.tasks import demo_items
from depthprune.objectives import build_objective
from depthprune.pipeline.loop import Speedups, run_search
from depthprune.pipeline.memo import SharedMemo
from depthprune.pipeline.prune import PruneConfig, start
from depthprune.searchers import SEARCHERS, Space

NAIVE = Speedups(prefix_cache=False, early_abort=False, shared_context=False, memo=False)
FAST = Speedups(memo=False, cache_bytes=1 << 30)
EQUIVALENCE_SEARCHERS = ["greedy", "beam", "ga", "bo", "oneshot", "random"]


def search(objective, name, space, speed, tmp_path, tag):
    objective.cache = None
    run = Run.create(
        tmp_path / tag, {"model": "t", "objective": {"objective": objective.name}, "searcher": name, "k": space.k}
    )
    result = run_search(objective, SEARCHERS[name](space, seed=2), run, speed=speed)
    values = {frozenset(e.removed): e.value for e in run.events() if e.kind == "candidate" and not e.aborted}
    return result, values


def assert_same(naive, fast):
    (r1, v1), (r2, v2) = naive, fast
    assert r1["removed"] == r2["removed"]
    assert r1["importance"].keys() == r2["importance"].keys()
    for block, value in r1["importance"].items():
        assert r2["importance"][block] == pytest.approx(value, rel=1e-6, abs=1e-9)
    assert r1["value"] == pytest.approx(r2["value"], rel=1e-6, abs=1e-9)
    for s in v1.keys() & v2.keys():
        assert v1[s] == pytest.approx(v2[s], rel=1e-6, abs=1e-9)
    assert set(v2) <= set(v1), "the fast path scored a set the naive path did not"


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "gpt2", "opt", "qwen2"])
def test_speedups_give_the_same_search_results_on_tiny_models(family, tmp_path):
    lm = load_model(f"tiny:{family}:8", device="cpu")
    objective = build_objective("ppl", lm, calib="demo", samples=3, seq_len=48, batch_size=1)
    space = Space(8, 3, frozenset({0}))
    for name in EQUIVALENCE_SEARCHERS:
        naive = search(objective, name, space, NAIVE, tmp_path, f"{name}-naive")
        fast = search(objective, name, space, FAST, tmp_path, f"{name}-fast")
        assert_same(naive, fast)


@pytest.mark.parametrize("name", ["acc", "margin", "kl"])
def test_speedups_give_the_same_results_under_every_objective(name, tmp_path):
    lm = load_model("tiny:llama:8", device="cpu")
    objective = build_objective(
        name, lm, calib="demo", samples=12 if name in ("acc", "margin") else 3, seq_len=48, batch_size=2
    )
    for searcher in ("greedy", "beam"):
        assert_same(
            search(objective, searcher, Space(8, 2), NAIVE, tmp_path, f"{searcher}-naive"),
            search(objective, searcher, Space(8, 2), FAST, tmp_path, f"{searcher}-fast"),
        )


def test_prefix_reuse_brings_greedy_close_to_the_exact_lower_bound(tmp_path):
    lm = load_model("tiny:llama:16", device="cpu")
    objective = build_objective("ppl", lm, calib="demo", samples=2, seq_len=32, batch_size=1)
    space = Space(16, 4)
    counts = {}
    for tag, speed in [("naive", NAIVE), ("fast", Speedups(early_abort=False, memo=False, cache_bytes=1 << 30))]:
        before = objective.engine.block_forwards
        _, values = search(objective, "greedy", space, speed, tmp_path, tag)
        counts[tag] = objective.engine.block_forwards - before
    bound = exact_lower_bound(values, 16) * len(objective.batches)
    assert counts["naive"] == len(values) * 16 * 2 - sum(len(s) for s in values) * 2
    assert bound <= counts["fast"] <= 1.1 * bound
    assert counts["naive"] / counts["fast"] >= 1.9


def test_a_tiny_cache_budget_evicts_but_changes_nothing(tmp_path):
    lm = load_model("tiny:gpt_neox", device="cpu")
    objective = build_objective("ppl", lm, calib="demo", samples=2, seq_len=32, batch_size=1)
    state_bytes = 32 * 64 * 4
    naive = search(objective, "beam", Space(6, 2), NAIVE, tmp_path, "naive")
    fast = search(objective, "beam", Space(6, 2), Speedups(memo=False, cache_bytes=3 * state_bytes), tmp_path, "fast")
    assert_same(naive, fast)


def test_early_abort_bound_never_exceeds_the_true_value():
    lm = load_model("tiny:llama", device="cpu")
    for name in ("ppl", "kl", "acc"):
        objective = build_objective(
            name, lm, calib="demo", samples=4 if name != "acc" else 12, seq_len=32, batch_size=1
        )
        for removed in [(), (0,), (2, 3), (1, 4, 5)]:
            value, aborted, _ = objective.evaluate(removed)
            bound, stopped, _ = objective.evaluate(removed, cutoff=-math.inf)
            assert not aborted and stopped and bound <= value + 1e-9


class StagedLandscape:
    """A fake objective in 4 calibration batches: block i costs c_i, spread evenly over the batches,
    so the running sum is a valid lower bound (like token losses, it only grows)."""

    name, n_blocks, batches = "ppl", 10, 4

    def __init__(self):
        self.cost = [5.0 if i in (0, 9) else 0.1 * i for i in range(10)]
        self.full = 0
        self.cache = None
        self.engine = SimpleNamespace(block_forwards=0, block_tokens=0, device="cpu", dtype="float32")

    def evaluate(self, removed, cutoff=None, branches=frozenset()):
        total = 0.0
        for b in range(self.batches):
            total += sum(self.cost[i] for i in removed) / self.batches
            if cutoff is not None and b < self.batches - 1 and total > cutoff:
                return total, True, None
        self.full += 1
        return total, False, None


def test_early_abort_cuts_hopeless_candidates_without_changing_the_search(tmp_path):
    results = {}
    for tag, speed in [("naive", NAIVE), ("fast", Speedups(prefix_cache=False, memo=False))]:
        objective = StagedLandscape()
        run = Run.create(
            tmp_path / tag, {"model": "t", "objective": {"objective": "ppl"}, "searcher": "greedy", "k": 3}
        )
        results[tag] = (
            run_search(objective, SEARCHERS["greedy"](Space(10, 3), seed=0), run, speed=speed),
            objective.full,
        )
    (naive, naive_full), (fast, fast_full) = results["naive"], results["fast"]
    assert naive["removed"] == fast["removed"] == [1, 2, 3] and naive["value"] == fast["value"]
    assert fast["aborted"] > 0 and fast_full < naive_full


@pytest.mark.parametrize(
    "family", ["llama", "gemma2", "gemma3_text", "mistral", "qwen2", "phi3", "gpt2", "gpt_neox", "opt"]
)
def test_shared_context_scores_equal_one_sequence_per_choice(family):
    lm = load_model(f"tiny:{family}", device="cpu")
    if getattr(lm.model.config, "sliding_window", None):
        lm.model.config.sliding_window = 4096  # long enough for every item, so packing is exercised
    items = demo_items("eval")[:10]
    packed_eval, plain_eval = Evaluator(lm, shared_context=True), Evaluator(lm, shared_context=False)
    for removed in [(), (1, 4)]:
        packed, plain = packed_eval.multiple_choice(items, removed), plain_eval.multiple_choice(items, removed)
        for a, b in zip(packed.loglik, plain.loglik):
            assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-4), family
    assert packed_eval.engine.block_tokens < plain_eval.engine.block_tokens


def test_shared_context_margin_objective_equals_the_plain_one():
    lm = load_model("tiny:llama", device="cpu")
    packed = build_objective("margin", lm, calib="demo", samples=10, shared_context=True)
    plain = build_objective("margin", lm, calib="demo", samples=10, shared_context=False)
    assert any(b.position_ids is not None for b in packed.batches)
    for removed in [(), (2,), (0, 5)]:
        assert packed(removed) == pytest.approx(plain(removed), rel=1e-5)


def test_trie_order_and_branch_points():
    sets = [frozenset(s) for s in ({0, 3}, {1}, {3}, {0, 1}, {2})]
    ordered = trie_order(sets, 4)
    assert [sorted(s) for s in ordered] == [[3], [2], [1], [0, 3], [0, 1]]
    assert divergence(ordered[0], ordered[1], 4) == 2
    points = branch_points(ordered, 4)
    assert points[0] == {2, 1, 0} and points[-1] == set()


def test_prefix_cache_lookup_finds_the_deepest_state_on_the_path():
    cache = PrefixCache(max_bytes=10_000)
    state = torch.zeros(4)
    cache.put(0, 2, {5}, state)  # removed blocks above 2 do not matter for the state entering 2
    cache.put(0, 4, {1}, state)
    assert cache.deepest(0, {5, 7}, 8)[0] == 2
    assert cache.deepest(0, {1, 6}, 8)[0] == 4
    assert cache.deepest(0, {0}, 8) == (0, None)


def test_the_shared_memo_serves_a_second_run_without_evaluating(tmp_path):
    config = PruneConfig(
        model="tiny:llama", objective="ppl", searcher="greedy", k=2, calib="demo", calib_samples=2, calib_seq_len=32
    )
    _, first = start(config, tmp_path)
    _, second = start(config, tmp_path)
    assert second["removed"] == first["removed"] and second["value"] == first["value"]
    assert second["evaluations"] == 0 and second["cached_from_memo"] == first["evaluations"]
    config.speed = {"memo": False}
    _, third = start(config, tmp_path)
    assert third["evaluations"] == first["evaluations"]


def test_shared_memo_ignores_damaged_lines(tmp_path):
    memo = SharedMemo(tmp_path, {"a": 1})
    memo.add(frozenset({1}), 2.5)
    with open(memo.path, "a") as f:
        f.write('not json\n{"removed": [2]')
    assert SharedMemo(tmp_path, {"a": 1}).values == {frozenset({1}): 2.5}


@pytest.mark.demo
def test_speedups_give_the_same_results_on_the_demo_model(demo, tmp_path):
    objective = build_objective("ppl", demo, calib="demo", samples=2, seq_len=24, batch_size=1)
    space = Space(30, 2, frozenset(range(21)))  # 9 removable blocks keep this quick
    for name in EQUIVALENCE_SEARCHERS:
        assert_same(
            search(objective, name, space, NAIVE, tmp_path, f"{name}-n"),
            search(objective, name, space, FAST, tmp_path, f"{name}-f"),
        )
