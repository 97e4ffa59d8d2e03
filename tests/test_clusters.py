"""The labs run unchanged against real engines on 127.0.0.1 (the cluster guide, tested).

Every notebook that starts Spark or Dask runs its grading cases on a loopback fixture (tests/test_grading.py):
RDD labs on the standalone Spark cluster, DataFrame labs on the Spark Connect server, Dask labs on the
scheduler. Here: the cluster command itself.
"""

import re
import signal
import subprocess
import sys

import pytest

from scalelab import clusters


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
