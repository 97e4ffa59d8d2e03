"""Shared fixtures: the repository, and real engines on 127.0.0.1 that are always stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab import clusters
from scalelab.grading import cases

REPO = Path(__file__).resolve().parent.parent


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


@pytest.fixture
def run_solution(monkeypatch):
    """Run a solution notebook top to bottom with the given engine variables; return what it printed.

    Fails when any cell errors or a test cell loses points. The kernel inherits this process's
    environment, so e.g. ``run_solution(path, SCALELAB_DASK_SCHEDULER=address)`` runs it on a cluster.
    """

    def run(notebook: Path, **env: str) -> str:
        for name in ("SCALELAB_SPARK_MASTER", "SPARK_REMOTE", "SCALELAB_DASK_SCHEDULER"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with cases.LiveNotebook(notebook) as live:
            live.finish()
        assert live.cell_errors == []
        assert live.solution_points == live.full_points
        return live.printed()

    return run
