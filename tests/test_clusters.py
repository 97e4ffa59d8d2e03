"""The 00-setup lab runs unchanged against real engines on 127.0.0.1 (the cluster guide, tested)."""

from pathlib import Path

import pytest

from scalelab.grading import cases

SETUP = Path(__file__).resolve().parent.parent / "solutions" / "00-setup" / "00-setup.ipynb"


def _run_solution(monkeypatch, **env) -> str:
    for name in ("SCALELAB_SPARK_MASTER", "SPARK_REMOTE", "SCALELAB_DASK_SCHEDULER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the kernel inherits this process's environment
    with cases.LiveNotebook(SETUP) as live:
        live.finish()
    assert live.cell_errors == []
    assert live.solution_points == live.full_points
    return "".join(o.get("text", "") for c in live.client.nb.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_setup_lab_on_a_standalone_spark_cluster_and_a_dask_scheduler(monkeypatch, spark_master, dask_scheduler):
    printed = _run_solution(monkeypatch, SCALELAB_SPARK_MASTER=spark_master, SCALELAB_DASK_SCHEDULER=dask_scheduler)
    assert f"master {spark_master}" in printed
    assert f"scheduler {dask_scheduler}" in printed


@pytest.mark.slow
def test_setup_lab_on_a_spark_connect_server(monkeypatch, spark_remote):
    printed = _run_solution(monkeypatch, SPARK_REMOTE=spark_remote)
    assert f"Spark Connect at {spark_remote}" in printed
