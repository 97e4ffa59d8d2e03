"""The labs run unchanged against real engines on 127.0.0.1 (the cluster guide, tested).

Every notebook that starts Spark or Dask runs its grading cases on the standalone Spark cluster or the
Dask scheduler fixture (tests/test_grading.py); Spark Connect runs are here and in the module tests.
"""

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scalelab import clusters

SETUP = Path(__file__).resolve().parent.parent / "solutions" / "00-setup" / "00-setup.ipynb"


@pytest.mark.slow
def test_setup_lab_on_a_spark_connect_server(run_solution, spark_remote):
    printed = run_solution(SETUP, SPARK_REMOTE=spark_remote)
    assert f"Spark Connect at {spark_remote}" in printed


@pytest.mark.slow
def test_killing_the_cluster_command_stops_its_engines():
    """`kill` (SIGTERM) of `python -m scalelab.clusters dask` must not leave the scheduler running."""
    command = subprocess.Popen([sys.executable, "-m", "scalelab.clusters", "dask"], stdout=subprocess.PIPE,
                               text=True)
    try:
        line = command.stdout.readline()  # "ready. In another terminal: export ...=tcp://127.0.0.1:PORT ..."
        address = re.search(r"tcp://127\.0\.0\.1:(\d+)", line)
        assert address, f"no scheduler address in {line!r}"
        port = int(address.group(1))
        assert clusters._port_open(port)
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=60) != 0
        assert not clusters._port_open(port), "the scheduler outlived the command"
    finally:
        command.kill()
