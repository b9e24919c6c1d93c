"""Fault-injection and bad-input suite: every test records what it exercised in `tally`, and the
session ends with one line of counts in the terminal summary (so CI logs show the coverage)."""

from collections import Counter

import pytest

TALLY: Counter = Counter()


@pytest.fixture(scope="session")
def tally() -> Counter:
    """Counts of exercised kill points, bad inputs and property cases (printed at the end)."""
    return TALLY


def pytest_terminal_summary(terminalreporter):
    if TALLY:
        terminalreporter.write_line(f"reliability: {TALLY['kill points']} kill points, {TALLY['bad inputs']} bad inputs, "
                                    f"{TALLY['property cases']} property cases")
