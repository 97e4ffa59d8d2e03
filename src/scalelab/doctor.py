"""`make doctor`: what this machine offers the labs, and how to fix what is missing.

Each line is ``ok``, ``--`` (missing or broken, followed by the fix) or ``..`` (a detail).
The checks only look: no Spark session, cluster or MPI job is started, except one 1-process
``mpiexec`` run that proves MPI works.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    info: bool = False  # a detail under the line above, not a check of its own
    optional: bool = False  # only some tests need it: missing, it is reported but the machine is still healthy

    def lines(self) -> list[str]:
        mark = ".." if self.info else "ok" if self.ok else "--"
        out = [f"{mark} {self.name:<10} {self.detail}"]
        if not self.ok and self.fix:
            out.append(f"   {'':<10} fix: {self.fix}")
        return out


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return ""


def check_python() -> Finding:
    ok = (3, 11) <= sys.version_info[:2] < (3, 13)
    return Finding("Python", ok, f"{platform.python_version()} at {sys.executable}",
                   "use Python 3.11 or 3.12 (mrjob does not import on 3.13): `make PYTHON=python3.11 setup`")


def check_java() -> Finding:
    from scalelab.java import JavaNotFound, find_java

    try:
        return Finding("Java", True, find_java().describe())
    except JavaNotFound as error:
        return Finding("Java", False, "no Java 17 or 21 found", str(error).split("To fix: ", 1)[-1])


def check_spark() -> Finding:
    from scalelab.spark import class_archive_path, spark_master, spark_remote

    version = _version("pyspark")
    if not version:
        return Finding("Spark", False, "pyspark is not installed", "run `make setup`")
    where = f"Spark Connect {spark_remote()}" if spark_remote() else f"master {spark_master()}"
    connect = "with" if _version("grpcio") else "without"
    archive = "drivers start from the class archive" if class_archive_path().exists() else \
        "no class archive (drivers start a few seconds slower; `.venv/bin/python -m scalelab.spark archive`)"
    return Finding("Spark", True, f"pyspark {version} ({where}; {connect} the Spark Connect client; {archive})")


def check_mpi() -> Finding:
    from scalelab.mpi import INSTALL_HINT, MPIError, find_mpiexec, run_mpi

    if not _version("mpi4py"):
        return Finding("MPI", False, "mpi4py is not installed", INSTALL_HINT)
    try:
        result = run_mpi("from mpi4py import MPI\nprint(MPI.Get_library_version().splitlines()[0])", n=1,
                         timeout=60)
        library = " ".join(result.outputs[0].split())
    except MPIError as error:
        return Finding("MPI", False, f"mpi4py {_version('mpi4py')}, but mpiexec failed: {error}", INSTALL_HINT)
    return Finding("MPI", True, f"mpi4py {_version('mpi4py')}, {library}, {find_mpiexec()}")


def check_opencl() -> list[Finding]:
    from scalelab.opencl import INSTALL_HINT, OpenCLNotFound, list_devices

    if not _version("pyopencl"):
        return [Finding("OpenCL", False, "pyopencl is not installed", "run `make setup`")]
    try:
        devices = list_devices()
    except OpenCLNotFound as error:
        return [Finding("OpenCL", False, f"pyopencl {_version('pyopencl')}, no platform", str(error))]
    except Exception as error:  # a broken ICD loader or driver
        return [Finding("OpenCL", False, f"pyopencl {_version('pyopencl')}: {error}", INSTALL_HINT)]
    found = [Finding("OpenCL", True, f"pyopencl {_version('pyopencl')}, {len(devices)} device(s)")]
    found += [Finding("", True, f"[{i}] {d.describe()}", info=True) for i, d in enumerate(devices)]
    if not any(d.kind == "GPU" for d in devices):
        found.append(Finding("", True, "no GPU device: kernels run on the CPU (set PYOPENCL_CTX to choose)", info=True))
    return found


def check_dask() -> Finding:
    version = _version("dask")
    if not version or not _version("distributed"):
        return Finding("Dask", False, "dask or distributed is not installed", "run `make setup`")
    target = os.environ.get("SCALELAB_DASK_SCHEDULER") or "a LocalCluster on this machine"
    return Finding("Dask", True, f"dask {version}, distributed {_version('distributed')} ({target})")


def check_machine() -> list[Finding]:
    import psutil

    cores = os.cpu_count() or 0
    memory = psutil.virtual_memory()
    return [
        Finding("Cores", cores >= 2, f"{cores} logical ({psutil.cpu_count(logical=False)} physical)",
                "parallel speed-ups need at least 2 cores; the labs still run on 1"),
        Finding("Memory", memory.total >= 4 * 2**30,
                f"{memory.total / 2**30:.1f} GiB total, {memory.available / 2**30:.1f} GiB available",
                "Spark and Dask labs want about 4 GiB free; close other programs"),
    ]


BROWSERS = ("chromium", "chromium-browser", "google-chrome")
BROWSER_INSTALL = "apt-get install -y chromium (as root on Debian), or install Chromium or Google Chrome"


def find_chromium() -> str | None:
    """The Chromium (or Chrome) that the browser tests drive, or None."""
    return next(filter(None, map(shutil.which, BROWSERS)), None)


def check_browser() -> Finding:
    found = find_chromium()
    detail = f"{found} for the browser tests" if found else "no Chromium (only the browser tests need one; they skip)"
    return Finding("Browser", found is not None, detail, BROWSER_INSTALL, optional=True)


def check_sandbox() -> Finding:
    """`make grade` runs student code in a bubblewrap sandbox: start one, as a kernel's would start."""
    from scalelab.grading.sandbox import INSTALL_HINT, check

    found = check()
    detail = f"{found.detail} (make grade runs student code in it)" if found.ok else \
        f"{found.detail}: make grade refuses to grade unless told UNSANDBOXED=1"
    return Finding("Sandbox", found.ok, detail, INSTALL_HINT, optional=True)


def check_grading() -> Finding:
    version = _version("nbgrader")
    kernel = _kernel_registered()
    ok = bool(version) and kernel
    detail = f"nbgrader {version or 'missing'}, jupyterlab {_version('jupyterlab') or 'missing'}, " + (
        "kernel 'scalelab' registered" if kernel else "kernel 'scalelab' missing")
    return Finding("Jupyter", ok, detail, "run `make setup` (it registers the 'scalelab' kernel)")


def _kernel_registered() -> bool:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        return "scalelab" in KernelSpecManager().find_kernel_specs()
    except Exception:
        return False


def findings() -> list[Finding]:
    checks: list[Callable[[], Finding | list[Finding]]] = [
        check_python, check_machine, check_java, check_spark, check_mpi, check_opencl, check_dask,
        check_grading, check_sandbox, check_browser,
    ]
    out: list[Finding] = []
    for check in checks:
        result = check()
        out.extend(result if isinstance(result, list) else [result])
    return out


def report() -> tuple[str, bool]:
    found = findings()
    text = "\n".join(line for f in found for line in f.lines())
    return text, all(f.ok or f.optional for f in found)


def main() -> int:
    text, healthy = report()
    print(text)
    print("all good" if healthy else "some checks failed: see the `fix:` lines above")
    return 0 if healthy else 1
