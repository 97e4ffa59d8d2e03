"""MPI, OpenCL and Dask helpers against the real libraries (MPI through a real mpiexec); which engine
a notebook runs on."""

import os
import time

import nbformat
import pytest

from scalelab import engines, mpi, opencl

RING = """
from mpi4py import MPI
comm = MPI.COMM_WORLD
right, left = (comm.rank + 1) % comm.size, (comm.rank - 1) % comm.size
got = comm.sendrecv(comm.rank, dest=right, source=left)
print(f"rank {comm.rank} got {got}")
"""


@pytest.mark.parametrize("n", [1, 2, 4])
def test_run_mpi_returns_each_ranks_output(n):
    result = mpi.run_mpi(RING, n=n, timeout=60)
    assert result.outputs == [f"rank {r} got {(r - 1) % n}" for r in range(n)]


def test_run_mpi_stops_a_deadlock_with_a_clear_error():
    deadlock = "from mpi4py import MPI\nc = MPI.COMM_WORLD\nc.recv(source=(c.rank + 1) % c.size)\n"
    start = time.monotonic()
    with pytest.raises(mpi.MPITimeout, match="deadlock"):
        mpi.run_mpi(deadlock, n=2, timeout=5)
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("wait", ["c.bcast(None, root=1)", "c.recv(source=1)"])
def test_one_rank_raising_ends_the_job_with_its_traceback_instead_of_a_timeout(wait):
    program = (
        "from mpi4py import MPI\nc = MPI.COMM_WORLD\n"
        "if c.rank == 1:\n    raise ValueError('boom')\n"
        f"{wait}\n"  # rank 0 waits for rank 1 in a collective, or in a receive
    )
    with pytest.raises(mpi.MPIError, match="(?s)rank 1.*ValueError: boom") as raised:
        mpi.run_mpi(program, n=2, timeout=60)
    assert not isinstance(raised.value, mpi.MPITimeout)


def test_a_timeout_shows_each_ranks_stderr_tail():
    # rank 0 reports an error on stderr and goes on to wait; rank 1 writes many lines of its own on stderr
    # and waits too: the timeout must show rank 0's traceback, not only stdout or rank 1's last lines
    program = (
        "import sys, traceback\nfrom mpi4py import MPI\nc = MPI.COMM_WORLD\n"
        "if c.rank == 0:\n    try:\n        raise ValueError('boom')\n    except ValueError:\n"
        "        traceback.print_exc()\n"
        "else:\n    for i in range(50):\n        print('warning', i, file=sys.stderr)\n"
        "sys.stderr.flush()\n"
        "c.recv(source=(c.rank + 1) % c.size)\n"  # both ranks wait for each other
    )
    with pytest.raises(mpi.MPITimeout, match="deadlock") as raised:
        mpi.run_mpi(program, n=2, timeout=5)
    message = str(raised.value)
    assert "[rank 0] ValueError: boom" in message
    assert "[rank 1] warning 49" in message
    assert "stderr" in message.split("Output so far")[0]  # said before the output, not only at the end


def test_each_rank_runs_one_thread_unless_the_caller_says_otherwise(monkeypatch):
    program = "import os\nprint(os.environ['OMP_NUM_THREADS'], os.environ['OPENBLAS_NUM_THREADS'])\n"
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert mpi.run_mpi(program, n=2).outputs == ["1 2", "1 2"]


def test_run_mpi_reports_a_failing_program():
    with pytest.raises(mpi.MPIError, match="ZeroDivisionError"):
        mpi.run_mpi("1 / 0\n", n=2)


def test_mpirun_cell_magic_prints_ranks_in_order():
    from IPython.testing.globalipapp import start_ipython
    from IPython.utils.capture import capture_output

    shell = start_ipython()
    mpi.load_ipython_extension(shell)
    with capture_output() as captured:
        shell.run_cell_magic("mpirun", "-n 3", "from mpi4py import MPI\nprint(MPI.COMM_WORLD.rank * 10)\n")
    assert captured.stdout.split() == ["[rank", "0]", "0", "[rank", "1]", "10", "[rank", "2]", "20"]
    with pytest.raises(mpi.MPIError, match="unknown option"):
        shell.run_cell_magic("mpirun", "--bogus", "pass\n")


def test_opencl_context_without_prompting(monkeypatch, capsys):
    import numpy as np
    import pyopencl as cl
    import pyopencl.array as cla

    monkeypatch.delenv("PYOPENCL_CTX", raising=False)
    context = opencl.get_context()
    assert "OpenCL:" in capsys.readouterr().out
    queue = cl.CommandQueue(context)
    x = cla.to_device(queue, np.arange(7, dtype=np.float32))
    assert (2 * x).get().tolist() == [0, 2, 4, 6, 8, 10, 12]
    monkeypatch.setenv("PYOPENCL_CTX", "0")
    assert opencl.get_context(verbose=False).devices[0].name == context.devices[0].name


def test_opencl_missing_platform_says_how_to_install(monkeypatch):
    import pyopencl as cl

    def no_platform():
        raise cl.LogicError("clGetPlatformIDs failed: PLATFORM_NOT_FOUND_KHR")

    monkeypatch.setattr(cl, "get_platforms", no_platform)
    with pytest.raises(opencl.OpenCLNotFound, match=r"pyopencl\[pocl\]"):
        opencl.get_context()


def test_opencl_bad_pyopencl_ctx_is_explained(monkeypatch):
    monkeypatch.setenv("PYOPENCL_CTX", "7:7")
    with pytest.raises(opencl.OpenCLNotFound, match="PYOPENCL_CTX"):
        opencl.get_context()


@pytest.mark.slow
def test_get_client_local_cluster_then_scheduler(monkeypatch, dask_scheduler, capsys):
    import dask.array as da

    from scalelab import dask as sdask

    monkeypatch.delenv("SCALELAB_DASK_SCHEDULER", raising=False)
    client = sdask.get_client(n_workers=2)
    try:
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2
        assert "LocalCluster with 2 worker processes" in capsys.readouterr().out
        assert sdask.get_client() is client  # one client per kernel
    finally:
        sdask.close_client()
    monkeypatch.setenv("SCALELAB_DASK_SCHEDULER", dask_scheduler)
    client = sdask.get_client()
    try:
        assert client.scheduler.address == dask_scheduler
        assert int(da.ones(1000, chunks=100).sum().compute()) == 1000
    finally:
        sdask.close_client()


def test_program_folder_is_a_fresh_working_directory(monkeypatch, capsys):
    monkeypatch.chdir("/")
    folder = mpi.program_folder()
    assert folder.is_dir() and list(folder.iterdir()) == []
    import os

    assert os.getcwd() == str(folder) and str(folder) in capsys.readouterr().out
    result = mpi.run_mpi("import os\nprint(os.getcwd())\n", n=1)
    assert result.outputs[0] == str(folder)  # programs written there run there


def _notebook(*sources: str, **scalelab_metadata) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["scalelab"] = scalelab_metadata
    return nb


def test_each_notebook_gets_the_engines_its_code_can_use():
    sql = _notebook("spark = get_spark()", "spark.sql('select 1')")
    assert engines.engines_of(sql) == [engines.SPARK_CONNECT]
    assert engines.engines_of(_notebook("spark = get_spark()", "sc = spark.sparkContext")) == [engines.SPARK_STANDALONE]
    assert engines.engines_of(_notebook("get_spark().range(3).rdd")) == [engines.SPARK_STANDALONE]
    assert engines.engines_of(_notebook("get_spark()", spark_connect=False)) == [engines.SPARK_STANDALONE]
    # a Connect notebook that submits a job: the job needs the master, the session stays on Connect
    assert engines.engines_of(_notebook("get_spark()", "spark_submit(job)")) == [engines.SPARK_CONNECT,
                                                                                  engines.SPARK_SUBMIT]
    assert engines.engines_of(_notebook("client = get_client()")) == [engines.DASK]
    assert engines.engines_of(_notebook("import numpy")) == []


def test_a_kernel_is_pointed_at_the_engines_it_can_use_and_no_others(monkeypatch):
    monkeypatch.setenv("SCALELAB_SPARK_MASTER", "spark://elsewhere:7077")
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")  # left by a Connect client in this process
    shared = {"spark_remote": "sc://127.0.0.1:1"}
    with engines.pointed_at(_notebook("get_spark()", "spark.sql('select 1')"), shared):
        assert os.environ["SPARK_REMOTE"] == "sc://127.0.0.1:1"
        assert "SCALELAB_SPARK_MASTER" not in os.environ and "SPARK_CONNECT_MODE_ENABLED" not in os.environ
    with engines.pointed_at(_notebook("get_spark().sparkContext"), shared):  # RDDs: a local Spark
        assert not any(v in os.environ for v in engines.VARIABLES)
    assert os.environ["SCALELAB_SPARK_MASTER"] == "spark://elsewhere:7077"  # given back
    assert os.environ["SPARK_CONNECT_MODE_ENABLED"] == "1" and "SPARK_REMOTE" not in os.environ
