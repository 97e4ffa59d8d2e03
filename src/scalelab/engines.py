"""Which engine a notebook starts, so that a kernel can be pointed at one that is already running.

A notebook asks for its engines through ``get_spark()`` and ``get_client()``, which read the
environment (``spark.py``, ``dask.py``). The test suite points each solution's kernel at loopback
clusters, and the batch grader points the kernels of Spark labs without RDDs at a warm Spark Connect
server; both decide here which notebook goes where.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # spark.py imports this module in every kernel: no notebook library at import
    import nbformat


@dataclass(frozen=True)
class Engine:
    name: str  # the key of its address in the mappings passed around
    variable: str  # the environment variable that points a kernel at it
    banner: str  # what the notebook prints once connected, with {} for the address


SPARK_CONNECT = Engine("spark_remote", "SPARK_REMOTE", "Spark Connect at {}")
SPARK_STANDALONE = Engine("spark_master", "SCALELAB_SPARK_MASTER", "master {}")
# a notebook on Spark Connect that also runs jobs with spark_submit(): they go to the master
SPARK_SUBMIT = Engine("spark_master", "SCALELAB_SPARK_MASTER", "")
DASK = Engine("dask_scheduler", "SCALELAB_DASK_SCHEDULER", "scheduler {}")
# what a process that opened a Spark Connect session is left with; a kernel that inherits them is in
# Connect mode whatever SPARK_REMOTE says, and a classic session fails
CONNECT_MODE_VARIABLES = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE")
VARIABLES = tuple(engine.variable for engine in (SPARK_CONNECT, SPARK_STANDALONE, DASK)) + CONNECT_MODE_VARIABLES
RDD_API = ("sparkContext", ".rdd")  # Spark Connect has no RDDs


def engines_of(notebook: nbformat.NotebookNode) -> list[Engine]:
    """The engines the notebook starts: Spark Connect for Spark labs without RDDs, unless its metadata
    says ``{"scalelab": {"spark_connect": false}}``, else a Spark master; the master as well for a
    Connect notebook that runs jobs with ``spark_submit``; Dask's scheduler."""
    code = "".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    engines = []
    if "get_spark(" in code:
        connect = notebook.metadata.get("scalelab", {}).get("spark_connect", True)
        engines.append(SPARK_CONNECT if connect and not any(api in code for api in RDD_API) else SPARK_STANDALONE)
        if engines[-1] is SPARK_CONNECT and "spark_submit(" in code:
            engines.append(SPARK_SUBMIT)
    if "get_client(" in code:
        engines.append(DASK)
    return engines


@contextlib.contextmanager
def pointed_at(notebook: nbformat.NotebookNode, addresses: Mapping[str, str]) -> Iterator[list[Engine]]:
    """While inside, this process's environment (which a kernel started now inherits) points at the
    engines in `addresses` (engine name -> address) that the notebook starts, and at no other;
    yields those engines. The environment is restored on exit."""
    saved = {variable: os.environ.get(variable) for variable in VARIABLES}
    chosen = [engine for engine in engines_of(notebook) if engine.name in addresses]
    try:
        for variable in VARIABLES:
            os.environ.pop(variable, None)
        for engine in chosen:
            os.environ[engine.variable] = addresses[engine.name]
        yield chosen
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value
