"""nbgrader itself, through the course's grading chain, gives every solution full marks and every blank lab zero.

For each assignment, one batch grades alice's submission (every solution) and bob's (every untouched
lab), as `make grade` would, on local engines: where a sandbox can start (bubblewrap), each kernel in
a sandbox of its own, which is how these batches prove that Spark's JVM, `mpiexec` and PoCL work
inside one. It is the longest part of `make test`, so each
assignment is a class of its own: `make test` runs with `--dist loadscope`, which hands each class
to whichever worker is free, so the assignments are graded side by side with the rest of the suite.
"""

from pathlib import Path

import nbformat
import pytest

from scalelab import engines
from scalelab.grading import course, sandbox
from scalelab.grading.batch import grade_batch

SOURCES = [nb for a in course.assignments() for nb in course.source_notebooks(a)]
GRADED = [nb for nb in SOURCES if any(c.kind == "tests" for c in course.grade_cells(nb))]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a class grades a whole assignment


class _GradedAssignment:
    assignment = ""

    @pytest.fixture(scope="class")
    @classmethod
    def graded(cls, tmp_path_factory, request):
        """alice hands in every solution of the assignment, bob every untouched lab. The Spark labs
        without RDDs run on a Connect server lane as in `make grade`: sandboxed, the batch starts its own
        sandboxed server; unsandboxed, they use this test process's Spark Connect server."""
        folder = tmp_path_factory.mktemp(cls.assignment) / "submissions"
        folder.mkdir()
        for notebook in cls.notebooks():
            nbformat.write(nbformat.read(notebook, 4), folder / f"alice_{notebook.stem}.ipynb")
            lab = course.released_notebook(cls.assignment, notebook.stem)
            if lab.exists():  # a missing lab fails the test below, not the whole class
                nbformat.write(nbformat.read(lab, 4), folder / f"bob_{notebook.stem}.ipynb")
        # one grading process: the other test workers keep the cores busy; generous limits, as this
        # checks the grades, not the speed, on a machine busy with the rest of the suite
        connect = any(engines.SPARK_CONNECT in engines.engines_of(nbformat.read(nb, 4)) for nb in cls.notebooks())
        servers = [request.getfixturevalue("spark_remote")] if connect and not sandbox.check().ok else []
        rows = grade_batch(folder, folder.parent / "reports", workers=1, cell_timeout=300, notebook_timeout=1500,
                           connect_servers=servers)
        return {(r.student, r.notebook): r for r in rows}

    @classmethod
    def notebooks(cls) -> list[Path]:
        return [nb for nb in GRADED if nb.parent.name == cls.assignment]

    def test_nbgrader_gives_the_solutions_full_marks_and_the_blank_labs_zero(self, graded):
        problems = []
        for notebook in self.notebooks():
            full = {c.grade_id: c.points for c in course.grade_cells(notebook) if c.kind == "tests"}
            solution, blank = graded[("alice", notebook.stem)], graded.get(("bob", notebook.stem))
            if solution.status != "graded" or {g: solution.points[g] for g in full} != full:
                problems.append(f"{notebook.stem}: the solution got {solution.points} ({solution.message})")
            if blank is None:
                problems.append(f"{notebook.stem}: no released lab; run `make release`")
            elif blank.status != "graded" or {g: blank.points[g] for g in full} != dict.fromkeys(full, 0.0):
                problems.append(f"{notebook.stem}: the blank lab got {blank.points} ({blank.message})")
        assert problems == []


# one class per assignment (pytest collects the names that start with "Test")
for _assignment in sorted({nb.parent.name for nb in GRADED}):
    _name = "Test" + _assignment.replace("-", "_")
    globals()[_name] = type(_name, (_GradedAssignment,), {"assignment": _assignment})
