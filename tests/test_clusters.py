"""The labs run unchanged against real engines on 127.0.0.1 (the cluster guide, tested).

Every notebook that starts Spark or Dask runs its grading cases on the standalone Spark cluster or the
Dask scheduler fixture (tests/test_grading.py); Spark Connect runs are here and in the module tests.
"""

from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parent.parent / "solutions" / "00-setup" / "00-setup.ipynb"


@pytest.mark.slow
def test_setup_lab_on_a_spark_connect_server(run_solution, spark_remote):
    printed = run_solution(SETUP, SPARK_REMOTE=spark_remote)
    assert f"Spark Connect at {spark_remote}" in printed
