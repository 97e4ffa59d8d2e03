"""Shared fixtures: the repository, and real engines on 127.0.0.1 that are always stopped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scalelab import clusters

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("CI", "1")  # no Spark UI in tests


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def spark_master():
    """A Spark standalone master and one worker; the address to put in SCALELAB_SPARK_MASTER."""
    with clusters.spark_standalone(cores=2, memory="2g") as master:
        yield master


@pytest.fixture(scope="session")
def spark_remote():
    """A Spark Connect server; the address to put in SPARK_REMOTE."""
    with clusters.spark_connect_server() as remote:
        yield remote


@pytest.fixture(scope="session")
def dask_scheduler():
    """A Dask scheduler with two worker processes; the address for SCALELAB_DASK_SCHEDULER."""
    with clusters.dask_cluster(workers=2) as address:
        yield address
