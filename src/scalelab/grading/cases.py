"""The grading-case runner: prove that each exercise gives the right points to right and wrong answers.

A case file ``autograder/cases/<assignment>/<notebook>.toml`` lists cases (format in
autograder/README.md). Each case replaces one or more answer cells and states the points it expects
for the test cells it affects; every other test cell must keep its full points.

Running a whole notebook per case would cost minutes per notebook, so the runner executes the
solution once in a live kernel (down to its last test cell, skipping the demonstration cells that
grading skips too), then for each case runs the
replacement answers, re-runs the test cells from the first replaced cell down, scores them as
nbgrader does, and puts the solution's answers back. Cells that are not answers or tests are not
re-run: test cells should call the student's functions rather than read variables computed by
worked-example cells.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode

from scalelab.grading import course
from scalelab.grading.cells import is_answer, is_demonstration, is_test, nbgrader_meta

KINDS = ("wrong", "alternative")


@dataclass
class Case:
    name: str
    kind: str  # "wrong": a plausible mistake that must lose points; "alternative": another right answer
    answers: dict[str, str]  # answer-cell grade_id -> replacement source
    expect: dict[str, float]  # test-cell grade_id -> points; unlisted test cells expect full points
    why: str = ""


@dataclass
class CaseResult:
    case: Case
    expected: dict[str, float]
    actual: dict[str, float]
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.expected == self.actual

    def describe(self) -> str:
        diffs = [f"{g}: expected {self.expected[g]:g}, got {self.actual.get(g, float('nan')):g}"
                 for g in self.expected if self.expected[g] != self.actual.get(g)]
        return f"case {self.case.name!r} ({self.case.kind}): " + "; ".join(self.errors + diffs)


def cases_file(notebook: Path) -> Path:
    return course.repo_root() / "autograder" / "cases" / notebook.parent.name / f"{notebook.stem}.toml"


def load_cases(path: Path) -> list[Case]:
    """Read and check a case file; errors name the case and the field."""
    data = tomllib.loads(path.read_text())
    cases = []
    for i, raw in enumerate(data.get("case", [])):
        name = raw.get("name", f"#{i + 1}")
        if raw.get("kind") not in KINDS:
            raise ValueError(f"{path}: case {name!r}: kind must be one of {KINDS}, got {raw.get('kind')!r}")
        if not raw.get("answers"):
            raise ValueError(f"{path}: case {name!r}: [case.answers] must replace at least one answer cell")
        cases.append(Case(name, raw["kind"], dict(raw["answers"]),
                          {k: float(v) for k, v in raw.get("expect", {}).items()}, raw.get("why", "")))
    return cases


def score(cell: NotebookNode) -> float:
    """nbgrader's points for an executed test cell, after the course's DemoteStderr step."""
    from nbgrader.utils import determine_grade

    from scalelab.grading.preprocessors import DemoteStderr

    scored, _ = DemoteStderr().preprocess_cell(copy.deepcopy(cell), {}, 0)
    points, _ = determine_grade(scored)
    return float(points)


def exercises(notebook: NotebookNode) -> dict[str, list[str]]:
    """answer grade_id -> the test cells below it, up to the next answer cell."""
    mapping: dict[str, list[str]] = {}
    current = None
    for cell in notebook.cells:
        if is_answer(cell):
            current = nbgrader_meta(cell)["grade_id"]
            mapping[current] = []
        elif is_test(cell) and current is not None:
            mapping[current].append(nbgrader_meta(cell)["grade_id"])
    return mapping


class LiveNotebook:
    """A solution notebook executed once in a kernel that stays up for the cases."""

    def __init__(self, path: Path, timeout: int = 300):
        self.path = path
        self.notebook = nbformat.read(path, as_version=4)  # pristine: nbclient replaces executed cells
        self.client = NotebookClient(
            copy.deepcopy(self.notebook), timeout=timeout, allow_errors=True,
            resources={"metadata": {"path": str(path.parent)}},
        )
        metas = [nbgrader_meta(c) for c in self.notebook.cells]
        self.index = {m["grade_id"]: i for i, m in enumerate(metas) if m.get("grade_id")}
        self.tests = [i for i, c in enumerate(self.notebook.cells) if is_test(c)]
        self.solution_points: dict[str, float] = {}
        self.full_points = {metas[i]["grade_id"]: float(metas[i]["points"]) for i in self.tests}
        self.cell_errors: list[str] = []

    def __enter__(self) -> LiveNotebook:
        self._kernel = self.client.setup_kernel()
        self._kernel.__enter__()
        self._execute(range(0, self.tests[-1] + 1 if self.tests else len(self.notebook.cells)))
        executed = self.client.nb.cells
        self.solution_points = {nbgrader_meta(executed[i])["grade_id"]: score(executed[i]) for i in self.tests}
        return self

    def _execute(self, indices) -> None:
        for i in indices:
            cell = self.client.nb.cells[i]
            if cell.cell_type == "code" and not is_demonstration(cell):  # as nbgrader grades it
                self.client.execute_cell(cell, i)
                error = next((o for o in cell.outputs if o.output_type == "error"), None)
                if error is not None:
                    self.cell_errors.append(f"cell {i}: {error.ename}: {error.evalue}")

    def finish(self) -> None:
        """Run the cells below the last test cell (the closing cells that stop Spark or Dask)."""
        if self.tests:
            self._execute(range(self.tests[-1] + 1, len(self.notebook.cells)))

    def __exit__(self, *exc) -> None:
        self._kernel.__exit__(*exc)

    def printed(self) -> str:
        """Everything the executed cells printed (stdout and stderr streams), in notebook order."""
        return "".join(o.get("text", "") for c in self.client.nb.cells for o in c.get("outputs", []))

    def _run(self, source: str, index: int) -> NotebookNode:
        cell = nbformat.v4.new_code_cell(source)
        self.client.execute_cell(cell, index)
        return cell

    def run_case(self, case: Case) -> CaseResult:
        errors = [f"no answer cell {g!r}" for g in case.answers if g not in self.index
                  or not is_answer(self.notebook.cells[self.index[g]])]
        unknown = [g for g in case.expect if g not in self.full_points]
        errors += [f"no test cell {g!r} in expect" for g in unknown]
        expected = {**self.full_points, **{g: p for g, p in case.expect.items() if g not in unknown}}
        if errors:
            return CaseResult(case, expected, {}, errors)
        first = min(self.index[g] for g in case.answers)
        for grade_id, source in case.answers.items():
            self._run(source, self.index[grade_id])
        actual = dict(self.solution_points)
        for i in self.tests:
            if i > first:
                cell = copy.deepcopy(self.notebook.cells[i])
                self.client.execute_cell(cell, i)
                actual[nbgrader_meta(cell)["grade_id"]] = score(cell)
        for grade_id in case.answers:  # put the solution back for the next case
            restored = self._run(self.notebook.cells[self.index[grade_id]].source, self.index[grade_id])
            if any(o.output_type == "error" for o in restored.outputs):
                errors.append(f"restoring the solution of {grade_id!r} failed after this case")
        return CaseResult(case, expected, actual, errors)


def run_cases(notebook_path: Path, cases: list[Case] | None = None, timeout: int = 300):
    """Execute the solution once and run every case; returns (live notebook summary, results)."""
    cases = load_cases(cases_file(notebook_path)) if cases is None else cases
    with LiveNotebook(notebook_path, timeout) as live:
        results = [live.run_case(case) for case in cases]
        live.finish()
    return live, results
