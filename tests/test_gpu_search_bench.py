"""benchmarks/gpu_search.py runs (its --tiny size, on CPU) and its naive and optimised searches agree.
The full-size GPU run is a benchmark, not a test (BENCHMARKS.md)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_search_benchmark_tiny_smoke():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_search.py"), "--tiny", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert [r["workload"] for r in report["rows"]] == ["greedy k=2", "oneshot k=2"]
    for row in report["rows"]:
        assert row["identical"]
        assert row["naive"]["evaluations"] == row["optimised"]["evaluations"] > 0
        assert row["optimised"]["block_forwards"] < row["naive"]["block_forwards"]
        assert row["naive"]["peak_memory_bytes"] > 0
    greedy = report["rows"][0]["naive"]
    assert greedy["evaluations"] == 8 + 7  # two greedy steps over 8 blocks
    # naive: every candidate runs its kept blocks on both calibration batches
    assert greedy["block_forwards"] == 2 * (8 * 7 + 7 * 6)
