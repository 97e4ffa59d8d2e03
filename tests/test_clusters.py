"""The 00-setup lab runs unchanged against real engines on 127.0.0.1 (the cluster guide, tested)."""

from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parent.parent / "solutions" / "00-setup" / "00-setup.ipynb"


@pytest.mark.slow
def test_setup_lab_on_a_standalone_spark_cluster_and_a_dask_scheduler(run_solution, spark_master, dask_scheduler):
    printed = run_solution(SETUP, SCALELAB_SPARK_MASTER=spark_master, SCALELAB_DASK_SCHEDULER=dask_scheduler)
    assert f"master {spark_master}" in printed
    assert f"scheduler {dask_scheduler}" in printed


@pytest.mark.slow
def test_setup_lab_on_a_spark_connect_server(run_solution, spark_remote):
    printed = run_solution(SETUP, SPARK_REMOTE=spark_remote)
    assert f"Spark Connect at {spark_remote}" in printed
