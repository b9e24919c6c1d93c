import os
from pathlib import Path

import pytest
import torch

from depthprune.core.families import FAMILIES
from depthprune.core.loading import load_model

ROOT = Path(__file__).resolve().parents[1]
FAMILY_NAMES = sorted(FAMILIES)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The official benchmark files (../shared/data or $DEPTHPRUNE_DATA_DIR); skips when absent."""
    path = Path(os.environ.get("DEPTHPRUNE_DATA_DIR") or ROOT.parent / "shared" / "data").resolve()
    if not (path / "SOURCES.md").is_file():
        pytest.skip(f"official benchmark files not found at {path} (set DEPTHPRUNE_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def demo():
    """The real SmolLM2-135M-Instruct demo model (loaded once per test session)."""
    return load_model("demo", device="cpu")
