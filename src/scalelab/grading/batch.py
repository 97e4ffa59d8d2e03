"""Grade a whole class: ``make grade SUBMISSIONS=<folder or .zip>``.

Each submission is graded by nbgrader in a private course root under a temporary folder, with its
own kernel, its own secret token and a time limit, several at a time: on this machine, or on the
workers of a Dask cluster (``--scheduler tcp://host:8786``) for a class bigger than one machine.
On this machine each worker thread is a lane with one long-lived nbgrader process (worker.py,
``GradingProcess``) that grades its submissions one after another, so nbgrader's start-up is paid once
per lane, not once per submission; that process is replaced after a timeout (killed with its process
group and its kernel), a crash or a failed run, and every SUBMISSIONS_PER_PROCESS submissions. On a
Dask cluster each submission gets a process of its own. Whatever one submission does (hang, kill its
kernel, break nbgrader), the others are graded and it gets a row saying what went wrong. Spark labs
without RDDs run on warm Spark Connect servers, one per worker, which serve one submission at a time
and are cleared between submissions (connect_lanes.py).

Every notebook's kernel runs in a bubblewrap sandbox of its own (sandbox.py) whenever one can start
here; `make grade` refuses to grade without one unless told (``--unsandboxed``), and then says so in
its output and in every row of the CSV. A sandboxed kernel reaches no server outside its sandbox: the
Spark Connect server of each lane then runs in a sandbox of its own, with the same view of the files,
and the kernel reaches it through a unix socket that only the two share.

Writes ``<reports>/grades.csv`` (one row per student and notebook, points per grade cell) and
``<reports>/feedback/<student>/index.html`` (points and messages per exercise, pages.py) linking one
nbgrader feedback page per notebook, and ``<reports>/summary.html`` for the instructor.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import re
import secrets
import shutil
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat

from scalelab import engines
from scalelab.grading import course
from scalelab.grading import gradebook as gradebooks
from scalelab.grading import sandbox as sandboxes
from scalelab.grading.connect_lanes import ConnectLanes
from scalelab.grading.flags import run_flags, tamper_flags
from scalelab.grading.pages import failure_messages, write_feedback_index, write_summary
from scalelab.grading.resume import GradedStore
from scalelab.grading.submissions import Rejected, Submission, collect, repair, submission_time, unpack
from scalelab.grading.worker import TIME_LIMIT_NOTE, Failure, GradingProcess, Outcome
from scalelab.processes import run_group
from scalelab.spark import QUICK_JVM_OPTIONS, QUICK_SPARK_CONF

# in the message column of every row graded without a sandbox
UNSANDBOXED_NOTE = "graded without a sandbox: its code ran with the grader's rights"
FIXED_COLUMNS = ["student", "assignment", "notebook", "status", "score", "max_score", "manual_score",
                 "needs_manual_grading", "submitted", "seconds_late", "flags", "message"]


@dataclass
class Row:
    student: str
    assignment: str
    notebook: str
    status: str  # "graded" or "error"
    score: float | None = None
    max_score: float | None = None
    manual_score: float | None = None  # points marked by hand in the formgrader (gradebook.py), when any
    needs_manual_grading: bool = False
    submitted: str = ""  # when the student handed in (UTC), where the submission said so
    seconds_late: float | None = None  # past the deadline, where both are known
    flags: str = ""  # what the instructor may want to look at (flags.py); never changes points
    message: str = ""
    points: dict[str, float | None] = field(default_factory=dict)  # grade_id -> points
    max_points: dict[str, float] = field(default_factory=dict)  # grade_id -> points possible
    messages: dict[str, str] = field(default_factory=dict)  # grade_id -> a failed test cell's error


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass
class Job:
    """One student's notebooks of one assignment, as bytes: it can be graded on any machine."""

    student: str
    assignment: str
    notebooks: dict[str, bytes]  # notebook name -> the repaired submission
    notes: dict[str, list[str]]  # notebook name -> what repair changed
    timestamp: str | None = None  # nbgrader's timestamp.txt, when the submission came with one
    flags: dict[str, list[str]] = field(default_factory=dict)  # notebook name -> tamper flags (flags.py)

    def error_rows(self, reason: str) -> list[Row]:
        return [Row(self.student, self.assignment, name, "error", flags="; ".join(self.flags.get(name, [])),
                    message=reason) for name in self.notebooks]


def grade_batch(
    source: Path,
    reports: Path,
    workers: int | None = None,
    cell_timeout: int = course.CELL_TIMEOUT_S,
    notebook_timeout: int = course.SUBMISSION_TIMEOUT_S,
    scheduler: str | None = None,
    spark_connect: bool = True,
    connect_servers: Sequence[str] = (),
    deadline: datetime | None = None,
    force: bool = False,
    sandbox: bool | None = None,
    gradebook: bool = False,
) -> list[Row]:
    """Grade every notebook found in `source`; write the CSV and feedback under `reports`.

    With `scheduler` (a Dask scheduler's address) the submissions are graded on that cluster's
    workers, each by its own worker process there; otherwise by `workers` lanes on this machine, each a
    long-lived grading process, with one Spark Connect server each for the Spark labs without RDDs
    (`connect_servers`: use these instead of starting them; `spark_connect=False`: every kernel starts
    the Spark its environment says). With `deadline` (naive: UTC), nbgrader records how late each
    submission that came with its timestamp.txt is; the CSV shows it. A submission graded by an
    earlier run into the same `reports`, unchanged since, is not graded again unless `force` (resume.py).
    With `sandbox` each kernel runs in a bubblewrap sandbox (sandbox.py), and each Connect server is
    started here in one too (`connect_servers` are not used); None: when a sandbox can start here.
    Rows graded without one say so in their message. With `gradebook` (as `make grade` runs), every
    graded submission, graded now or before, is put into the course's nbgrader gradebook for the
    formgrader, and the CSV shows the marks given there by hand (gradebook.py).
    """
    if sandbox is None:
        sandbox = sandboxes.check().ok
    print("sandbox: each notebook's kernel runs in a bubblewrap sandbox of its own" if sandbox else
          "WARNING: grading without a sandbox: student code runs with your rights (every row of grades.csv says "
          "so)", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="scalelab-grade-"))
    try:
        folder = unpack(Path(source), scratch / "unpacked")
        submissions, rejected = collect(folder, course.notebook_index())
        rows = [_rejected_row(r) for r in rejected]
        store = GradedStore(reports / ".graded", force)
        settings = f"{deadline} {cell_timeout} {notebook_timeout} sandbox={sandbox}"
        sources = {a: _sources_digest(a) for a in {s.assignment for s in submissions}}
        keys: dict[int, str] = {}
        jobs, recorded = [], []
        for job in (_job(group, scratch) for group in _group(submissions)):
            keys[id(job)] = _job_key(job, sources[job.assignment], settings)
            stored = store.get(keys[id(job)])
            if stored is None:
                jobs.append(job)
            else:
                rows.extend(Row(**row) for row in stored["rows"])
                recorded.append(_graded(job, [Row(**row) for row in stored["rows"]], stored.get("autograded", {})))
                _write_feedback({name: page.encode() for name, page in stored["pages"].items()}, job.student,
                                reports)
        reused = len(keys) - len(jobs)
        if reused:
            print(f"{reused} submissions are unchanged since they were graded into {reports}: their grades "
                  "are kept (FORCE=1, or --force, grades them again)", flush=True)
        templates = _prepare_templates({j.assignment for j in jobs}, scratch, rows, jobs, deadline)
        jobs = [job for job in jobs if job.assignment in templates]
        where = f"on the Dask cluster at {scheduler}" if scheduler else \
            f"with {workers or default_workers()} workers"
        print(f"grading {sum(len(j.notebooks) for j in jobs)} notebooks from {len(jobs)} submissions {where} ...",
              flush=True)
        if scheduler:
            results = _run_on_dask(jobs, templates, cell_timeout, notebook_timeout, scheduler, sandbox)
        else:
            lanes = spark_connect and any(_uses_spark_connect(job) for job in jobs)
            results = _run_here(jobs, templates, cell_timeout, notebook_timeout, workers or default_workers(),
                                connect_servers if lanes else None, sandbox)
        progress = Progress(len(jobs))
        with contextlib.closing(results):  # on an exception too: its grading processes and servers end
            for job, (job_rows, feedback, autograded) in results:
                if not sandbox:
                    for row in job_rows:
                        row.message = "; ".join(filter(None, [row.message, UNSANDBOXED_NOTE]))
                rows.extend(job_rows)
                _write_feedback(feedback, job.student, reports)
                if all(r.status == "graded" for r in job_rows):  # an error is tried again next time
                    store.put(keys[id(job)], {"rows": [dataclasses.asdict(r) for r in job_rows],
                                              "pages": {n: p.decode() for n, p in feedback.items()},
                                              "autograded": {n: p.decode() for n, p in autograded.items()}})
                    recorded.append(_graded(job, job_rows, autograded))
                progress.update(job_rows)
        rows.sort(key=lambda r: (r.student, r.assignment, r.notebook))
        if gradebook:
            rows = _to_gradebook(recorded, rows, deadline)
        write_csv(rows, reports / "grades.csv")
        write_totals(rows, reports)
        write_feedback_index(rows, reports / "feedback")
        write_summary(rows, reports / "summary.html")
        return rows
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_here(jobs, templates, cell_timeout, notebook_timeout, workers, connect_servers: Sequence[str] | None,
              sandbox: bool):
    """`workers` threads, each a lane with its own long-lived grading process (started on its first
    submission); with `connect_servers` not None, each submission borrows a Connect server (one per
    worker, started here when the sequence is empty)."""
    lanes = None
    if connect_servers is not None:
        try:
            lanes = ConnectLanes(workers, () if sandbox else connect_servers, sandboxed=sandbox)
        except Exception as error:  # noqa: BLE001 - grading goes on, each kernel with its own Spark
            print(f"could not start Spark Connect servers ({type(error).__name__}: {str(error)[:300]}); "
                  "each Spark lab starts its own Spark", flush=True)

    local = threading.local()
    processes: list[GradingProcess] = []

    def lane_process() -> GradingProcess:
        if getattr(local, "process", None) is None:
            local.process = GradingProcess(course.tool_env(_grading_env(sandbox)))
            processes.append(local.process)
        return local.process

    def grade(job: Job):
        process = lane_process()
        if lanes is None:
            return grade_job(job, templates[job.assignment], cell_timeout, notebook_timeout, process=process,
                             sandbox=sandbox)
        with lanes.lane() as lane:
            if lane.address is None:
                return grade_job(job, templates[job.assignment], cell_timeout, notebook_timeout, process=process,
                                 sandbox=sandbox)
            shared = {(sandboxes.LANE if sandbox else engines.SPARK_CONNECT.name): lane.address}
            graded = grade_job(job, templates[job.assignment], cell_timeout, notebook_timeout, shared,
                               process=process, sandbox=sandbox)
            # a query may still run there
            lane.suspect = any(r.status == "error" or TIME_LIMIT_NOTE in r.message for r in graded[0])
            return graded

    with contextlib.ExitStack() as cleanup:  # last in, first out: the pool, the processes, the servers
        if lanes is not None:
            cleanup.callback(lanes.close)
        cleanup.callback(lambda: [p.close() for p in processes])
        pool = ThreadPoolExecutor(max_workers=workers)
        cleanup.callback(pool.shutdown, wait=True, cancel_futures=True)  # lets those being graded finish
        futures = {pool.submit(grade, job): job for job in jobs}
        for future in as_completed(futures):
            yield futures[future], _result_or_error_rows(future, futures[future])


def _uses_spark_connect(job: Job) -> bool:
    notebooks = []
    for content in job.notebooks.values():
        try:
            notebooks.append(nbformat.reads(content.decode(), 4))
        except Exception:  # noqa: BLE001 - nbgrader reports the broken file itself
            continue
    return any(engines.SPARK_CONNECT in engines.engines_of(nb) for nb in notebooks)


def _run_on_dask(jobs, templates, cell_timeout, notebook_timeout, scheduler, sandbox: bool):
    """Each job is one Dask task; the worker that runs it grades it in its own process, as here.

    Start the workers with one thread each (``dask worker ADDRESS --nthreads 1``), from a checkout of
    the course with its set-up done, so that each runs one nbgrader at a time (and, for `sandbox`, with
    bubblewrap installed: `make doctor` there says whether a sandbox starts).
    """
    from distributed import Client
    from distributed import as_completed as dask_completed

    with Client(scheduler, timeout=60) as client:
        shared = {a: client.scatter(t) for a, t in templates.items()}  # each template travels once
        futures = {client.submit(grade_job, job, shared[job.assignment], cell_timeout, notebook_timeout,
                                 sandbox=sandbox, pure=False,
                                 key=f"grade-{job.student}-{job.assignment}-{os.urandom(4).hex()}"): job
                   for job in jobs}
        for future in dask_completed(futures):
            yield futures[future], _result_or_error_rows(future, futures[future])


def _result_or_error_rows(future, job: Job) -> tuple[list[Row], dict[str, bytes], dict[str, bytes]]:
    """A job that raised (a lost Dask worker, a full disk) gets error rows; the others go on."""
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - any failure of one job must not stop the batch
        reason = f"the grader failed on this submission: {type(error).__name__}: {error}"
        return job.error_rows(reason), {}, {}


class Progress:
    """One line per finished submission: how many are done, failures so far, and the time left."""

    def __init__(self, total: int, stream=None):
        self.total, self.done, self.failures = total, 0, 0
        self.started = time.monotonic()
        self.stream = stream or sys.stdout

    def update(self, rows: list[Row]) -> None:
        self.done += 1
        self.failures += sum(r.status == "error" for r in rows)
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done)
        width = 20
        bar = "#" * (width * self.done // self.total) + "." * (width - width * self.done // self.total)
        who = f"{rows[0].student} {rows[0].assignment}" if rows else ""
        print(f"[{bar}] {self.done}/{self.total} graded, {self.failures} failed, "
              f"about {_minutes(left)} left  ({who})", file=self.stream, flush=True)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _job(group: list[Submission], scratch: Path) -> Job:
    student, assignment = group[0].student, group[0].assignment
    notebooks, notes, flags = {}, {}, {}
    timestamp, problem = submission_time(group[0])
    for s in group:
        repaired = scratch / "repaired" / student / assignment / f"{s.notebook}.ipynb"
        notes[s.notebook] = repair(s.path, repaired) + ([problem] if problem else [])
        notebooks[s.notebook] = repaired.read_bytes()
        flags[s.notebook] = tamper_flags(s.path, course.released_notebook(assignment, s.notebook),
                                         course.source_notebook(assignment, s.notebook))
    return Job(student, assignment, notebooks, notes, timestamp, flags)


def _group(submissions) -> list[list[Submission]]:
    groups: dict[tuple[str, str], list[Submission]] = {}
    for s in submissions:
        groups.setdefault((s.student, s.assignment), []).append(s)
    return list(groups.values())


def _sources_digest(assignment: str) -> str:
    """What an assignment's grades depend on besides the submission: its source notebooks, the
    course's nbgrader configuration and the grader's own code (this package)."""
    grader = sorted(Path(__file__).parent.glob("*.py"))
    paths = [course.config_file(), *course.source_notebooks(assignment), *grader]
    return GradedStore.key(*(part for path in paths for part in (path.name, path.read_bytes())))


def _job_key(job: Job, sources: str, settings: str) -> str:
    notebooks = [part for name in sorted(job.notebooks) for part in (name, job.notebooks[name])]
    return GradedStore.key(job.student, job.assignment, sources, settings, job.timestamp or "", *notebooks)


def _rejected_row(r: Rejected) -> Row:
    return Row(r.student, r.assignment, r.notebook, "error", message=r.reason)


def _prepare_templates(assignments, scratch: Path, rows: list[Row], jobs: list[Job],
                       deadline: datetime | None = None) -> dict[str, bytes]:
    """A gradebook per assignment (nbgrader generate_assignment), with the deadline as the assignment's
    due date, packed to travel to any worker."""
    templates = {}
    for assignment in sorted(assignments):
        root = scratch / "templates" / assignment
        outcome = _worker(["prepare", "--root", str(root), "--assignment", assignment], timeout=600)
        if outcome.success:
            if deadline is not None:
                from nbgrader.api import Gradebook

                with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
                    gradebook.update_or_create_assignment(assignment, duedate=deadline)
            templates[assignment] = _pack(root)
        else:
            reason = f"could not prepare {assignment} for grading: {_last_line(outcome)}"
            rows.extend(row for job in jobs if job.assignment == assignment for row in job.error_rows(reason))
    return templates


def _pack(root: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(root / "gradebook.db", arcname="gradebook.db")
    return buffer.getvalue()


def _worker(args: list[str], timeout: int, env: dict | None = None) -> Outcome:
    command = [sys.executable, "-m", "scalelab.grading.worker", *args]
    run = run_group(command, timeout, env=course.tool_env(env))  # a timeout ends the worker, its kernel and all
    if run.timed_out:
        return Outcome(False, error=f"stopped after {timeout} s", failure=Failure.TIMED_OUT)
    stdout, stderr = run.stdout, run.stderr
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    try:
        return Outcome.from_json(last)
    except (json.JSONDecodeError, KeyError, TypeError):
        return Outcome(False, error=f"grader process failed (exit {run.returncode})",
                       log=stdout[-2000:] + stderr[-4000:])


def _grading_env(sandbox: bool) -> dict[str, str]:
    """What a grading process's environment adds, the same for every submission of a batch."""
    return {sandboxes.ENABLE_VARIABLE: "1" if sandbox else "0",
            "CI": "1",  # no Spark UI
            "SCALELAB_SPARK_JAVA_OPTIONS": os.environ.get("SCALELAB_SPARK_JAVA_OPTIONS", QUICK_JVM_OPTIONS),
            "SCALELAB_SPARK_CONF": os.environ.get("SCALELAB_SPARK_CONF", QUICK_SPARK_CONF)}


def grade_job(job: Job, template: bytes, cell_timeout: int, notebook_timeout: int,
              shared_engines: dict[str, str] | None = None, process: GradingProcess | None = None,
              sandbox: bool = False) -> tuple[list[Row], dict[str, bytes], dict[str, bytes]]:
    """Grade one job in a private course root on this machine: (rows, feedback pages by file name,
    autograded notebooks by notebook name).

    `shared_engines` (engine name -> address, engines.py): running engines that the notebooks able to
    use them are pointed at, every other one at local engines; None: the environment decides.
    `process`: the lane's long-lived grading process; None: a process of this job's own (one-shot
    ``worker grade``, as on a Dask worker). Either way the job gets its own secret token. `sandbox`: for
    the one-shot process, whether its kernels are sandboxed (a lane's process was told when it started)."""
    with tempfile.TemporaryDirectory(prefix="scalelab-job-") as tmp:
        root = _course_root(job, template, Path(tmp) / "course")
        token = secrets.token_hex(12)
        if process is not None:
            outcome = process.grade(root, job.assignment, job.student, cell_timeout, notebook_timeout, token,
                                    shared_engines)
        else:
            env = {**_grading_env(sandbox), "SCALELAB_SENTINEL": token}
            if shared_engines is not None:
                env["SCALELAB_GRADING_ENGINES"] = json.dumps(shared_engines)
            outcome = _worker(["grade", "--root", str(root), "--assignment", job.assignment, "--student",
                               job.student, "--cell-timeout", str(cell_timeout)], timeout=notebook_timeout,
                              env=env)
        if not outcome.success:
            reason = _explain_failure(outcome, notebook_timeout)
            return job.error_rows(reason), {}, {}
        notes = {name: [*job.notes[name], *filter(None, [outcome.stopped.get(name)])] for name in job.notebooks}
        rows = [_scores(root, job.student, job.assignment, name, notes[name], job.flags.get(name, []))
                for name in job.notebooks]
        pages = root / "feedback" / job.student / job.assignment
        autograded = root / "autograded" / job.student / job.assignment
        return (rows, {page.name: page.read_bytes() for page in pages.glob("*.html")},
                {name: (autograded / f"{name}.ipynb").read_bytes() for name in job.notebooks})


def _graded(job: Job, rows: list[Row], autograded: dict[str, bytes | str]) -> gradebooks.Graded:
    return gradebooks.Graded(job.student, job.assignment, job.timestamp, job.notebooks,
                             {n: c.encode() if isinstance(c, str) else c for n, c in autograded.items()}, rows)


def _to_gradebook(graded: list[gradebooks.Graded], rows: list[Row], deadline: datetime | None) -> list[Row]:
    """Put the graded submissions into the course's gradebook, and `rows` with its manual marks. A
    gradebook that can't be written (locked, broken) costs the formgrader's view, never the CSV."""
    try:
        gradebooks.record(sorted(graded, key=lambda g: (g.student, g.assignment)), deadline)
        rows = gradebooks.with_marks(rows)
    except Exception as error:  # noqa: BLE001 - the batch's grades are written all the same
        print(f"WARNING: could not put the grades into the course gradebook {gradebooks.database()} "
              f"({type(error).__name__}: {str(error)[:300]}). grades.csv and the totals hold this run's grades, "
              "without marks given in the formgrader. Close what holds the gradebook (a formgrader saving, an "
              "nbgrader command), or do what the error says, and run the same make grade again: nothing is "
              "graded again, and the grades go into the gradebook.", flush=True)
    else:
        print(f"the course gradebook {gradebooks.database()} holds these {len(graded)} submissions: `make "
              "formgrader` shows them, with the written answers to mark", flush=True)
    return rows


def _course_root(job: Job, template: bytes, root: Path) -> Path:
    """A private course root at `root`: the assignment's gradebook and the job's notebooks as submitted."""
    with tarfile.open(fileobj=io.BytesIO(template)) as archive:
        archive.extractall(root, filter="data")
    for name, content in job.notebooks.items():
        target = root / "submitted" / job.student / job.assignment / f"{name}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    if job.timestamp is not None:  # nbgrader autograde records it, and how late it is
        (root / "submitted" / job.student / job.assignment / "timestamp.txt").write_text(job.timestamp)
    return root


def _write_feedback(pages: dict[str, bytes], student: str, reports: Path) -> None:
    target = reports / "feedback" / student
    target.mkdir(parents=True, exist_ok=True)
    for name, content in pages.items():
        (target / name).write_bytes(content)


def _last_line(outcome: Outcome) -> str:
    """The most telling line of a failed nbgrader run: its last exception, else its last line."""
    lines = [line.strip() for line in f"{outcome.error}\n{outcome.log}".splitlines()]
    lines = [line for line in lines if line and "see the the above traceback" not in line]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Timeout)\b", line)]
    return (errors or lines or ["no details"])[-1][:400]


def _explain_failure(outcome: Outcome, notebook_timeout: int) -> str:
    if outcome.failure is Failure.TIMED_OUT:
        return (f"grading stopped after {notebook_timeout} s (a cell that never ends and ignores "
                "interrupts?); no points recorded")
    if outcome.failure is Failure.KERNEL_DIED:
        return "the notebook's kernel died while running (os._exit, sys.exit in a thread, a crash " \
               "or running out of memory); no points recorded"
    return f"nbgrader could not grade this notebook: {_last_line(outcome)}"


def _scores(root: Path, student: str, assignment: str, notebook: str, notes: list[str], flags: list[str]) -> Row:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        handed_in = gradebook.find_submission(assignment, student)
        late = handed_in.total_seconds_late if handed_in.timestamp and handed_in.duedate else None
        submitted = gradebook.find_submission_notebook(notebook, assignment, student)
        points = {g.name: None if g.needs_manual_grade else g.score for g in submitted.grades}
        order = {c.grade_id: i for i, c in enumerate(course.grade_cells(
            course.source_notebook(assignment, notebook)))}
        points = dict(sorted(points.items(), key=lambda kv: order.get(kv[0], 999)))
        graded = root / "autograded" / student / assignment / f"{notebook}.ipynb"
        return Row(student, assignment, notebook, "graded",
                   score=submitted.score, max_score=submitted.max_score,
                   needs_manual_grading=bool(submitted.needs_manual_grade),
                   submitted=f"{handed_in.timestamp:%Y-%m-%d %H:%M:%S} UTC" if handed_in.timestamp else "",
                   seconds_late=late, flags="; ".join([*flags, *run_flags(graded)]), message="; ".join(notes),
                   points=points, max_points={g.name: g.max_score for g in submitted.grades},
                   messages=failure_messages(graded))


def write_csv(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    grade_ids: list[str] = []
    for row in rows:
        grade_ids.extend(g for g in row.points if g not in grade_ids)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIXED_COLUMNS + grade_ids)
        for r in rows:
            fixed = [r.student, r.assignment, r.notebook, r.status, _num(r.score), _num(r.max_score),
                     _num(r.manual_score), "yes" if r.needs_manual_grading else "", r.submitted,
                     _num(r.seconds_late), r.flags, r.message]
            writer.writerow(fixed + [_num(r.points.get(g)) for g in grade_ids])


def write_totals(rows: list[Row], reports: Path) -> None:
    """``totals-<assignment>.csv`` for a learning platform's grade import: one row per student, keyed by
    the student id the submissions came with. ``points`` sums the notebooks graded so far, ``out_of`` the
    assignment's maximum; ``complete`` is ``yes`` when every notebook of the assignment was graded and
    no written answer waits to be marked (autograder/README.md: Canvas and Moodle)."""
    for assignment in sorted({r.assignment for r in rows if r.assignment}):
        mine = [r for r in rows if r.assignment == assignment]
        notebooks = {r.notebook: r.max_score for r in mine if r.max_score is not None}
        with (reports / f"totals-{assignment}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["student", "points", "out_of", "complete"])
            for student in sorted({r.student for r in mine}):
                theirs = {r.notebook: r for r in mine if r.student == student}
                graded = [r for r in theirs.values() if r.status == "graded"]
                complete = len(graded) == len(notebooks) == len(theirs) and not any(
                    r.needs_manual_grading for r in graded)
                writer.writerow([student, _num(sum(r.score or 0.0 for r in graded)),
                                 _num(sum(notebooks.values())), "yes" if complete else ""])


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m scalelab grade",
                                     description="Grade a folder or .zip of submitted notebooks.")
    parser.add_argument("submissions", type=Path)
    parser.add_argument("--reports", type=Path, default=None,
                        help="output folder (default: autograder/reports)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--cell-timeout", type=int, default=course.cell_timeout())
    parser.add_argument("--notebook-timeout", type=int, default=course.SUBMISSION_TIMEOUT_S)
    parser.add_argument("--scheduler", default=None,
                        help="grade on the workers of this Dask scheduler (tcp://host:8786) instead of here")
    parser.add_argument("--no-spark-connect", dest="spark_connect", action="store_false",
                        help="no shared Spark Connect servers: each Spark lab starts its own Spark")
    parser.add_argument("--force", action="store_true",
                        help="grade every submission again, also those graded unchanged into the same reports")
    parser.add_argument("--unsandboxed", action="store_true",
                        help="grade even where no sandbox can start: student code then runs with your rights, "
                             "can read your files (solutions, hidden tests) and reach the network")
    parser.add_argument("--deadline", default=None,
                        help="due date and time, e.g. '2026-12-01 23:59' (UTC unless it names a zone): the CSV "
                             "shows how late each submission with nbgrader's timestamp.txt was")
    args = parser.parse_args(argv)
    if not args.submissions.exists():
        print(f"error: {args.submissions} does not exist; pass SUBMISSIONS=<folder or .zip>", file=sys.stderr)
        return 2
    deadline = None
    if args.deadline:
        from nbgrader.utils import parse_utc

        try:
            deadline = parse_utc(args.deadline)
        except (ValueError, OverflowError):
            print(f"error: could not read the deadline {args.deadline!r} as a date and time; write it as "
                  "'2026-12-01 23:59' (UTC) or with a zone, '2026-12-01 23:59 -0500'", file=sys.stderr)
            return 2
    found = sandboxes.check()
    if not found.ok and not args.unsandboxed:
        print(f"error: no sandbox can start on this machine ({found.detail}), so student code would run with "
              f"your rights. Install bubblewrap: {sandboxes.INSTALL_HINT}", file=sys.stderr)
        return 2
    reports = args.reports or course.root() / "autograder" / "reports"
    rows = grade_batch(args.submissions, reports, args.workers, args.cell_timeout, args.notebook_timeout,
                       args.scheduler, args.spark_connect, deadline=deadline, force=args.force,
                       sandbox=found.ok and not args.unsandboxed, gradebook=True)
    errors = [r for r in rows if r.status == "error"]
    for r in rows:
        verdict = f"{_num(r.score)}/{_num(r.max_score)}" if r.status == "graded" else f"ERROR: {r.message}"
        print(f"  {r.student:<24} {r.notebook or '-':<28} {verdict}")
    print(f"wrote {reports / 'grades.csv'} ({len(rows)} rows, {len(errors)} errors), the totals for a learning "
          f"platform in {reports}/totals-<assignment>.csv, feedback pages under {reports / 'feedback'} and the "
          f"class summary {reports / 'summary.html'}")
    return 0
