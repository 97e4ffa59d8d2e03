"""nbgrader in a process of its own (``python -m scalelab.grading.worker``), so that a kernel that dies,
a notebook that hangs or nbgrader aborting on odd metadata ends that process, never the batch.

    worker prepare --root R --assignment A    # gradebook template: generate_assignment into R
    worker grade   --root R --assignment A --student S [--cell-timeout T]
    worker serve   --reply-fd N               # a grading lane's worker: submission after submission

``prepare`` and ``grade`` do one run and print its ``Outcome`` as one JSON line on stdout. ``grade``
takes the submission's secret token and shared engines from SCALELAB_SENTINEL and
SCALELAB_GRADING_ENGINES, and removes them from the environment before any kernel starts. The batch
runner uses them for the gradebook templates and on a Dask cluster's workers (one process per
submission there).

``serve`` is the long-lived worker of a grading lane on this machine (``GradingProcess``). It imports
nbgrader once, then reads one request at a time on stdin (a JSON line: the submission's course root,
student, cell time limit, secret token and shared engines), grades it and writes the ``Outcome`` as one
JSON line on the reply pipe, file descriptor N. Its stdout and stderr are not a reply channel: the
kernels it starts inherit them (a JVM's log lines land there), so they go to a log file whose tail
explains a failure. Private to each submission: its course root and gradebook, its kernel (and the JVM
or Spark Connect session that kernel starts), its secret token (preprocessors.start_submission). Shared
by the submissions of a lane: the nbgrader process, replaced after SUBMISSIONS_PER_PROCESS submissions
and after any submission that ran out of time (killed with its process group and its kernel), crashed
it or failed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import io
import json
import logging
import os
import secrets
import select
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from traitlets.config import Config

from scalelab.grading.course import nbgrader_config
from scalelab.processes import kill_tree

# A lane's worker grades at most this many submissions, then a fresh one takes over: what nbgrader and
# the libraries it loads keep between runs can't grow without bound.
SUBMISSIONS_PER_PROCESS = 20
# How long a new worker may take to import nbgrader and say it is ready (not counted in a submission's
# time limit: a few seconds, more on a loaded machine).
START_TIMEOUT_S = 300
READY = "ready"  # the worker's first line on the reply pipe
LOG_TAIL_CHARS = 6000  # of the worker's log, in a failure's Outcome
# in the row of a notebook whose kernel was stopped after a cell ran past its time limit and ignored the
# interrupt (preprocessors.ExecuteOnSharedEngines); the batch then replaces its lane's Connect server
TIME_LIMIT_NOTE = "ran past its time limit"


class Failure(enum.StrEnum):
    """Why a grading process ended without grades, when more is known than nbgrader's message."""

    TIMED_OUT = "timed out"  # the batch runner stopped the process at its time limit
    KERNEL_DIED = "kernel died"  # the notebook's kernel process ended while it ran


@dataclass(frozen=True)
class Outcome:
    """A grading process's reply to the batch runner."""

    success: bool
    error: str = ""
    log: str = ""
    failure: Failure | None = None
    # notebook name -> a cell that ran past its time limit and ignored the interrupt: its kernel was
    # stopped and the notebook graded on what ran before it (preprocessors.ExecuteOnSharedEngines)
    stopped: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, line: str) -> Outcome:
        data = json.loads(line)
        return cls(data["success"], data["error"], data["log"], data["failure"] and Failure(data["failure"]),
                   data.get("stopped") or {})


def course_config(root: Path, cell_timeout: int | None = None) -> Config:
    config = nbgrader_config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    config.CourseDirectory.release_directory = str(root / "release")
    if cell_timeout:
        config.Execute.timeout = cell_timeout
    return config


def run(action: str, root: Path, assignment: str, student: str | None, cell_timeout: int | None) -> Outcome:
    """One nbgrader run; for "grade", call preprocessors.start_submission first."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from scalelab.grading import preprocessors  # the module the course configuration loads

    root.mkdir(parents=True, exist_ok=True)
    config = course_config(root, cell_timeout)
    log_text = io.StringIO()
    handler = logging.StreamHandler(log_text)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    api.log.addHandler(handler)  # a logger of the process: the handler must go when the run ends
    try:
        if action == "prepare":
            result = api.generate_assignment(assignment, force=True, create=True)
        else:
            result = api.autograde(assignment, student, force=True, create=True)
            if result.get("success"):
                feedback = api.generate_feedback(assignment, student, force=True)
                result = result if feedback.get("success") else feedback
    finally:
        api.log.removeHandler(handler)
    return Outcome(
        success=bool(result.get("success")),
        error=result.get("error") or "",
        log=(result.get("log") or "") + log_text.getvalue(),
        failure=Failure.KERNEL_DIED if preprocessors.kernel_died else None,
        stopped=dict(preprocessors.stopped_at_time_limit),
    )


def serve(reply_fd: int) -> int:
    """Grade the requests read on stdin, one at a time, each Outcome a line on `reply_fd`; until EOF."""
    from scalelab.grading import preprocessors

    os.set_inheritable(reply_fd, False)  # the kernels started here must not be able to reply
    with os.fdopen(reply_fd, "w", encoding="utf-8") as reply:
        reply.write(READY + "\n")
        reply.flush()
        for line in sys.stdin:
            request = json.loads(line)
            preprocessors.start_submission(request["token"], request["shared_engines"])
            try:
                outcome = run("grade", Path(request["root"]), request["assignment"], request["student"],
                              request["cell_timeout"])
            except Exception as error:  # noqa: BLE001 - a failed run is this submission's outcome
                outcome = Outcome(False, error=f"{type(error).__name__}: {error}", log=traceback.format_exc())
            reply.write(outcome.to_json() + "\n")
            reply.flush()
    return 0


class GradingProcess:
    """The long-lived ``worker serve`` process of one grading lane: one submission at a time, each
    within its time limit. After a timeout, a crash or a failed run (and after `per_process`
    submissions) the process is killed with its process group, and the next submission gets a fresh
    one. Use from one thread at a time; `close` when the batch ends."""

    def __init__(self, env: dict | None = None, per_process: int = SUBMISSIONS_PER_PROCESS,
                 start_timeout: float = START_TIMEOUT_S):
        self.env, self.per_process, self.start_timeout = env, per_process, start_timeout
        self.started = 0  # worker processes started so far
        self._worker: _Served | None = None

    def grade(self, root: Path, assignment: str, student: str, cell_timeout: int | None, timeout: float,
              token: str, shared_engines: dict[str, str] | None = None) -> Outcome:
        """Grade one submission's course root; `timeout` seconds from the request to the reply."""
        if self._worker is None:
            started = self._start()
            if isinstance(started, Outcome):
                return started
        worker = self._worker
        request = {"root": str(root), "assignment": assignment, "student": student, "cell_timeout": cell_timeout,
                   "token": token, "shared_engines": shared_engines}
        try:
            worker.proc.stdin.write(json.dumps(request) + "\n")
            worker.proc.stdin.flush()
            reply = worker.read_line(timeout)
        except OSError:  # BrokenPipeError: it died before the request
            reply = ""
        if reply is None:
            self._end()
            return Outcome(False, error=f"stopped after {timeout:g} s", failure=Failure.TIMED_OUT)
        try:
            outcome = Outcome.from_json(reply)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            return self._failed("grader process failed")
        worker.graded += 1
        if worker.graded >= self.per_process or not outcome.success:
            self._end()
        return outcome

    def _start(self) -> _Served | Outcome:
        read_end, write_end = os.pipe()
        log = tempfile.TemporaryFile(prefix="scalelab-worker-", suffix=".log")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "scalelab.grading.worker", "serve", "--reply-fd", str(write_end)],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, pass_fds=(write_end,),
                start_new_session=True, text=True, env=self.env)
        except BaseException:
            os.close(read_end)
            log.close()
            raise
        finally:
            os.close(write_end)  # the worker holds it: EOF on read_end once the worker is gone
        self.started += 1
        self._worker = _Served(proc, read_end, log)
        ready = self._worker.read_line(self.start_timeout)
        if ready == READY:
            return self._worker
        why = f"did not start within {self.start_timeout:g} s" if ready is None else "failed to start"
        return self._failed(f"grader process {why}")

    def _failed(self, what: str) -> Outcome:
        worker = self._end()
        return Outcome(False, error=f"{what} (exit {worker.proc.returncode})", log=worker.tail)

    def _end(self) -> _Served | None:
        """Kill the worker and everything left in its process group."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()
        return worker

    def close(self) -> None:
        self._end()

    def __enter__(self) -> GradingProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Served:
    """A running ``worker serve`` process: its stdin, the read end of its reply pipe, its log file."""

    def __init__(self, proc: subprocess.Popen, reply_fd: int, log):
        self.proc, self.reply_fd, self.log = proc, reply_fd, log
        self.graded = 0
        self.tail = ""  # the end of its log, once stopped
        self._buffer = b""

    def read_line(self, timeout: float) -> str | None:
        """The next reply line; "" at EOF (the worker is gone), None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.reply_fd], [], [], left)[0]:
                return None
            chunk = os.read(self.reply_fd, 1 << 16)
            if not chunk:
                return ""
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def stop(self) -> None:
        """Kill it, its process group and its kernel (in a session of its own), keep the end of its log
        (`tail`), release its pipes and log file."""
        kill_tree(self.proc)  # before the wait: the group can't be a stranger's while it is unreaped
        self.proc.wait()
        size = os.fstat(self.log.fileno()).st_size
        start = max(0, size - LOG_TAIL_CHARS)
        self.tail = os.pread(self.log.fileno(), size - start, start).decode("utf-8", "replace")
        self.log.close()
        with contextlib.suppress(OSError):  # a request it never read: nothing to flush to
            self.proc.stdin.close()
        os.close(self.reply_fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scalelab.grading.worker")
    parser.add_argument("action", choices=["prepare", "grade", "serve"])
    parser.add_argument("--root", type=Path)
    parser.add_argument("--assignment")
    parser.add_argument("--student")
    parser.add_argument("--cell-timeout", type=int)
    parser.add_argument("--reply-fd", type=int)
    args = parser.parse_args(argv)
    if args.action == "serve":
        if args.reply_fd is None:
            parser.error("serve needs --reply-fd")
        from nbgrader.apps import NbGraderAPI  # noqa: F401 - imported once, before saying ready

        return serve(args.reply_fd)
    if args.root is None or args.assignment is None:
        parser.error(f"{args.action} needs --root and --assignment")
    if args.action == "grade":
        from scalelab.grading import preprocessors

        preprocessors.start_submission(os.environ.pop("SCALELAB_SENTINEL", "") or secrets.token_hex(12),
                                       json.loads(os.environ.pop("SCALELAB_GRADING_ENGINES", "null")))
    outcome = run(args.action, args.root, args.assignment, args.student, args.cell_timeout)
    sys.stdout.write(outcome.to_json() + "\n")
    return 0 if outcome.success else 1


if __name__ == "__main__":
    sys.exit(main())
