"""Start real engines on 127.0.0.1 and always stop them: for tests, and to try the cluster guide.

Every port they open (RPC, web UIs, dashboards, the Spark master's REST server) listens on 127.0.0.1 only
(tests/test_loopback.py); a cluster other machines reach is started by hand (README, "Running on a cluster").

Each function is a context manager that yields the address to put in the environment:

    with spark_standalone() as master:      # SCALELAB_SPARK_MASTER=spark://127.0.0.1:PORT
    with spark_connect_server() as remote:  # SPARK_REMOTE=sc://127.0.0.1:PORT
    with dask_cluster(workers=2) as addr:   # SCALELAB_DASK_SCHEDULER=tcp://127.0.0.1:PORT

``python -m scalelab.clusters spark|connect|dask`` starts one in the foreground until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from scalelab.processes import start_group, stop_group, tail
from scalelab.spark import extra_conf, java_options, pyspark_home

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait(ready, what: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}:\n{_log_tail(log)}")
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.5)
    raise TimeoutError(f"{what} was not ready after {timeout:g} s:\n{_log_tail(log)}")


def _log_tail(log: Path) -> str:
    try:
        return tail(log.read_text(errors="replace"), 40)
    except OSError:
        return "(no log)"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


@contextlib.contextmanager
def _processes() -> Iterator[list[subprocess.Popen]]:
    """Processes started into the yielded list are killed (with their children) on exit."""
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            stop_group(proc)


def _start(command: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    return start_group(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def spark_env(workdir: Path) -> dict:
    from scalelab.java import ensure_java

    ensure_java()
    return {
        **os.environ,
        "SPARK_HOME": str(pyspark_home()),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOCAL_DIRS": str(workdir),
        "SPARK_WORKER_DIR": str(workdir / "work"),
        "SPARK_NO_DAEMONIZE": "1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_DAEMON_JAVA_OPTS": java_options(),
    }


@contextlib.contextmanager
def spark_standalone(cores: int = 2, memory: str = "2g", timeout: float = 90) -> Iterator[str]:
    """A Spark standalone master and one worker; yields ``spark://127.0.0.1:PORT``."""
    with tempfile.TemporaryDirectory(prefix="scalelab-spark-") as tmp:
        workdir = Path(tmp)
        env = spark_env(workdir)
        spark_class = str(pyspark_home() / "bin" / "spark-class")
        port, ui = free_port(), free_port()
        master = f"spark://{HOST}:{port}"
        with _processes() as procs:
            procs.append(_start([spark_class, "org.apache.spark.deploy.master.Master", "--host", HOST,
                                 "--port", str(port), "--webui-port", str(ui)], workdir / "master.log", env))
            _wait(lambda: _port_open(port), "Spark master", procs[0], workdir / "master.log", timeout)
            procs.append(_start([spark_class, "org.apache.spark.deploy.worker.Worker", "--host", HOST,
                                 "--cores", str(cores), "--memory", memory, "--webui-port", str(free_port()),
                                 master], workdir / "worker.log", env))

            def worker_alive() -> bool:
                with urllib.request.urlopen(f"http://{HOST}:{ui}/json/", timeout=2) as page:
                    return json.load(page).get("aliveworkers", 0) >= 1

            _wait(worker_alive, "Spark worker", procs[1], workdir / "worker.log", timeout)
            yield master


@contextlib.contextmanager
def spark_connect_server(timeout: float = 120) -> Iterator[str]:
    """A Spark Connect server (local[2] inside); yields ``sc://127.0.0.1:PORT``."""
    with tempfile.TemporaryDirectory(prefix="scalelab-connect-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        with _processes() as procs:
            procs.append(_start(spark_connect_command(workdir, port), workdir / "connect.log", spark_env(workdir)))
            _wait(lambda: _port_open(port), "Spark Connect server", procs[0], workdir / "connect.log", timeout)
            yield f"sc://{HOST}:{port}"


def spark_connect_command(workdir: Path, port: int, java: str = "") -> list[str]:
    """spark-submit's arguments for a Spark Connect server on 127.0.0.1:`port` with the course's settings,
    its scratch and warehouse in `workdir`; `java`: more options for its JVM."""
    return [
        str(pyspark_home() / "bin" / "spark-submit"),
        "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--master", "local[2]",
        "--conf", f"spark.connect.grpc.binding.address={HOST}",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.ui.enabled=false",
        "--conf", f"spark.driver.host={HOST}",
        "--conf", f"spark.driver.bindAddress={HOST}",
        "--conf", "spark.sql.shuffle.partitions=4",
        "--conf", f"spark.sql.warehouse.dir={workdir / 'warehouse'}",  # tables vanish with it
        "--conf", f"spark.driver.extraJavaOptions={java_options()} {java}".strip(),
        *[arg for key, value in extra_conf().items() for arg in ("--conf", f"{key}={value}")],
        "spark-internal",
    ]


@contextlib.contextmanager
def dask_cluster(workers: int = 2, timeout: float = 60) -> Iterator[str]:
    """`dask scheduler` and `workers` x `dask worker` processes; yields ``tcp://127.0.0.1:PORT``."""
    with tempfile.TemporaryDirectory(prefix="scalelab-dask-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        address = f"tcp://{HOST}:{port}"
        dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
        with _processes() as procs:
            procs.append(_start([*dask, "--host", HOST, "--port", str(port), "--dashboard-address",
                                 f"{HOST}:0"], workdir / "scheduler.log"))
            _wait(lambda: _port_open(port), "Dask scheduler", procs[0], workdir / "scheduler.log", timeout)
            for i in range(workers):
                # --no-dashboard drops the dashboard's pages, not the worker's HTTP server (/health,
                # /metrics), which listens on every interface unless given an address
                procs.append(_start([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                     "--host", HOST, "--nworkers", "1", "--nthreads", "1",
                                     "--local-directory", str(workdir / f"w{i}"), "--no-dashboard",
                                     "--dashboard-address", f"{HOST}:0"], workdir / f"worker{i}.log"))

            def all_workers() -> bool:
                from distributed import Client

                with Client(address, timeout="5s") as client:
                    return len(client.scheduler_info(n_workers=-1)["workers"]) >= workers

            _wait(all_workers, "Dask workers", procs[-1], workdir / "worker0.log", timeout)
            yield address


def _exit_on_signal(number: int, frame: object) -> None:
    raise SystemExit(128 + number)  # unwinds the context managers, which stop the engines


def main(argv: list[str] | None = None) -> int:
    kinds = {"spark": (spark_standalone, "SCALELAB_SPARK_MASTER"), "connect": (spark_connect_server, "SPARK_REMOTE"),
             "dask": (dask_cluster, "SCALELAB_DASK_SCHEDULER")}
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in kinds:
        print(f"usage: python -m scalelab.clusters {{{'|'.join(kinds)}}}", file=sys.stderr)
        return 2
    start, variable = kinds[args[0]]
    # the engines run in their own sessions: a plain `kill` of this process must still stop them
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _exit_on_signal)
    with start() as address:
        print(f"ready. In another terminal: export {variable}={address}   (Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
