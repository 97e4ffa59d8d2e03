"""Tamper flags: what an instructor may want to look at in a submission, found before it is graded.

Flags inform; they never change points (nbgrader restores the test cells from the source and grades
what the restored tests award). Compared with the released lab, cell by nbgrader grade id:

* a test or other locked cell whose text is neither the released lab's nor the source's (the student
  changed it; nbgrader puts it back before grading);
* a grade cell the submission lacks (deleted), or has twice (copied);
* an answer cell moved below the test cell that checks it;
* cells the grader does not run because they could change how grading runs (scan.py).

And found in the notebook as graded (``run_flags``): cells that hit their time limit, and outputs cut
because they were over the limit.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from scalelab.grading import scan
from scalelab.grading.cells import label

# The flags that explain lost points, shown on the student's feedback page too (the others, such as an
# edited test cell, are for the instructor to look at first).
STUDENT_FLAGS = ("cells not run", "time limit hit", "output over the limit")
# What the autograded notebook shows where a limit was hit: nbclient's interrupt, the kernel stopped after
# it (preprocessors.ExecuteOnSharedEngines), and the marks of the two output limits.
TIME_LIMIT_ERRORS = {"KeyboardInterrupt", "CellTimeoutError"}
OUTPUT_CUT_MARKS = ("[output cut by the grader", "... Output truncated ...")


def _grade_cells(notebook: nbformat.NotebookNode) -> list[tuple[str, nbformat.NotebookNode]]:
    return [(c.metadata["nbgrader"]["grade_id"], c) for c in notebook.cells
            if c.metadata.get("nbgrader", {}).get("grade_id")]


def tamper_flags(submission: Path, released: Path, source: Path | None = None) -> list[str]:
    """What differs from the released lab (or, for a locked cell, from the `source` notebook too) in
    the submission's grade cells; [] when nothing does or there is no released lab to compare with."""
    if not released.exists():
        return []
    given = _grade_cells(nbformat.read(released, as_version=4))
    source_notebook = nbformat.read(source, as_version=4) if source and source.exists() else None
    original = dict(_grade_cells(source_notebook)) if source_notebook else {}
    submitted = nbformat.read(submission, as_version=4)
    handed_in = _grade_cells(submitted)
    theirs: dict[str, nbformat.NotebookNode] = {}
    copied = []
    for grade_id, cell in handed_in:
        if grade_id in theirs:
            copied.append(grade_id)
        theirs.setdefault(grade_id, cell)
    flags = []
    edited = [g for g, cell in given if cell.metadata["nbgrader"].get("locked") and g in theirs
              and theirs[g].source.strip() not in {cell.source.strip(), original.get(g, cell).source.strip()}]
    if edited:
        flags.append(f"locked or test cells edited: {', '.join(edited)}")
    deleted = [g for g, _ in given if g not in theirs]
    if deleted:
        flags.append(f"grade cells deleted: {', '.join(deleted)}")
    if copied:
        flags.append(f"grade cells copied: {', '.join(sorted(set(copied)))}")
    order: dict[str, int] = {}
    for position, (grade_id, _) in enumerate(handed_in):
        order.setdefault(grade_id, position)
    moved = [g for g, _ in given if g in order and f"{g}-tests" in order and order[g] > order[f"{g}-tests"]]
    if moved:
        flags.append(f"answer cells moved below their tests: {', '.join(moved)}")
    risky = scan.risky_cells(submitted, source_notebook)
    if risky:
        flags.append(scan.describe(submitted, risky))
    return flags


def run_flags(graded: Path) -> list[str]:
    """What the notebook as graded shows: cells stopped at their time limit, outputs cut."""
    if not graded.exists():
        return []
    cells = list(enumerate(nbformat.read(graded, as_version=4).cells))
    timed_out = [label(c, i) for i, c in cells if any(
        o.output_type == "error" and o.ename in TIME_LIMIT_ERRORS for o in c.get("outputs", []))]
    cut = [label(c, i) for i, c in cells if any(
        mark in o.get("text", "") or any(mark in str(v) for v in o.get("data", {}).values())
        for o in c.get("outputs", []) for mark in OUTPUT_CUT_MARKS)]
    flags = []
    if timed_out:
        flags.append(f"time limit hit: {', '.join(timed_out)}")
    if cut:
        flags.append(f"output over the limit, cut: {', '.join(cut)}")
    return flags


def for_the_student(flags: str) -> list[str]:
    """The flags of a row (``"; "``-separated) that its student's feedback page shows."""
    return [flag for flag in flags.split("; ") if flag.startswith(STUDENT_FLAGS)]
