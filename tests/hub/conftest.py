"""Fixtures of the hub tests: `hf_home`, a session-wide offline cache (hubdata.py), and `hf_offline`,
which points the libraries at it with offline mode on (environment for subprocesses; for this process
also the modules' own constants, which they read at import)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubdata import build_cache, offline_env


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory, data_dir) -> Path:
    home = tmp_path_factory.mktemp("hf_home")
    build_cache(home, data_dir)
    return home


@pytest.fixture
def hf_offline(hf_home, monkeypatch) -> Path:
    """This process and its children read the offline cache `hf_home` (nothing else)."""
    import datasets.config
    import huggingface_hub.constants as hub_constants

    for key, value in offline_env(hf_home).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(hub_constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", hf_home / "datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return hf_home
