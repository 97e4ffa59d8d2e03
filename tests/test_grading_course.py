"""nbgrader itself, through the course's grading chain, gives every solution full marks and every blank lab zero.

One batch grades the whole course (alice hands in every solution, bob every untouched lab). It is the
longest single piece of `make test`, so it has a file of its own: `make test`'s workers share the
suite by file (`--dist loadfile`), and this file runs on one while the other does the rest.
"""

from pathlib import Path

import nbformat
import pytest

from scalelab.grading import course
from scalelab.grading.batch import grade_batch

SOURCES = [nb for a in course.assignments() for nb in course.source_notebooks(a)]
GRADED = [nb for nb in SOURCES if any(c.kind == "tests" for c in course.grade_cells(nb))]
pytestmark = pytest.mark.timeout(3600)  # the fixture grades the course: far longer than one test


def _id(path: Path) -> str:
    return path.stem


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    """alice hands in every solution, bob every untouched lab; graded as `make grade` would."""
    folder = tmp_path_factory.mktemp("course") / "submissions"
    folder.mkdir()
    for notebook in GRADED:
        nbformat.write(nbformat.read(notebook, 4), folder / f"alice_{notebook.stem}.ipynb")
        lab = course.released_notebook(notebook.parent.name, notebook.stem)
        if lab.exists():  # a missing lab fails its own test below, not the whole class
            nbformat.write(nbformat.read(lab, 4), folder / f"bob_{notebook.stem}.ipynb")
    # generous limits: this checks the grades, not the speed, on a machine busy with the other tests
    rows = grade_batch(folder, folder.parent / "reports", workers=2, cell_timeout=300, notebook_timeout=1500)
    return {(r.student, r.notebook): r for r in rows}


@pytest.mark.slow
@pytest.mark.parametrize("notebook", GRADED, ids=_id)
def test_nbgrader_gives_the_solution_full_marks_and_the_blank_lab_zero(graded_course, notebook):
    full = {c.grade_id: c.points for c in course.grade_cells(notebook) if c.kind == "tests"}
    assert ("bob", notebook.stem) in graded_course, f"no released lab for {notebook.stem}: run `make release`"
    solution, blank = graded_course[("alice", notebook.stem)], graded_course[("bob", notebook.stem)]
    assert solution.status == "graded" and {g: solution.points[g] for g in full} == full, solution.message
    assert blank.status == "graded" and {g: blank.points[g] for g in full} == dict.fromkeys(full, 0.0)
