"""Grading a class: `make grade` against plain `nbgrader autograde`, per submission, same grades.

Copies of one lab's solution stand for a class (every copy answers right, so every copy must get
full marks both ways). Plain nbgrader grades them one after another in one course, with the course's
configuration (its preprocessors: without them nbgrader would zero Spark's test cells for their
log lines, and the grades would differ; demonstrations are skipped both ways) and Spark's JVM as it
comes. `make grade` grades the same files with its default workers, each submission in its own
course root and kernel, each worker with one long-lived grading process (grading/worker.py), its JVMs
started for short jobs (QUICK_JVM_OPTIONS and the class archive in scalelab.spark), the Spark SQL lab
on warm Spark Connect servers (one per worker, grading/connect_lanes.py), and, where bubblewrap is
installed, as `make grade` does there: each kernel and each Connect server in a sandbox of its own
(grading/sandbox.py; the table says which). Plain nbgrader has no sandbox.

    python -m bench bench_grading                       # 30 copies of each lab (the issue's class)
    SCALELAB_BENCH_COPIES=4 python -m bench bench_grading
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from scalelab.bench import Benchmark, load_average
from scalelab.grading import course, sandbox
from scalelab.grading.batch import default_workers, grade_batch

LABS = [("03-spark-sql", "03-dataframes-and-sql"), ("02-spark-rdd", "02-rdd-basics")]
COPIES = int(os.environ.get("SCALELAB_BENCH_COPIES", "30"))
SECTION = "Grading a class: make grade vs plain nbgrader autograde"


def _students(n: int) -> list[str]:
    return [f"student{i:03d}" for i in range(n)]


def plain_nbgrader(assignment: str, notebook: str, students: list[str], root: Path) -> dict[str, dict]:
    """`nbgrader generate_assignment` then one `nbgrader autograde` over the class; points per student."""
    from nbgrader.api import Gradebook

    config = course.config_file()  # read from its folder, as `nbgrader` run from autograder/ does
    (root / "course").mkdir(parents=True)
    env = course.tool_env({"CI": "1"})
    env.pop("SCALELAB_SPARK_JAVA_OPTIONS", None)  # plain nbgrader starts Spark's JVM with its defaults,
    env.pop("SCALELAB_SPARK_CONF", None)  # Spark's own settings,
    env["SCALELAB_SPARK_CDS"] = "0"  # without the class archive

    base = [sys.executable, "-m", "nbgrader"]
    options = [f"--CourseDirectory.root={root / 'course'}", f"--CourseDirectory.release_directory={root / 'release'}"]
    subprocess.run([*base, "generate_assignment", assignment, "--force", *options], cwd=config.parent,
                   env=env, check=True, capture_output=True)
    solution = course.source_notebook(assignment, notebook)
    for student in students:
        target = root / "course" / "submitted" / student / assignment / f"{notebook}.ipynb"
        target.parent.mkdir(parents=True)
        shutil.copy(solution, target)
    subprocess.run([*base, "autograde", assignment, "--force", *options], cwd=config.parent, env=env,
                   check=True, capture_output=True)
    with Gradebook(f"sqlite:///{root / 'course' / 'gradebook.db'}") as gradebook:
        return {s: {g.name: g.score for g in gradebook.find_submission_notebook(notebook, assignment, s).grades
                    if not g.needs_manual_grade} for s in students}


def with_make_grade(assignment: str, notebook: str, students: list[str], root: Path) -> dict[str, dict]:
    folder = root / "submissions"
    folder.mkdir(parents=True)
    solution = nbformat.read(course.source_notebook(assignment, notebook), 4)
    for student in students:
        nbformat.write(solution, folder / f"{student}_{notebook}.ipynb")
    rows = grade_batch(folder, root / "reports")
    return {r.student: {g: p for g, p in r.points.items() if p is not None} for r in rows}


def main() -> None:
    benchmark = Benchmark(__file__)
    table = []
    students = _students(COPIES)
    sandboxed = sandbox.check().ok  # grade_batch's default
    for assignment, notebook in LABS:
        timings, grades = {}, {}
        for name, grade in (("plain nbgrader", plain_nbgrader), ("make grade", with_make_grade)):
            with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
                start = time.perf_counter()
                grades[name] = grade(assignment, notebook, students, Path(tmp))
                timings[name] = time.perf_counter() - start
            print(f"{notebook}: {name} {timings[name]:.1f} s for {COPIES} submissions", flush=True)
        same = grades["plain nbgrader"] == grades["make grade"]
        plain, ours = (timings[k] / COPIES for k in ("plain nbgrader", "make grade"))
        table.append({
            "lab": notebook,
            "submissions": COPIES,
            "plain nbgrader (s per submission)": f"{plain:.1f}",
            f"make grade, {default_workers()} workers (s per submission)": f"{ours:.1f}",
            "speed-up": f"{plain / ours:.2f}×",
            "make grade sandboxed": "yes" if sandboxed else "no",
            "identical grades": "yes" if same else "NO",
            "load average after": load_average(),
        })
    command = benchmark.command if COPIES == 30 else f"SCALELAB_BENCH_COPIES={COPIES} {benchmark.command}"
    notes = ("Every copy is the solution, so every grade must be full marks both ways. Plain nbgrader runs with "
             "the course's configuration (same preprocessors, demonstrations skipped).")
    benchmark.record(SECTION, table, notes, command)


if __name__ == "__main__":
    main()
