"""Child processes that can't outlive their time limit, and the end of what they printed.

A Spark job, an MPI run and a grading worker each start processes of their own (a JVM, the ranks, a
kernel). Each runs in its own process group, so that a timeout or a stop ends all of them at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool


def run_group(command: list[str], timeout: float, **popen) -> Finished:
    """Run `command` in a new process group; after `timeout` seconds kill it (`kill_tree`), then collect the output.

    Output is captured as text (stdout and stderr unless `popen` says otherwise, e.g. ``stderr=STDOUT``).
    """
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    with subprocess.Popen(command, text=True, start_new_session=True, **popen) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            kill_tree(proc)  # the group, and what left it (a Jupyter kernel starts a session of its own)
            out, err = proc.communicate()
            timed_out = True
    return Finished(proc.returncode, out or "", err or "", timed_out)


def start_group(command: list[str], **popen) -> subprocess.Popen:
    """Start a long-running `command` (a server) in a new process group; stop it with `stop_group`."""
    return subprocess.Popen(command, start_new_session=True, **popen)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL `proc`'s process group and every process started below it, also those in a group of
    their own: a Jupyter kernel starts in a session of its own, and one busy in C code that holds the
    GIL (``sum(range(10**15))``) never notices that its parent is gone."""
    import psutil

    try:
        below = psutil.Process(proc.pid).children(recursive=True)  # before the kill: then they are orphans
    except psutil.NoSuchProcess:
        below = []
    kill_group(proc)
    for child in below:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()  # psutil checks that the pid is still that process


def stop_group(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM to the group, then SIGKILL if it is still there after `grace` seconds."""
    kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.wait()


def tail(text: str, lines: int = 30) -> str:
    """The last `lines` lines of `text`, for an error message."""
    return "\n".join(text.splitlines()[-lines:])
