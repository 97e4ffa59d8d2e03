"""Warm Spark Connect servers for a grading run: one per grading worker, one submission at a time each.

A Spark lab without RDDs whose kernel connects to a running server starts its session in about a
second, instead of the seconds a new JVM takes for every submission (bench/bench_grading.py). What
keeps submissions apart on a shared server:

* a server serves one submission at a time (a lane per grading worker), never two at once;
* each notebook's Spark Connect session is its own: temporary views, SQL settings and functions are
  private to it;
* between two submissions the server is cleared of what a notebook can leave there for the next one
  to see: the tables and views of every database, global temporary views, cached data;
* after a submission that ran out of time or lost its kernel (a query may still be running on the
  server), a server this run started is replaced by a fresh one.

When the kernels are sandboxed (sandbox.py), each lane's server runs in a sandbox of its own too, with
the same view of the files as its kernels and no network but its own loopback; a kernel reaches it
through a unix socket in the lane's folder (relay.py). A path then means the same file to the notebook
and to Spark: the lane's home folder and /tmp are shared by the server and the kernel graded on it.
Between two submissions, besides the clearing above, those folders are emptied and every process in
the server's sandbox but the server itself is ended (a Python UDF can leave one behind, and a reused
Python worker would keep what a submission changed in it).

Unsandboxed, files are the exception: a notebook can read and write files wherever its user can.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import select
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from scalelab.grading import sandbox


@dataclass
class Lane:
    # sc://HOST:PORT, or the lane's folder for a sandboxed server (sandbox.lane_folder); None: no server
    # could be made ready: grade with the kernel's own Spark
    address: str | None
    suspect: bool = False  # set by the grader: the submission timed out or its kernel died


@dataclass
class _Server:
    stop: contextlib.ExitStack
    # sandboxed: the sandbox's outermost process, and those that make the server (to end all the others)
    sandbox: int | None = None
    keep: set[int] = field(default_factory=set)


class ConnectLanes:
    """`count` servers started here (each in a sandbox of its own with `sandboxed`), or the servers at
    `addresses` (then none is started or replaced)."""

    def __init__(self, count: int = 1, addresses: Sequence[str] = (), sandboxed: bool = False):
        self._sandboxed = sandboxed
        self._servers: dict[str, _Server] = {}  # address -> what stops it, for the ones started here
        self._free: queue.Queue[str | None] = queue.Queue()
        if addresses:
            for address in addresses:
                self._free.put(address)
        elif sandboxed:  # from this thread: a sandbox ends with the thread that started it (--die-with-parent)
            for _ in range(count):
                self._free.put(self._start())
        else:
            with ThreadPoolExecutor(max_workers=count) as pool:  # the JVMs start side by side
                for address in pool.map(lambda _: self._start(), range(count)):
                    self._free.put(address)

    def _start(self) -> str:
        from scalelab.clusters import spark_connect_server

        server = _Server(contextlib.ExitStack())
        if self._sandboxed:
            lane = server.stop.enter_context(sandboxed_server(server))
            address = str(lane)
        else:
            address = server.stop.enter_context(spark_connect_server())
        self._servers[address] = server
        return address

    @contextlib.contextmanager
    def lane(self) -> Iterator[Lane]:
        """A server for one submission, cleared (or replaced) once it is done."""
        lane = Lane(self._free.get())
        try:
            yield lane
        finally:
            self._free.put(self._ready_for_next(lane))

    def _ready_for_next(self, lane: Lane) -> str | None:
        """The lane's server cleared, or a fresh one; None when neither works (the lane then grades
        without a shared server: slower, never unsafe, and no submission is lost)."""
        if lane.address is None:
            return None
        ours = lane.address in self._servers
        if not (lane.suspect and ours):  # a suspect server of ours is replaced; any other is cleared
            try:
                _clear_from_another_process(lane.address)
                if ours and self._sandboxed:
                    _end_all_but_the_server(self._servers[lane.address])
                    sandbox.empty_lane(Path(lane.address))
                return lane.address
            except (RuntimeError, OSError) as error:  # a server that can't be cleared is not used again as it is
                print(f"warning: {error}", file=sys.stderr)
            if not ours:
                return None
        self._servers.pop(lane.address).stop.close()
        try:
            return self._start()
        except Exception as error:  # noqa: BLE001 - the batch goes on without this server
            print(f"warning: no new Spark Connect server ({error}); this worker goes on without one",
                  file=sys.stderr)
            return None

    def close(self) -> None:
        _CLEARER.close()
        while self._servers:
            self._servers.popitem()[1].stop.close()

    def __enter__(self) -> ConnectLanes:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _clear_from_another_process(address: str, timeout: float = 120) -> None:
    """`clear`, from a process of its own: a Spark Connect client leaves its mark on its process's
    environment (engines.CONNECT_MODE_VARIABLES), which the grading processes started here inherit."""
    _CLEARER.clear(address, timeout)


class _Clearer:
    """One long-lived process that clears servers on request (``python -m scalelab.grading.connect_lanes
    --serve``: an address per line in, "ok" or the error per line out): it imports pyspark once, not
    once per submission (about 3 s of CPU each time here)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def clear(self, address: str, timeout: float) -> None:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "scalelab.grading.connect_lanes", "--serve"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
            process = self._process
            try:
                process.stdin.write(address + "\n")
                process.stdin.flush()
                answered = select.select([process.stdout], [], [], timeout)[0]
                reply = process.stdout.readline().strip() if answered else "error: no answer in time"
            except OSError as error:
                reply = f"error: {error}"
            if reply != "ok":
                if reply.startswith("error: no answer") or not reply:
                    self.close_locked()
                raise RuntimeError(f"could not clear the Spark Connect server at {address}: "
                                   f"{reply or 'the clearing process ended'}")

    def close_locked(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()


_CLEARER = _Clearer()
atexit.register(_CLEARER.close)


def _serve_clearing() -> None:
    for line in sys.stdin:
        try:
            clear(line.strip())
            reply = "ok"
        except Exception as error:  # noqa: BLE001 - reported to the lane, which replaces the server
            reply = f"error: {type(error).__name__}: {error}"
        print(" ".join(reply.split())[:1000], flush=True)


def clear(address: str) -> None:
    """Drop every table, view and database a notebook can leave on the server, and its cached data."""
    from pyspark.sql.connect.session import SparkSession

    if address.startswith("sc://"):
        spark = SparkSession.builder.remote(address).create()
    else:  # a sandboxed server: through its lane's socket
        spark = SparkSession.builder.channelBuilder(_unix_socket_channel(sandbox.lane_socket(Path(address)))).create()
    try:
        for view in spark.catalog.listTables("global_temp"):
            spark.catalog.dropGlobalTempView(view.name)
        for database in spark.catalog.listDatabases():
            if database.name != "default":
                spark.sql(f"DROP DATABASE IF EXISTS `{database.name}` CASCADE")
                continue
            for table in spark.catalog.listTables("default"):
                if not table.isTemporary:
                    kind = "VIEW" if table.tableType == "VIEW" else "TABLE"
                    spark.sql(f"DROP {kind} IF EXISTS `default`.`{table.name}`")
        spark.catalog.clearCache()
    finally:
        spark.stop()


def _unix_socket_channel(path: Path):
    """A Spark Connect client's channel to the server behind a unix socket (gRPC's unix: targets)."""
    from pyspark.sql.connect.client import DefaultChannelBuilder

    class UnixSocketChannel(DefaultChannelBuilder):
        @property
        def endpoint(self) -> str:
            return f"unix:{path}"

    return UnixSocketChannel("sc://localhost")


@contextlib.contextmanager
def sandboxed_server(server: _Server, timeout: float = 120) -> Iterator[Path]:
    """A Spark Connect server in a sandbox of its own, on a lane folder of its own (sandbox.server_command);
    yields the lane's folder once the server accepts connections through its socket, and notes in
    `server` the processes that make it (the sandbox, the relay, the JVM)."""
    import psutil

    from scalelab.clusters import _processes, _start, _wait, spark_connect_command, spark_env

    uid = sandbox.new_uid()
    with sandbox.lane_folder(uid) as lane, sandbox.kernel_folder(uid) as workdir, _processes() as procs:
        (workdir / "tmp").mkdir()  # the JVM's own temporary files, out of the /tmp its kernels share
        if uid is not None:
            os.chown(workdir / "tmp", uid, uid)
        inside = Path(sandbox.SERVER_DIR)  # where the sandbox shows `workdir`
        java = f"-Djava.io.tmpdir={inside / 'tmp'} -XX:-UsePerfData"
        spark = spark_connect_command(inside, sandbox.CONNECT_PORT, java)
        env = {**spark_env(inside), "TMPDIR": str(inside / "tmp")}
        log = workdir / "connect.log"
        readable = sandbox.readable_paths()
        procs.append(_start(sandbox.server_command(spark, workdir, lane, sandbox.Limits.from_environment(), uid,
                                                   readable), log, env))
        # the relay makes the socket once the server accepts connections
        _wait(sandbox.lane_socket(lane).exists, "sandboxed Spark Connect server", procs[0], log, timeout)
        below = psutil.Process(procs[0].pid).children(recursive=True)
        jvm = next(p for p in below if p.name() == "java")  # the only JVM yet: spark-submit's launcher has ended
        server.sandbox = procs[0].pid
        server.keep = {procs[0].pid, jvm.pid, *(p.pid for p in jvm.parents() if p in below)}  # not the host's
        yield lane


def _end_all_but_the_server(server: _Server) -> None:
    """Kill every process in a sandboxed server's sandbox but those that make the server: what a
    submission left running there, Spark's Python workers included (Spark starts new ones when it
    needs them)."""
    import psutil

    for _ in range(10):  # a process may fork while the others are listed: again, until none is left
        try:
            below = psutil.Process(server.sandbox).children(recursive=True)
        except psutil.NoSuchProcess as error:
            raise RuntimeError("the sandboxed Spark Connect server is gone") from error
        if not all(psutil.pid_exists(pid) for pid in server.keep):
            raise RuntimeError("the sandboxed Spark Connect server is gone")
        strays = [p for p in below if p.pid not in server.keep and _running(p)]
        if not strays:
            return
        for signal in ("suspend", "kill"):  # stopped first, none of them can start another
            for process in strays:
                with contextlib.suppress(psutil.NoSuchProcess):
                    getattr(process, signal)()
        # gone once the sandbox's pid 1 has reaped them; a loaded machine takes a moment
        psutil.wait_procs(strays, timeout=10)
    raise RuntimeError("processes left by a submission in the sandboxed Spark Connect server keep coming back")


def _running(process) -> bool:
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE  # a zombie waits for the sandbox's pid 1 to reap it
    except psutil.NoSuchProcess:
        return False


if __name__ == "__main__":  # python -m scalelab.grading.connect_lanes --serve (the clearing process)
    _serve_clearing()
