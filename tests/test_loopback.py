"""Every server the labs and tools start listens on 127.0.0.1 (issue 16): nothing on another interface.

Each test starts one kind of server the way the course does (the root conftest's loopback clusters, a
notebook's ``get_spark()`` with the Spark UI on and ``get_client()``, ``make lab``) and lists the listening
TCP sockets of its processes with psutil. A socket on 0.0.0.0, ``::`` or a routable address fails the test,
named by process, address and port.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import selectors
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from scalelab import clusters, spark
from scalelab.processes import start_group, stop_group, tail

REPO = Path(__file__).resolve().parents[1]


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:  # a JVM's ::ffff:127.0.0.1
        address = address.ipv4_mapped
    return address.is_loopback


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:  # gone, or a zombie
        return []


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    return [proc, *proc.children(recursive=True)]


def _listening(procs: list[psutil.Process]) -> list[tuple[psutil.Process, str, int]]:
    found = []
    for proc in procs:
        try:
            connections = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found += [(proc, c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN]
    return found


def _describe(proc: psutil.Process) -> str:
    """pid, program and what it runs (a JVM's main class, a Python module), for a failure message."""
    try:
        command, parent = proc.cmdline(), proc.ppid()
    except psutil.Error:
        return f"pid {proc.pid} (gone)"
    main = next((a for a in command if a.startswith(("org.apache.spark.", "distributed.", "pyspark.", "ipykernel",
                                                     "jupyter"))), None) or " ".join(command[1:])[:60]
    return f"pid {proc.pid} (child of {parent}) {Path(command[0]).name if command else '?'} {main}"


def assert_on_loopback(procs: list[psutil.Process], what: str) -> None:
    sockets = _listening(procs)
    assert sockets, f"{what}: no listening socket found in {[_describe(p) for p in procs]}"
    outside = [f"{_describe(p)} on {ip} port {port}" for p, ip, port in sockets if not _is_loopback(ip)]
    assert not outside, f"{what} listens beyond 127.0.0.1:\n  " + "\n  ".join(outside)


def _started_for(address: str) -> list[psutil.Process]:
    """The processes this test process started for the loopback cluster at `address` (…://127.0.0.1:PORT),
    with their children: those that listen on its port, and those given the address (workers)."""
    host_port = address.split("://", 1)[-1]
    port = int(host_port.rsplit(":", 1)[1])
    procs = []
    for child in psutil.Process().children():
        try:
            tree = _tree(child)
        except psutil.NoSuchProcess:
            continue
        if any(host_port in argument for argument in _cmdline(child)) or any(p == port for _, _, p in _listening(tree)):
            procs += tree
    return procs


class Served:
    """A Python program (a notebook's kernel, in short) that prints "ready" and runs until its stdin closes."""

    def __init__(self, code: str, env: dict[str, str], timeout: float, log: Path):
        self.log, self._stderr = log, log.open("w")
        self.proc = start_group([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=self._stderr, env=env, bufsize=0)
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        self.printed = b""
        while b"ready\n" not in self.printed:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                self.stop()
                pytest.fail(f"no 'ready' after {timeout:g} s:\n{self._output()}")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                self.stop()
                pytest.fail(f"exited with status {self.proc.wait()}:\n{self._output()}")
            self.printed += chunk

    def _output(self) -> str:
        stderr = tail(self.log.read_text(errors="replace"), 30)
        return f"{self.printed.decode(errors='replace')}--- stderr ---\n{stderr}"

    def tree(self) -> list[psutil.Process]:
        return _tree(psutil.Process(self.proc.pid))

    def stop(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        stop_group(self.proc, grace=10)  # whatever it left in its group (a JVM)
        self.proc.stdout.close()
        self._stderr.close()


def _is_kernel(proc: psutil.Process) -> bool:
    return any("ipykernel" in argument for argument in _cmdline(proc))


def _kernel_env(**variables: str) -> dict[str, str]:
    """This environment as a student's kernel would have it: no CI (so the Spark UI is on), no engine
    variables, no SPARK_LOCAL_IP: the defaults are what is tested."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "SPARK_LOCAL_IP", "SPARK_REMOTE", "SCALELAB_SPARK_MASTER", "SCALELAB_DASK_SCHEDULER")}
    return {**env, **variables}


SPARK_SESSION = """
import sys
from scalelab.spark import get_spark, stop_spark
spark = get_spark("scalelab-loopback")
assert spark.sparkContext.uiWebUrl, "the Spark UI is off"
spark.sparkContext.parallelize(range(100), 2).map(lambda x: x + 1).sum()  # executors and their Python workers
print("ready", flush=True)
sys.stdin.read()
stop_spark()
"""


@pytest.fixture(scope="module")
def spark_session(spark_master, tmp_path_factory):
    """A notebook's classic session with the UI on (as for a student: CI unset), on the loopback standalone
    cluster, so that the cluster's executors run too."""
    env = _kernel_env(SCALELAB_SPARK_UI="1", SCALELAB_SPARK_MASTER=spark_master)
    served = Served(SPARK_SESSION, env, timeout=240, log=tmp_path_factory.mktemp("spark") / "stderr.log")
    yield served
    served.stop()


def test_the_spark_ui_address_is_loopback_unless_asked_for_while_the_driver_starts(monkeypatch):
    monkeypatch.delenv("SPARK_LOCAL_IP", raising=False)
    with spark._ui_on_loopback("local[*]"):
        assert os.environ["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert "SPARK_LOCAL_IP" not in os.environ, "the kernel's environment keeps what it had"
    with spark._ui_on_loopback("spark://master.example.org:7077"):  # a real cluster must reach the driver
        assert "SPARK_LOCAL_IP" not in os.environ
    monkeypatch.setenv("SPARK_LOCAL_IP", "0.0.0.0")  # the user's choice
    with spark._ui_on_loopback("local[*]"):
        assert os.environ["SPARK_LOCAL_IP"] == "0.0.0.0"
    assert os.environ["SPARK_LOCAL_IP"] == "0.0.0.0"


@pytest.mark.slow
def test_a_spark_session_with_its_ui_listens_on_loopback(spark_session):
    assert_on_loopback(spark_session.tree(), "get_spark()'s driver (UI on)")


@pytest.mark.slow
def test_the_spark_standalone_cluster_listens_on_loopback(spark_master, spark_session):
    """Master and worker (RPC, web UIs, the master's REST server) and the executors of the running session."""
    procs = _started_for(spark_master)
    executors = [p for p in procs if any("CoarseGrainedExecutorBackend" in a for a in _cmdline(p))]
    assert executors, "the session's executors are not running on the standalone cluster"
    assert_on_loopback(procs, "the Spark standalone cluster")


@pytest.mark.slow
def test_the_spark_connect_server_listens_on_loopback(spark_remote):
    assert_on_loopback(_started_for(spark_remote), "the Spark Connect server")


@pytest.mark.slow
def test_the_suites_connect_server_runs_with_the_suites_spark_settings(spark_remote, monkeypatch):
    """SCALELAB_SPARK_CONF (conftest.py: no code generation) reaches a Connect server's sessions, and
    queries still give the right answers there."""
    from pyspark.sql import SparkSession

    from scalelab.engines import CONNECT_MODE_VARIABLES
    from scalelab.spark import extra_conf

    for variable in CONNECT_MODE_VARIABLES:  # the session sets them; the later tests get them back
        monkeypatch.setenv(variable, "")
        monkeypatch.delenv(variable)
    session = SparkSession.builder.remote(spark_remote).create()
    try:
        assert {key: session.conf.get(key) for key in extra_conf()} == extra_conf()
        rows = session.range(10).selectExpr("id % 3 AS k").groupBy("k").count().orderBy("k").collect()
        assert [(r.k, r["count"]) for r in rows] == [(0, 4), (1, 3), (2, 3)]
    finally:
        session.stop()


@pytest.mark.slow
def test_the_dask_cluster_listens_on_loopback(dask_scheduler):
    procs = _started_for(dask_scheduler)
    workers = [p for p in procs if any("dask_worker" in a for a in _cmdline(p))]
    assert len(workers) == 2, f"expected the fixture's 2 `dask worker` commands, found {[_describe(p) for p in procs]}"
    assert_on_loopback(procs, "the Dask scheduler and workers")


DASK_CLIENT = """
import sys
from scalelab.dask import close_client, get_client
get_client(n_workers=2)
print("ready", flush=True)
sys.stdin.read()
close_client()
"""


@pytest.mark.slow
def test_a_notebooks_local_dask_cluster_listens_on_loopback(tmp_path):
    served = Served(DASK_CLIENT, _kernel_env(), timeout=120, log=tmp_path / "stderr.log")
    try:
        procs = served.tree()
        assert len(procs) >= 3, f"expected the kernel and 2 worker processes: {[_describe(p) for p in procs]}"
        assert_on_loopback(procs, "get_client()'s LocalCluster")
    finally:
        served.stop()


@pytest.mark.slow
def test_make_lab_and_its_kernels_listen_on_loopback(tmp_path):
    """`make lab` as a student runs it (JUPYTER_ARGS only picks the port and token), and a kernel in it,
    with a Jupyter config file that asks for every interface, as one left in ~/.jupyter for a server
    might: only JUPYTER_ARGS chooses another address (Makefile)."""
    port, token = clusters.free_port(), secrets.token_hex(16)
    options = f"--no-browser --ServerApp.port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token}"
    log, config = tmp_path / "lab.log", tmp_path / "jupyter-config"
    config.mkdir()
    (config / "jupyter_server_config.py").write_text('c.ServerApp.ip = "0.0.0.0"\n')
    # -o: never (re)install the environment from a test; `make lab`'s own command is what is tested
    with log.open("w") as output:
        lab = start_group(["make", "-C", str(REPO), "-o", ".venv/.scalelab-installed", "lab", f"LAB_DIR={tmp_path}",
                           f"JUPYTER_ARGS={options}"], stdout=output, stderr=subprocess.STDOUT,
                          env=_kernel_env(JUPYTER_CONFIG_DIR=str(config)))
    try:
        clusters._wait(lambda: clusters._port_open(port), "make lab", lab, log, 60)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/kernels", data=b"{}", method="POST",
                                         headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=30):
            pass
        # the kernel is up when its five ZeroMQ sockets listen (shell, iopub, stdin, control, heartbeat)
        deadline = time.monotonic() + 60
        while not any(len(_listening([p])) >= 5 for p in _tree(psutil.Process(lab.pid)) if _is_kernel(p)):
            assert time.monotonic() < deadline, "no kernel listening after 60 s:\n" + tail(log.read_text(), 30)
            time.sleep(0.5)
        assert_on_loopback(_tree(psutil.Process(lab.pid)), "make lab (JupyterLab and a kernel)")
    finally:
        try:
            started = _tree(psutil.Process(lab.pid))
        except psutil.NoSuchProcess:
            started = []
        stop_group(lab)
        for proc in started:  # a kernel runs in a session of its own, out of reach of the group's signal
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
