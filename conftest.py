"""pytest settings for the whole repository: tests/ and the solution notebooks that nbval runs.

`make test` runs every solution notebook top to bottom in a fresh kernel with nbval (`--nbval-lax`:
a cell fails on an error; outputs are compared only in cells marked ``# NBVAL_CHECK_OUTPUT``). The
summary at the end lists the slowest notebooks against the per-notebook budget that keeps the
whole suite inside its time goal (docs/testing.md).
"""

import os
from collections import defaultdict
from pathlib import Path

import pytest

os.environ.setdefault("CI", "1")  # no Spark UI in kernels started by tests

NOTEBOOK_BUDGET_S = 60  # one solution notebook, top to bottom, on 2 cores
_notebook_seconds: dict[str, float] = defaultdict(float)


def pytest_collection_modifyitems(items):
    """A notebook run by nbval is slow (`make test-fast` leaves it out)."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    ranked = sorted(_notebook_seconds.items(), key=lambda kv: -kv[1])
    terminalreporter.section(f"slowest solution notebooks (nbval, budget {NOTEBOOK_BUDGET_S} s each)")
    for path, seconds in ranked[:10]:
        flag = "  OVER BUDGET" if seconds > NOTEBOOK_BUDGET_S else ""
        terminalreporter.write_line(f"{seconds:7.1f} s  {Path(path).stem}{flag}")
    terminalreporter.write_line(f"{sum(_notebook_seconds.values()):7.1f} s  all {len(ranked)} notebooks")
