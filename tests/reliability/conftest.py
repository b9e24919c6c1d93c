"""Fault-injection and bad-input suite: every test records what it exercised in `tally`, and the
session ends with one line of counts in the terminal summary (so CI logs show the coverage).

Tiny models run on one CPU thread here (in-process, in forked children, and in subprocesses given
the `single_thread_env` fixture): with more, OpenMP threads spinning on a busy machine slow them down tenfold."""

import os
from collections import Counter

import pytest
import torch

TALLY: Counter = Counter()


@pytest.fixture(scope="session")
def tally() -> Counter:
    """Counts of exercised kill points, bad inputs and property cases (printed at the end)."""
    return TALLY


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread for this module's tests (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def single_thread_env() -> dict:
    """The environment for subprocesses running tiny models."""
    return os.environ | {"OMP_NUM_THREADS": "1"}


def pytest_terminal_summary(terminalreporter):
    if TALLY:
        terminalreporter.write_line(
            f"reliability: {TALLY['bad inputs']} bad inputs, {TALLY['kill points']} kill points, "
            f"{TALLY['random kill cycles']} random kill cycles, "
            f"{TALLY['real faults']} real-fault cases, {TALLY['property cases']} property cases"
        )
