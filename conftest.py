"""pytest settings for the whole repository (tests/ and the solution notebooks that nbval runs)."""

import os

import pytest

os.environ.setdefault("CI", "1")  # no Spark UI in kernels started by tests


def pytest_collection_modifyitems(items):
    """A solution notebook run by nbval is a slow test (`make test-fast` leaves it out)."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
