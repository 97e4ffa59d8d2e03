"""nbgrader preprocessors that close the traps listed in autograder/README.md (one step, one class).

``autograder/nbgrader_config.py`` puts them into nbgrader's autograde and feedback chains:

* ``AppendSentinel`` / ``RequireSentinel``: every test cell must run to its last line. A submission
  that neutralises later cells (an IPython input transformer, a ``pre_run_cell`` hook) loses the
  points of every test cell it touched. A tripwire, not a proof: see autograder/README.md.
* ``DemoteStderr``: text on stderr (Spark's log4j, ``warnings.warn``) no longer zeroes a test cell;
  only an error does.
* ``TruncateOutputs``: a megabyte-long line can't bloat the graded notebook or the feedback page.
* ``ScrubTracebacks``: feedback pages show a failed check's message, not the hidden test code that the
  traceback would quote (nbgrader's ``ClearHiddenTests`` removes it from the cell source).
* ``SkipDemonstrations``: cells tagged ``skip-when-grading`` (timing loops, "Scale it up"
  measurements) are not run while grading; nothing a test cell needs lives in them.
* ``ExecuteOnSharedEngines``: nbgrader's ``Execute``, with the kernel of a Spark lab without RDDs
  pointed at the batch's warm Spark Connect server (``start_submission``'s shared engines), every
  other kernel at local engines: a submission no longer pays for a JVM of its own. With
  SCALELAB_SANDBOX=1 in the grading process's environment, every kernel starts in a bubblewrap
  sandbox of its own (sandbox.py), on its lane's sandboxed server when it has one (connect_lanes.py).
  A cell that runs past its time limit and does not stop when interrupted gets its kernel stopped,
  with everything the kernel started; the notebook is graded on the cells that ran before it.

Two more steps, which decide what of a submission runs and what of the hidden tests a student sees,
are in guards.py: ``SkipRiskyCells`` and ``RedactHiddenTests``.

The grading worker calls ``start_submission`` before each submission it grades: its secret token, its
engines, and the kernel-died flag and time-limit notes cleared (a worker grades many submissions, one
at a time).
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from nbgrader.preprocessors import NbGraderPreprocessor as Preprocessor  # enabled by default
from traitlets import Integer

from scalelab import engines
from scalelab.grading import sandbox
from scalelab.grading.cells import SKIPPED_NOTE, is_demonstration
from scalelab.grading.cells import is_test as _is_test_cell
from scalelab.grading.worker import TIME_LIMIT_NOTE

# The state of the submission being graded, set by `start_submission` (the grading worker calls it
# before each submission; plain `nbgrader` gets a random token and no shared engines).
# The secret token the test cells print: never in the environment that a kernel inherits.
TOKEN = secrets.token_hex(12)
# Engine name -> address of the running engines this submission's notebooks may use (engines.py);
# None: every kernel inherits this process's environment, as nbgrader's own Execute does.
SHARED_ENGINES: dict[str, str] | None = None
SENTINEL_PREFIX = "scalelab-test-cell-done"
# Set when a notebook's kernel dies under ExecuteOnSharedEngines. nbgrader logs the error as text and
# raises its own NbGraderException, so the grading worker reads it here after the submission.
kernel_died = False
# Notebook name -> what ExecuteOnSharedEngines did when a cell ran past its time limit and ignored the
# interrupt (the grading worker passes it on: the row's message says it).
stopped_at_time_limit: dict[str, str] = {}
# jupyter_client's error for a kernel that dies while starting: a plain RuntimeError, known by its text
_DIED_STARTING = "Kernel died before replying to kernel_info"


def start_submission(token: str, shared_engines: dict[str, str] | None) -> None:
    """Before grading a submission: its own secret token and engines, no kernel died or stopped yet."""
    global TOKEN, SHARED_ENGINES, kernel_died
    if not token:
        raise ValueError("a submission needs a secret token")
    TOKEN, SHARED_ENGINES, kernel_died = token, shared_engines, False
    stopped_at_time_limit.clear()


def _sentinel(cell) -> str:
    return f"{SENTINEL_PREFIX}:{TOKEN}:{cell.metadata['nbgrader']['grade_id']}"


def _sentinel_code(cell) -> str:
    return f"\nprint({_sentinel(cell)!r})  # added by the grader"


class AppendSentinel(Preprocessor):
    """Before execution: end every test cell with a line that prints a secret token."""

    def preprocess_cell(self, cell, resources, index):
        if _is_test_cell(cell):
            cell.source = cell.source.rstrip("\n") + _sentinel_code(cell)
        return cell, resources


class RequireSentinel(Preprocessor):
    """After execution: a test cell without its token (and without an error) gets an error."""

    def preprocess_cell(self, cell, resources, index):
        if not _is_test_cell(cell):
            return cell, resources
        token_line = _sentinel(cell)
        cell.source = cell.source.replace(_sentinel_code(cell), "")
        seen = False
        for output in cell.outputs:
            if output.output_type == "stream" and token_line in output.text:
                seen = True
                output.text = output.text.replace(token_line + "\n", "").replace(token_line, "")
        cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.text == "")]
        failed = any(o.output_type == "error" for o in cell.outputs)
        if not seen and not failed:
            cell.outputs.append(
                new_output(
                    "error",
                    ename="GradingError",
                    evalue="this test cell did not run to its end, so its checks can't be trusted "
                    "(did code in the notebook change how cells run?)",
                    traceback=["GradingError: this test cell did not run to its end"],
                )
            )
        return cell, resources


class DemoteStderr(Preprocessor):
    """Stderr text in a test cell becomes ordinary output: only an error costs points."""

    def preprocess_cell(self, cell, resources, index):
        if _is_test_cell(cell):
            for output in cell.outputs:
                if output.output_type == "stream" and output.name == "stderr":
                    output.name = "stdout"
        return cell, resources


class TruncateOutputs(Preprocessor):
    """Cap every text output (nbgrader's LimitOutput counts lines, not characters)."""

    max_chars = Integer(20_000, help="characters kept of each output").tag(config=True)

    def _cut(self, text: str) -> str:
        if len(text) <= self.max_chars:
            return text
        return text[: self.max_chars] + f"\n... [output cut by the grader: {len(text):,} characters in all]\n"

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                output.text = self._cut(output.text)
            elif "data" in output:
                for mime, value in list(output.data.items()):
                    if isinstance(value, str) and mime.startswith("text/"):
                        output.data[mime] = self._cut(value)
        return cell, resources


class ScrubTracebacks(Preprocessor):
    """In feedback, a failed test cell shows the error's message, not the code that raised it."""

    def preprocess_cell(self, cell, resources, index):
        if _is_test_cell(cell):
            for output in cell.outputs:
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources


class SkipDemonstrations(Preprocessor):
    """Before execution: a tagged demonstration cell becomes a comment saying it was skipped."""

    def preprocess_cell(self, cell, resources, index):
        if is_demonstration(cell):
            cell.source = SKIPPED_NOTE
        return cell, resources


class ExecuteOnSharedEngines(Execute):
    """nbgrader's Execute (same settings: ``c.Execute.timeout`` applies), the kernel pointed at the
    shared engines the notebook can use and at local ones for the rest.

    A cell past its time limit is interrupted (nbclient, ``interrupt_on_timeout``); nbclient then waits
    ``iopub_timeout`` seconds (4) for it to end and raises ``CellTimeoutError`` if it does not (it
    ignores SIGINT, or holds the GIL in C code). Then the kernel is killed
    (``shutdown_kernel(now=True)``: its process group, or its whole sandbox), and every process it
    started that left its group; the cell gets an error saying so, the cells below it are not run (each
    gets an error saying why, so no test cell below passes), and nbgrader grades what ran."""

    def preprocess(self, nb, resources=None, km=None):
        global kernel_died
        self._stopped_at = None  # the cell (index) after which the kernel was stopped
        self._timed_out = False  # nbclient's timeout fired for the cell running now
        try:
            if sandbox.enabled():  # no engine outside the sandbox can be reached: a lane's server, or local ones
                lane = (SHARED_ENGINES or {}).get(sandbox.LANE)
                remote = {engines.SPARK_CONNECT.name: sandbox.CONNECT_REMOTE} if lane else {}
                with engines.pointed_at(nb, remote) as chosen:
                    on_lane = Path(lane) if engines.SPARK_CONNECT in chosen else None
                    self.kernel_manager_class, folders = sandbox.kernel_manager(lane=on_lane)
                    with folders:  # removed once nbclient has shut the kernel down
                        return super().preprocess(nb, resources, km)
            if SHARED_ENGINES is None:
                return super().preprocess(nb, resources, km)
            with engines.pointed_at(nb, SHARED_ENGINES):
                return super().preprocess(nb, resources, km)
        except RuntimeError as error:  # DeadKernelError is one
            kernel_died = kernel_died or isinstance(error, DeadKernelError) or _DIED_STARTING in str(error)
            raise

    async def _async_handle_timeout(self, timeout, cell=None):
        self._timed_out = True  # nbclient's hook when a cell's time is up: it interrupts the kernel
        return await super()._async_handle_timeout(timeout, cell)

    def preprocess_cell(self, cell, resources, index):
        if self._stopped_at is not None:  # no kernel any more: the cell is not run
            self._check_assign_resources(resources)
            if cell.cell_type == "code" and cell.source.strip():
                cell.outputs = [_grading_error(f"not run: the grader stopped the kernel at cell "
                                               f"{self._stopped_at + 1}, which {TIME_LIMIT_NOTE}")]
            return cell, self.resources
        self._timed_out = False
        try:
            return super().preprocess_cell(cell, resources, index)
        except CellTimeoutError:
            if not self._timed_out:  # not its time limit (output that came too late after the reply)
                raise
        limit = self._get_timeout(cell)
        self._stop_kernel()
        self._stopped_at = index
        name = cell.metadata.get("nbgrader", {}).get("grade_id")
        where = f"cell {index + 1}" + (f" ({name})" if name else "")
        stopped_at_time_limit[_notebook_name(self.resources)] = (
            f"{where} {TIME_LIMIT_NOTE} ({limit} s) and did not stop when interrupted: the grader stopped its "
            "kernel and what it started, and graded the cells that ran before it (the cells below it did not run)")
        cell.outputs.append(_grading_error(
            f"this cell {TIME_LIMIT_NOTE} ({limit} s) and did not stop when interrupted, so the grader stopped "
            "the kernel; the cells below it did not run", ename="CellTimeoutError"))
        return cell, self.resources

    def _stop_kernel(self) -> None:
        """Kill the kernel (its process group, or its sandbox) and every process below it, also one in a
        session of its own; nbclient's own shutdown then finds it gone."""
        import psutil

        pid = getattr(self.km.provisioner, "pid", None)
        try:  # before the kill: then they are orphans, no longer found below it
            below = psutil.Process(pid).children(recursive=True) if pid else []
        except psutil.NoSuchProcess:
            below = []
        self.log.error("The cell did not stop when interrupted: killing the kernel")
        run_sync(self.km.shutdown_kernel)(now=True)
        for process in below:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()  # psutil checks that the pid is still that process


def _grading_error(text: str, ename: str = "GradingError"):
    return new_output("error", ename=ename, evalue=text, traceback=[f"{ename}: {text}"])


def _notebook_name(resources) -> str:
    return (resources or {}).get("nbgrader", {}).get("notebook") or (resources or {}).get("unique_key") or ""
