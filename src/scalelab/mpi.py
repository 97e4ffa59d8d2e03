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
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "install MPI with `pip install mpich mpi4py` (or run `make setup`)"
_LABEL = re.compile(r"^\[(\d+)\] ?(.*)$")


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


@dataclass
class MPIResult:
    """What an MPI run printed, split by rank."""

    n: int
    returncode: int
    stdout: str  # every rank's lines, each prefixed with "[rank] " by mpiexec
    stderr: str

    @property
    def outputs(self) -> list[str]:
        """outputs[r] is what rank r printed to stdout, in its own order."""
        per_rank: list[list[str]] = [[] for _ in range(self.n)]
        for line in self.stdout.splitlines():
            match = _LABEL.match(line)
            if match and int(match.group(1)) < self.n:
                per_rank[int(match.group(1))].append(match.group(2))
        return ["\n".join(lines) for lines in per_rank]

    def lines(self, rank: int) -> list[str]:
        return self.outputs[rank].splitlines()

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
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    with tempfile.TemporaryDirectory(prefix="scalelab-mpi-") as tmp:
        script = _as_script(program, Path(tmp))
        command = [
            str(find_mpiexec()), "-n", str(n), "-launcher", "fork", "-l",
            sys.executable, str(script), *map(str, args),
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=cwd, env=env, start_new_session=True,  # its own process group, to kill every rank
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            stdout, stderr = proc.communicate()
            raise MPITimeout(
                f"the MPI program did not finish within {timeout:g} s on {n} processes and was stopped. "
                "A common cause is a deadlock: every rank waiting in a blocking call (recv, or a send "
                "of a large message) for a partner that is also waiting. Output so far:\n"
                + _tail(stdout + stderr)
            ) from None
    result = MPIResult(n=n, returncode=proc.returncode, stdout=stdout, stderr=stderr)
    if check and result.returncode != 0:
        raise MPIError(
            f"the MPI program exited with status {result.returncode} on {n} processes:\n"
            + _tail(stderr or stdout)
        )
    return result


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


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


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
