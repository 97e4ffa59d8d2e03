"""Run MPI programs from a notebook with the real ``mpiexec``.

An MPI program is a set of processes started together, so it cannot run inside the notebook's
kernel. ``run_mpi`` writes the program to a file and starts ``mpiexec -n N python file.py`` as a
subprocess with a timeout: a deadlock or a crash ends that run, never the kernel. In a notebook,
``%%mpirun -n 4`` does the same for a cell (this module registers the magic when imported in IPython;
``%load_ext scalelab.mpi`` also works).

More processes than cores is allowed (MPICH's launcher oversubscribes), which is slow but correct.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scalelab.processes import run_group, tail

INSTALL_HINT = "install MPI with `pip install mpich mpi4py` (or run `make setup`)"


class MPIError(RuntimeError):
    """The MPI program failed, or could not be started."""


class MPITimeout(MPIError):
    """The MPI program did not finish in time (often a deadlock)."""


def find_mpiexec() -> Path:
    """The mpiexec that matches mpi4py: the one installed beside this Python first."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return beside
    found = shutil.which("mpiexec")
    if found:
        return Path(found)
    raise MPIError(f"No mpiexec found beside {sys.executable} or on PATH: {INSTALL_HINT}.")


# Each rank sends its stdout and stderr to its own files: mpiexec's merged, labelled stream splits
# lines whenever a rank writes a line in two pieces.
_LAUNCHER = """\
import os, runpy, sys
folder, script = sys.argv[1], sys.argv[2]
rank = os.environ.get("PMI_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or "0"
for fd, kind in ((1, "out"), (2, "err")):
    target = os.open(os.path.join(folder, f"rank-{rank}.{kind}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(target, fd)
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as stop:
    if stop.code not in (None, 0):
        raise
except BaseException:
    # as `python -m mpi4py` does: one rank's exception ends the whole job at once, instead of leaving
    # the other ranks waiting for it in a receive or a collective until the time limit
    import traceback
    traceback.print_exc()
    sys.stderr.flush()
    if "mpi4py.MPI" in sys.modules:
        sys.modules["mpi4py.MPI"].COMM_WORLD.Abort(1)
    raise
"""


# One thread per rank: with N ranks on N cores, the OpenMP and BLAS thread pools that NumPy and scikit-learn
# open in every rank would each want every core (measured here: 4 ranks of a scikit-learn grid search on 2 cores,
# 21 -> 15 cpu-s). A variable the caller has set is left as it is.
ONE_THREAD_PER_RANK = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class MPIResult:
    """What an MPI run printed: ``outputs[r]`` and ``errors[r]`` are rank r's stdout and stderr."""

    n: int
    returncode: int
    outputs: list[str]
    errors: list[str]

    def lines(self, rank: int) -> list[str]:
        return self.outputs[rank].splitlines()

    @property
    def stderr(self) -> str:
        return "".join(f"[rank {r}] {line}\n" for r, e in enumerate(self.errors) for line in e.splitlines())

    def __str__(self) -> str:
        return "\n".join(f"--- rank {r} ---\n{out}" for r, out in enumerate(self.outputs))


def run_mpi(
    program: str | os.PathLike,
    n: int = 4,
    timeout: float = 60,
    args: list[str] | tuple[str, ...] = (),
    check: bool = True,
    cwd: str | os.PathLike | None = None,
) -> MPIResult:
    """Run `program` (a .py file, or Python source) on `n` MPI processes and return their output.

    Raises MPITimeout after `timeout` seconds, and MPIError on a non-zero exit when `check` is True.
    Each rank runs its OpenMP and BLAS pools with one thread unless the environment says otherwise.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    with tempfile.TemporaryDirectory(prefix="scalelab-mpi-") as tmp:
        folder = Path(tmp)
        script = _as_script(program, folder)
        launcher = folder / "launch_rank.py"
        launcher.write_text(_LAUNCHER)
        command = [
            str(find_mpiexec()), "-n", str(n), "-launcher", "fork",
            sys.executable, str(launcher), str(folder), str(script), *map(str, args),
        ]
        env = {**ONE_THREAD_PER_RANK, **os.environ}
        run = run_group(command, timeout, stderr=subprocess.STDOUT, cwd=cwd, env=env)  # a timeout kills every rank
        result = MPIResult(n, run.returncode, _read(folder, n, "out"), _read(folder, n, "err"))
    if run.timed_out:
        errors = _stderr_tails(result)
        raise MPITimeout(
            f"the MPI program did not finish within {timeout:g} s on {n} processes and was stopped. "
            + ("Some ranks wrote on stderr (at the end of this message): an error there, in a rank that then "
               "stopped or waited elsewhere, can leave the others waiting for it. " if errors else "")
            + "A common cause is a deadlock: every rank waiting in a blocking call (recv, or a send "
            "of a large message) for a partner that is also waiting. Output so far:\n" + tail(str(result))
            + (f"\nand on stderr (the last lines of each rank):\n{errors}" if errors else "")
        )
    if check and result.returncode != 0:
        raise MPIError(
            f"the MPI program exited with status {result.returncode} on {n} processes:\n"
            + tail(result.stderr or run.stdout or str(result))
        )
    return result


def _stderr_tails(result: MPIResult, lines: int = 15) -> str:
    """The last `lines` lines of each rank's stderr, labelled: one chatty rank can't push another's
    traceback out of the message."""
    return "\n".join(
        tail("".join(f"[rank {r}] {line}\n" for line in text.splitlines()), lines)
        for r, text in enumerate(result.errors) if text.strip()
    )


def _read(folder: Path, n: int, kind: str) -> list[str]:
    texts = []
    for rank in range(n):
        path = folder / f"rank-{rank}.{kind}"
        texts.append(path.read_text(errors="replace").rstrip("\n") if path.exists() else "")
    return texts


def _as_script(program: str | os.PathLike, folder: Path) -> Path:
    if isinstance(program, os.PathLike) or (
        isinstance(program, str) and "\n" not in program and program.endswith(".py")
    ):
        path = Path(program)
        if not path.exists():
            raise MPIError(f"MPI program {path} does not exist")
        return path.resolve()
    script = folder / "mpi_program.py"
    script.write_text(str(program))
    return script


def program_folder(prefix: str = "scalelab-mpi-") -> Path:
    """A new scratch folder, made the working directory, for the programs a notebook writes.

    ``%%writefile prog.py`` writes into the working directory; beside the notebook that would be the
    course tree, where a stray program would end up in the next release.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    os.chdir(folder)
    print(f"MPI programs and their data are written to {folder}")
    return folder


def mpirun_magic(line: str, cell: str) -> MPIResult:
    """%%mpirun [-n N] [--timeout S]: run the cell as an MPI program and print each rank's output."""
    options = shlex.split(line)
    n, timeout = 4, 60.0
    while options:
        flag = options.pop(0)
        if flag in ("-n", "-np") and options:
            n = int(options.pop(0))
        elif flag == "--timeout" and options:
            timeout = float(options.pop(0))
        else:
            raise MPIError(f"%%mpirun: unknown option {flag!r}; use %%mpirun -n 4 [--timeout 60]")
    result = run_mpi(cell, n=n, timeout=timeout)
    for rank, out in enumerate(result.outputs):
        print(f"[rank {rank}] " + out.replace("\n", f"\n[rank {rank}] ") if out else f"[rank {rank}]")
    return result


def _mpirun_cell(line: str, cell: str) -> None:
    mpirun_magic(line, cell)  # printed already; returning None keeps the cell's output clean


def load_ipython_extension(ipython) -> None:
    ipython.register_magic_function(_mpirun_cell, magic_kind="cell", magic_name="mpirun")


def _register_if_in_ipython() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        load_ipython_extension(shell)


_register_if_in_ipython()
