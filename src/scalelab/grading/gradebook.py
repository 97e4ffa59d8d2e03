"""The course's nbgrader gradebook (``autograder/course/gradebook.db``), shared by `make grade` and the
formgrader.

`make grade` grades each submission in a private course root (batch.py). At the end of the batch,
`record` puts every graded submission into the course root as ``nbgrader autograde`` would have left
it there: the student, the submission with its timestamp, each grade's ``auto_score`` from the batch's
rows, the comments nbgrader writes ("No response." for an untouched answer), the notebooks as
submitted (``submitted/<student>/<assignment>/``, with ``timestamp.txt``) and as autograded
(``autograded/<student>/<assignment>/``). The formgrader then lists every submission with its
autograded points and opens it for the written answers. A grade's ``manual_score`` and
``extra_credit`` (what the instructor gives in the formgrader) are never written here: a re-grade
updates the automatic part only. As nbgrader's ``SaveAutoGrades`` does, a manual mark is flagged for
review when the student handed in a different notebook since.

`with_marks` reads the gradebook back into the batch's rows, so that ``grades.csv`` and the totals
show what was marked by hand: nbgrader's ``Grade.score`` (the manual score where there is one) per
grade cell, and the notebook's manual points in ``manual_score``.
"""

from __future__ import annotations

import dataclasses
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import nbformat

from scalelab.grading import course

NO_RESPONSE = "No response."  # nbgrader's auto_comment for an answer cell left as released


@dataclass
class Graded:
    """One student's graded submission of one assignment, as the batch has it."""

    student: str
    assignment: str
    timestamp: str | None  # the text of nbgrader's timestamp.txt, when the submission came with one
    submitted: dict[str, bytes]  # notebook name -> the notebook as graded (submitted, repaired)
    autograded: dict[str, bytes]  # notebook name -> nbgrader's autograded notebook
    rows: list  # batch.Row, one per notebook, all with status "graded"


def course_dir() -> Path:
    """The course's nbgrader root, as autograder/nbgrader_config.py says (autograder/course/)."""
    return Path(course.nbgrader_config().CourseDirectory.root)


def database() -> Path:
    return course_dir() / "gradebook.db"


def _open():
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{database()}", course.nbgrader_config().CourseDirectory.course_id)


def record(graded: Sequence[Graded], deadline: datetime | None = None) -> None:
    """Put `graded` into the course's gradebook and folders. An assignment the gradebook doesn't know
    yet (no `make release` since the course root was made) is added first, as `make release` adds it
    (nbgrader's generate_assignment, released into a temporary folder: labs/ is left alone)."""
    from sqlalchemy.exc import SAWarning  # nbgrader's database library: imported only when asked

    if not graded:
        return
    _add_missing_assignments(sorted({g.assignment for g in graded}))
    with _open() as gradebook, warnings.catch_warnings():
        # nbgrader's add_submission builds its rows in a way SQLAlchemy 2 warns about (and nbgrader
        # autograde does the same): harmless, and not the instructor's concern
        warnings.simplefilter("ignore", category=SAWarning)
        if deadline is not None:
            for assignment in sorted({g.assignment for g in graded}):
                gradebook.update_or_create_assignment(assignment, duedate=deadline)
        for one in graded:
            _record_one(gradebook, one)


def _add_missing_assignments(assignments: list[str]) -> None:
    from nbgrader.api import MissingEntry

    missing = list(assignments)
    if database().exists():
        with _open() as gradebook:
            missing = []
            for assignment in assignments:
                try:
                    gradebook.find_assignment(assignment)
                except MissingEntry:
                    missing.append(assignment)
    if missing:
        print(f"adding {', '.join(missing)} to the course gradebook {database()} (as `make release` does)",
              flush=True)
        with tempfile.TemporaryDirectory(prefix="scalelab-release-") as release:
            course.release(missing, release_directory=Path(release))


def _record_one(gradebook, one: Graded) -> None:
    from nbgrader.api import MissingEntry
    from nbgrader.utils import compute_checksum, is_solution, is_task, parse_utc

    root = course_dir()
    submitted = root / "submitted" / one.student / one.assignment
    changed = any((submitted / f"{name}.ipynb").exists() and (submitted / f"{name}.ipynb").read_bytes() != content
                  for name, content in one.submitted.items())
    gradebook.update_or_create_student(one.student)
    try:
        submission = gradebook.find_submission(one.assignment, one.student)
    except MissingEntry:
        submission = gradebook.add_submission(one.assignment, one.student)
    submission.timestamp = parse_utc(one.timestamp) if one.timestamp is not None else None
    rows = {row.notebook: row for row in one.rows}
    unknown = set(rows) - {notebook.name for notebook in submission.notebooks}
    if unknown:  # a notebook added to solutions/ since the gradebook was made
        raise RuntimeError(f"{one.assignment} in {database()} lacks the notebooks {', '.join(sorted(unknown))} of "
                           "solutions/: run `make release`")
    for notebook in submission.notebooks:
        unknown = set(rows[notebook.name].points) - {g.name for g in notebook.grades} if notebook.name in rows else ()
        if unknown:  # a grade cell added to solutions/ since the gradebook was made
            raise RuntimeError(f"{one.assignment}/{notebook.name} in {database()} lacks the grade cells "
                               f"{', '.join(sorted(unknown))} of solutions/: run `make release`")

        row = rows.get(notebook.name)
        notebook.late_submission_penalty = None  # nbgrader's late-penalty plugin: none (nbgrader_config.py)
        for grade in notebook.grades:
            if row is None:  # not handed in: nbgrader autograde gives it zero
                auto = 0.0
            elif grade.name in row.points:
                auto = row.points[grade.name]
            else:  # a grade cell the batch's notebook doesn't have: the gradebook is older than solutions/
                raise RuntimeError(f"{one.assignment}/{notebook.name} in {database()} has a grade cell "
                                   f"{grade.name!r} that solutions/ no longer has: run `make release`")
            grade.auto_score = auto
            if grade.manual_score is None:
                grade.needs_manual_grade = auto is None
            elif changed:  # a mark given to an answer the student has replaced since: review it
                grade.needs_manual_grade = True
        if notebook.name in one.autograded:
            cells = nbformat.reads(one.autograded[notebook.name].decode(), as_version=4).cells
            answers = {c.metadata["nbgrader"]["grade_id"]: c for c in cells
                       if (is_solution(c) or is_task(c)) and "grade_id" in c.metadata.get("nbgrader", {})}
            for comment in notebook.comments:
                cell = answers.get(comment.name)
                untouched = cell is not None and not is_task(cell) and \
                    cell.metadata["nbgrader"].get("checksum") == compute_checksum(cell)
                comment.auto_comment = NO_RESPONSE if untouched else None
    # the files last, once the gradebook took the grades, and before they are committed
    for folder, notebooks in ((submitted, one.submitted), (root / "autograded" / one.student / one.assignment,
                                                           one.autograded)):
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in notebooks.items():
            (folder / f"{name}.ipynb").write_bytes(content)
        # the formgrader lists a submission as autograded when this file's time is the gradebook's
        stamp = folder / "timestamp.txt"
        if one.timestamp is not None:
            stamp.write_text(one.timestamp)
        else:
            stamp.unlink(missing_ok=True)
    gradebook.db.commit()


def with_marks(rows: list) -> list:
    """`rows` with what the course's gradebook holds for their notebooks: each grade cell's score
    (nbgrader's ``Grade.score``: the manual score when there is one, plus extra credit), the notebook's
    score and manual points (``manual_score``), and whether written answers still wait to be marked.
    Rows with an error, and notebooks the gradebook doesn't have, are left as they are."""
    from nbgrader.api import MissingEntry

    marked = []
    with _open() as gradebook:
        for row in rows:
            if row.status != "graded":
                marked.append(row)
                continue
            try:
                notebook = gradebook.find_submission_notebook(row.notebook, row.assignment, row.student)
            except MissingEntry:
                marked.append(row)
                continue
            grades = {g.name: g for g in notebook.grades}
            points = {name: None if grades[name].needs_manual_grade else grades[name].score
                      for name in row.points if name in grades}
            manual = [g.manual_score + (g.extra_credit or 0.0) for g in grades.values() if g.manual_score is not None]
            marked.append(dataclasses.replace(
                row, score=notebook.score, needs_manual_grading=bool(notebook.needs_manual_grade),
                manual_score=sum(manual) if manual else None, points={**row.points, **points}))
    return marked


def marked_students(assignment: str) -> set[str]:
    """The students with a mark or a comment given by hand in the formgrader on `assignment`."""
    from nbgrader.api import MissingEntry

    if not database().exists():
        return set()
    with _open() as gradebook:
        try:
            submissions = gradebook.assignment_submissions(assignment)
        except MissingEntry:
            return set()
        return {s.student.id for s in submissions for notebook in s.notebooks
                if any(g.manual_score is not None for g in notebook.grades)
                or any(c.manual_comment for c in notebook.comments)}


def pages_with_marks(assignment: str, student: str) -> dict[str, bytes]:
    """nbgrader's feedback page of each of `student`'s notebooks of `assignment`, made from the course
    root with the course's feedback chain (hidden tests removed): the marks and comments given in the
    formgrader included. Notebook file name -> page."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = course.nbgrader_config()
    result = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config).generate_feedback(
        assignment, student, force=True)
    if not result.get("success"):
        raise RuntimeError(f"nbgrader generate_feedback {assignment} {student} failed: "
                           f"{(result.get('error') or result.get('log') or '')[-500:]}")
    folder = course_dir() / "feedback" / student / assignment
    return {page.name: page.read_bytes() for page in folder.glob("*.html")}
