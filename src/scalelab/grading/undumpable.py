"""Run a Python module (``python -m scalelab.grading.undumpable MODULE ARGS...``) in a process that is
not dumpable, as the grader starts each sandboxed kernel.

Linux lets a process write its own memory through ``/proc/self/mem`` with a plain ``open()``, and lets
another process of the same user attach to it (ptrace). Code in a submission could so rewrite the
grader's checks below anything the scan of its text (scan.py) can see: tried in the sandbox, a bytes
object's contents changed from Python without ctypes. ``prctl(PR_SET_DUMPABLE, 0)`` before the kernel
starts makes ``/proc/<kernel>/mem`` the real root's and refuses ptrace to the sandbox's user: the same
write then fails with "Permission denied". Turning it back on needs ``prctl`` again, which Python only
reaches through ctypes (scan.py holds such a cell back). Programs the kernel starts (a JVM, mpiexec)
are dumpable again, as every ``execve`` makes them; they never were the judge.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import sys

PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def forbid_dumps() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_DUMPABLE, 0) failed: {os.strerror(error)}")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m scalelab.grading.undumpable MODULE [ARGS...]")
    forbid_dumps()
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]  # as `python -m MODULE ARGS...` would see them
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
