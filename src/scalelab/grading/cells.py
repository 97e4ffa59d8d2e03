"""What a notebook cell is, for grading: an answer, a test, or a demonstration that grading may skip.

One place for these rules, so that nbgrader's preprocessors, the case runner and the course tools
agree. The nbgrader metadata follows nbgrader's schema 3 (``grade``, ``solution``, ``grade_id``), read
as ``nbgrader.utils.is_grade`` and ``is_solution`` read it; those are not imported here because importing
nbgrader takes seconds (it loads jupyter_server) and conftest.py uses ``is_test`` at every collection.
"""

from __future__ import annotations

# A code cell that only demonstrates (a timing loop, a "Scale it up" measurement) carries this tag.
# The top-to-bottom run of the solutions (nbval in `make test`) executes it; grading and the grading
# cases replace it with a note, so no test cell may depend on what it computes.
DEMONSTRATION_TAG = "skip-when-grading"
SKIPPED_NOTE = "# (demonstration: skipped while grading, run it yourself to see it)"


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def label(cell, index: int) -> str:
    """How messages name a cell: its grade id, else its place in the notebook (counted from 1)."""
    return nbgrader_meta(cell).get("grade_id") or f"cell {index + 1}"


def is_graded(cell) -> bool:
    """A cell with points: a test cell, or a written answer an instructor marks."""
    return bool(nbgrader_meta(cell).get("grade", False))


def is_answer(cell) -> bool:
    """An autograded answer cell: the student writes code here."""
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and meta.get("solution", False) and not meta.get("grade", False)


def is_test(cell) -> bool:
    """An autograder tests cell: locked, with points."""
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and meta.get("grade", False) and not meta.get("solution", False)


def is_demonstration(cell) -> bool:
    """A tagged demonstration. Never a cell nbgrader knows: a tag can't make a test or answer skip."""
    return (cell.cell_type == "code" and not nbgrader_meta(cell)
            and DEMONSTRATION_TAG in cell.metadata.get("tags", []))
