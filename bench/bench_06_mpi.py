"""06-mpi: how MPI programs scale on this machine, and what pickling costs in a collective.

Three measurements, each the median of 3 runs timed inside the MPI program with ``MPI.Wtime`` (after a
``Barrier``; the slowest rank's time), so that starting Python and importing NumPy are not counted:

- Monte Carlo pi (16 million samples in blocks of 250,000, one generator per block) at 1, 2, 4 processes;
- the 1-D heat stencil with halo exchange (1 million points, 200 steps) at 1, 2, 4 processes;
- lowercase ``allreduce`` (pickle) versus uppercase ``Allreduce`` (buffer) of 1e3 to 1e7 doubles on 2 processes.

Processes beyond the machine's cores are oversubscribed (they take turns): the results file records the
core count, without which the speed-ups can't be read.
"""

from __future__ import annotations

import json
import os

from scalelab.bench import Benchmark
from scalelab.mpi import run_mpi

SCALING = "06-mpi: scaling of Monte Carlo pi and the heat stencil"
ALLREDUCE = "06-mpi: pickle versus buffer Allreduce"
PROCESSES = (1, 2, 4)
REPEAT = 3

_COMMON = """
import json
import sys

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.rank, comm.size


def timed(work, repeat):
    times = []
    for _ in range(repeat):
        comm.Barrier()
        start = MPI.Wtime()
        result = work()
        times.append(comm.allreduce(MPI.Wtime() - start, op=MPI.MAX))
    return float(np.median(times)), result
"""

PI = _COMMON + """
N, B, SEED, REPEAT = (int(a) for a in sys.argv[1:5])


def work():
    hits = 0
    for b in range(rank, -(-N // B), size):
        rng = np.random.default_rng([SEED, b])
        count = min(B, N - b * B)
        x, y = rng.random(count), rng.random(count)
        hits += int(np.count_nonzero(x * x + y * y <= 1.0))
    return comm.allreduce(hits, op=MPI.SUM)


seconds, hits = timed(work, REPEAT)
if rank == 0:
    print(json.dumps({"seconds": seconds, "pi": 4 * hits / N}))
"""

STENCIL = _COMMON + """
N, STEPS, REPEAT = (int(a) for a in sys.argv[1:4])
ALPHA = 0.25
counts = [N // size + (1 if r < N % size else 0) for r in range(size)]
start = sum(counts[:rank])
left = rank - 1 if rank > 0 else MPI.PROC_NULL
right = rank + 1 if rank < size - 1 else MPI.PROC_NULL
first = 2 if rank == 0 else 1
last = counts[rank] - 1 if rank == size - 1 else counts[rank]


def work():
    local = np.zeros(counts[rank] + 2)
    local[1:-1] = np.sin(np.linspace(0.0, 3.0, N)[start:start + counts[rank]])
    inner, before, after = slice(first, last + 1), slice(first - 1, last), slice(first + 1, last + 2)
    for _ in range(STEPS):
        comm.Sendrecv(local[1:2], dest=left, recvbuf=local[-1:], source=right)
        comm.Sendrecv(local[-2:-1], dest=right, recvbuf=local[0:1], source=left)
        local[inner] = local[inner] + ALPHA * (local[before] - 2 * local[inner] + local[after])
    return comm.allreduce(float(local[1:-1].sum()), op=MPI.SUM)


seconds, total = timed(work, REPEAT)
if rank == 0:
    print(json.dumps({"seconds": seconds, "sum": total}))
"""

ALLREDUCE_PROGRAM = _COMMON + """
REPEAT = int(sys.argv[1])
rows = []
for n in (int(a) for a in sys.argv[2:]):
    x = np.ones(n)
    out = np.empty_like(x)
    pickle_s, summed = timed(lambda: comm.allreduce(x, op=MPI.SUM), REPEAT)
    buffer_s, _ = timed(lambda: comm.Allreduce(x, out, op=MPI.SUM), REPEAT)
    assert np.array_equal(summed, out) and out[0] == size
    rows.append({"doubles": n, "pickle": pickle_s, "buffer": buffer_s})
if rank == 0:
    print(json.dumps(rows))
"""


def _run(program: str, n: int, args: list) -> dict | list:
    return json.loads(run_mpi(program, n=n, args=[str(a) for a in args], timeout=600).lines(0)[-1])


def scaling_rows() -> list[dict[str, str]]:
    rows = []
    for name, program, args in (
        ("Monte Carlo pi, 16 M samples", PI, [16_000_000, 250_000, 0, REPEAT]),
        ("heat stencil, 1 M points x 200 steps", STENCIL, [1_000_000, 200, REPEAT]),
    ):
        results = {n: _run(program, n, args) for n in PROCESSES}
        answers = {json.dumps({k: v for k, v in r.items() if k != "seconds"}) for r in results.values()}
        if len(answers) != 1 and name.startswith("Monte"):
            raise RuntimeError(f"{name}: the answer depends on the number of processes: {answers}")
        base = results[1]["seconds"]
        for n, result in results.items():
            speedup = base / result["seconds"]
            rows.append({"program": name, "processes": str(n), "median (s)": f"{result['seconds']:.3f}",
                         "speed-up": f"{speedup:.2f}x", "efficiency": f"{speedup / n:.0%}"})
            print(rows[-1], flush=True)
    return rows


def allreduce_rows() -> list[dict[str, str]]:
    sizes = [1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    rows = []
    for row in _run(ALLREDUCE_PROGRAM, 2, [REPEAT, *sizes]):
        rows.append({"doubles": f"{row['doubles']:.0e}", "allreduce, pickle (ms)": f"{row['pickle'] * 1e3:.3f}",
                     "Allreduce, buffer (ms)": f"{row['buffer'] * 1e3:.3f}",
                     "pickle / buffer": f"{row['pickle'] / row['buffer']:.1f}x"})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    benchmark = Benchmark(__file__)
    cores = os.cpu_count()
    notes = (f"Median of {REPEAT} runs, timed inside the program (slowest rank, after a Barrier). "
             f"{cores} logical cores: runs with more processes than that are oversubscribed. "
             f"Load average at the start: {benchmark.load_before}.")
    benchmark.record(SCALING, scaling_rows(), notes + " Speed-up = T(1) / T(n); efficiency = speed-up / n.")
    benchmark.record(ALLREDUCE, allreduce_rows(), notes + " 2 processes; the sum of 2 arrays of ones.")


if __name__ == "__main__":
    main()
