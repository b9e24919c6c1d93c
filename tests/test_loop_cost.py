"""The run's cost counts every block application the search caused, the searchers' engine signals
(CBO's gate gradients, FBS's mutual information, one-shot proxies) included: checked against hooks
that count each block's forward and backward calls."""

import pytest

from depthprune.core.events import Started
from depthprune.core.loading import load_model
from depthprune.pipeline.prune import PruneConfig, start


@pytest.mark.parametrize(
    "searcher, options",
    [("cbo", {}), ("fbs", {"mode": "mi"}), ("oneshot", {"scorer": "bi"}), ("greedy", {}), ("tail", {})],
)
def test_recorded_block_forwards_equal_the_block_calls_the_search_made(searcher, options, tmp_path):
    lm = load_model("tiny:llama:6", device="cpu")
    calls = {"n": 0}

    def counted(*_args):
        calls["n"] += 1

    blocks = lm.model.model.layers
    for block in blocks:
        block.register_forward_hook(counted)
        block.register_full_backward_hook(counted)
    at_start = {}

    def listener(event):
        if isinstance(event, Started):
            at_start["n"] = calls["n"]

    config = PruneConfig(
        model="tiny:llama:6",
        objective="ppl",
        searcher=searcher,
        k=2,
        calib="demo",
        calib_samples=2,
        calib_seq_len=32,
        options=options,
        speed={"prefix_cache": False, "early_abort": False, "memo": False},
    )
    _, result = start(config, tmp_path, listener, lm=lm)
    assert result["block_forwards"] == calls["n"] - at_start["n"]
    if searcher in ("cbo", "fbs", "oneshot"):  # the signal pass is the expensive part, and it counts
        assert result["block_forwards"] > result["evaluations"] * len(blocks)
