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

Files are the exception: a notebook can read and write files wherever its user can, shared server or
not; that is the grading sandbox's job.
"""

from __future__ import annotations

import contextlib
import queue
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass
class Lane:
    address: str | None  # None: no server could be made ready; grade with the kernel's own Spark
    suspect: bool = False  # set by the grader: the submission timed out or its kernel died


class ConnectLanes:
    """`count` servers started here, or the servers at `addresses` (then none is started or replaced)."""

    def __init__(self, count: int = 1, addresses: Sequence[str] = ()):
        self._stack = contextlib.ExitStack()
        self._servers: dict[str, contextlib.ExitStack] = {}  # address -> what stops it, for the ones started here
        self._free: queue.Queue[str | None] = queue.Queue()
        if addresses:
            for address in addresses:
                self._free.put(address)
        else:
            with ThreadPoolExecutor(max_workers=count) as pool:  # the JVMs start side by side
                for address in pool.map(lambda _: self._start(), range(count)):
                    self._free.put(address)

    def _start(self) -> str:
        from scalelab.clusters import spark_connect_server

        server = contextlib.ExitStack()
        address = server.enter_context(spark_connect_server())
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
                return lane.address
            except RuntimeError as error:  # a server that can't be cleared is not used again as it is
                print(f"warning: {error}", file=sys.stderr)
            if not ours:
                return None
        self._servers.pop(lane.address).close()
        try:
            return self._start()
        except Exception as error:  # noqa: BLE001 - the batch goes on without this server
            print(f"warning: no new Spark Connect server ({error}); this worker goes on without one",
                  file=sys.stderr)
            return None

    def close(self) -> None:
        while self._servers:
            self._servers.popitem()[1].close()

    def __enter__(self) -> ConnectLanes:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _clear_from_another_process(address: str, timeout: float = 120) -> None:
    """`clear`, from a process of its own: a Spark Connect client leaves its mark on its process's
    environment (engines.CONNECT_MODE_VARIABLES), which the grading processes started here inherit."""
    from scalelab.processes import run_group

    run = run_group([sys.executable, "-m", "scalelab.grading.connect_lanes", address], timeout)
    if run.timed_out or run.returncode != 0:
        raise RuntimeError(f"could not clear the Spark Connect server at {address}: {run.stderr[-500:]}")


def clear(address: str) -> None:
    """Drop every table, view and database a notebook can leave on the server, and its cached data."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(address).create()
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


if __name__ == "__main__":
    clear(sys.argv[1])
