"""`make grade` and the formgrader share the course's nbgrader gradebook (gradebook.py), and grading a
class twice gives the same CSVs.

A small class on the light trap notebook (tests/fixtures/trap-course.txt) in a private course
(SCALELAB_ROOT), as tests/test_grading.py builds it: alice hands in the solution in nbgrader's own
layout with a timestamp (her written answer waits to be marked), bob the untouched lab, carol a wrong
answer (split on one space).
"""

import csv
import shutil
import sqlite3
from pathlib import Path

import nbformat
import pytest
from test_grading import FULL, _answered, _trap_course

from scalelab.grading import course, gradebook
from scalelab.grading.batch import grade_batch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
ASSIGNMENT = "99-traps"
OUT_OF = sum(FULL.values()) + 1  # the written answer, traps-reflection, is worth 1
CSVS = ["grades.csv", f"totals-{ASSIGNMENT}.csv"]


def _grade(root: Path, folder: Path, reports: Path, **options):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SCALELAB_ROOT", str(root))
        rows = grade_batch(folder, reports, workers=1, cell_timeout=10, notebook_timeout=120, gradebook=True,
                           **options)
    return {r.student: r for r in rows}


def _table(reports: Path, name: str = "grades.csv") -> dict[str, dict]:
    with (reports / name).open() as handle:
        return {r["student"]: r for r in csv.DictReader(handle)}


def _open(root: Path):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SCALELAB_ROOT", str(root))
        return gradebook._open()


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    """The class graded into reports/first, then again from scratch (force) into reports/second."""
    root = tmp_path_factory.mktemp("gradebook-course")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SCALELAB_ROOT", str(root))
        solution, lab = _trap_course(root)
    folder = root / "submissions"
    (folder / "alice" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(nbformat.read(solution, 4), folder / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    (folder / "alice" / ASSIGNMENT / "timestamp.txt").write_text("2026-12-01 09:15:00.000000 UTC")
    nbformat.write(nbformat.read(lab, 4), folder / f"bob_{ASSIGNMENT}.ipynb")
    single_space = "def words_per_line(lines):\n    return [len(line.split(' ')) for line in lines]\n"
    nbformat.write(_answered(solution, lab, {"traps-words": single_space}), folder / f"carol_{ASSIGNMENT}.ipynb")
    first = _grade(root, folder, root / "reports" / "first")
    second = _grade(root, folder, root / "reports" / "second", force=True)
    return root, folder, first, second


def test_grading_a_class_twice_gives_identical_csvs(twice):
    root, _, first, second = twice
    assert {s: r.status for s, r in first.items()} == dict.fromkeys(["alice", "bob", "carol"], "graded")
    # no column is left out: the submission time comes from timestamp.txt, not from the run, and the
    # rows and cells are written in a fixed order
    for name in CSVS:
        assert (root / "reports" / "first" / name).read_bytes() == (root / "reports" / "second" / name).read_bytes()
    assert first == second


def test_the_course_gradebook_holds_every_submission_for_the_formgrader(twice):
    """What `make grade` leaves in autograder/course/ is what nbgrader's formgrader reads: the gradebook
    with the batch's auto scores, and the submitted and autograded notebooks."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    root, _, first, _ = twice
    course_dir = root / "autograder" / "course"
    with _open(root) as book:
        for student, row in first.items():
            notebook = book.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student)
            assert {g.name: None if g.needs_manual_grade else g.auto_score for g in notebook.grades} == row.points
            assert (course_dir / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()
            assert (course_dir / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()
        alice = book.find_submission(ASSIGNMENT, "alice")
        assert f"{alice.timestamp:%Y-%m-%d %H:%M}" == "2026-12-01 09:15" and alice.needs_manual_grade
        assert book.find_grade("traps-reflection", ASSIGNMENT, ASSIGNMENT, "alice").needs_manual_grade
        bob = book.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, "bob")
        assert bob.score == 0 and not bob.needs_manual_grade  # his untouched written answer scores 0 at once
        assert book.find_comment("traps-words", ASSIGNMENT, ASSIGNMENT, "bob").auto_comment == "No response."
        assert book.find_comment("traps-words", ASSIGNMENT, ASSIGNMENT, "alice").auto_comment is None
    # the formgrader's own API (its REST handlers call these): every submission autograded
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SCALELAB_ROOT", str(root))
        config = course.nbgrader_config()
        api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
        assert api.get_autograded_students(ASSIGNMENT) == {"alice", "bob", "carol"}
        submissions = {s["student"]: s for s in api.get_submissions(ASSIGNMENT)}
        assert all(s["autograded"] for s in submissions.values())
        assert submissions["alice"]["needs_manual_grade"] and not submissions["bob"]["needs_manual_grade"]
        notebooks = api.get_notebook_submissions(ASSIGNMENT, ASSIGNMENT)  # the "Manual grading" list
        assert sorted(n["student"] for n in notebooks) == ["alice", "bob", "carol"]


def test_a_mark_given_in_the_formgrader_survives_a_regrade_and_counts_in_the_csv(twice):
    root, folder, first, _ = twice
    with _open(root) as book:  # as the formgrader's GradeHandler.put does
        for student, cell, score in (("alice", "traps-reflection", 1.0), ("carol", "traps-words-tests", 0.5)):
            grade = book.find_grade(cell, ASSIGNMENT, ASSIGNMENT, student)
            grade.manual_score, grade.needs_manual_grade = score, False
        book.db.commit()
    said = _grade(root, folder, root / "reports" / "second")  # resumed: nothing is graded again
    assert all(r.status == "graded" for r in said.values())
    table = _table(root / "reports" / "second")
    assert (table["alice"]["score"], table["alice"]["manual_score"], table["alice"]["traps-reflection"],
            table["alice"]["needs_manual_grading"]) == (f"{OUT_OF:g}", "1", "1", "")
    assert (table["carol"]["score"], table["carol"]["manual_score"], table["carol"]["traps-words-tests"]) == \
        (f"{OUT_OF - 1.5:g}", "0.5", "0.5")
    assert table["bob"]["score"] == "0" and table["bob"]["manual_score"] == ""
    totals = _table(root / "reports" / "second", CSVS[1])
    assert totals["alice"] == {"student": "alice", "points": f"{OUT_OF:g}", "out_of": f"{OUT_OF:g}",
                               "complete": "yes"}
    # graded again from scratch: the marks stay, the auto scores are the batch's again
    again = _grade(root, folder, root / "reports" / "third", force=True)
    for name in CSVS:
        assert (root / "reports" / "third" / name).read_bytes() == (root / "reports" / "second" / name).read_bytes()
    with _open(root) as book:
        carol = book.find_grade("traps-words-tests", ASSIGNMENT, ASSIGNMENT, "carol")
        assert (carol.auto_score, carol.manual_score, carol.needs_manual_grade) == (0.0, 0.5, False)
    # a wrong answer still costs points, and a blank lab gets none: honest > wrong > blank
    assert again["alice"].score > again["carol"].score > again["bob"].score == 0
    assert first["alice"].score == OUT_OF - 1  # before the mark: the written answer counted 0


def test_make_feedback_returns_the_marks_and_comments_given_in_the_formgrader(twice, capsys):
    import zipfile

    from scalelab.__main__ import main

    root, _, _, _ = twice
    reports = root / "reports" / "first"
    bob = (reports / "feedback" / "bob" / "99-traps.html").read_bytes()  # nothing marked by hand: kept as made
    with _open(root) as book:  # as the formgrader's CommentHandler.put and GradeHandler.put do
        book.find_comment("traps-reflection", ASSIGNMENT, ASSIGNMENT, "alice").manual_comment = "Well argued: MARKER-7"
        grade = book.find_grade("traps-reflection", ASSIGNMENT, ASSIGNMENT, "alice")
        grade.manual_score, grade.needs_manual_grade = 1.0, False
        book.db.commit()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SCALELAB_ROOT", str(root))
        assert main(["feedback", "--reports", str(reports)]) == 0
    assert "notebook pages made again with the marks and comments" in capsys.readouterr().out
    with zipfile.ZipFile(reports / "feedback-zips" / "alice.zip") as handed_back:
        assert sorted(handed_back.namelist()) == ["alice/", "alice/99-traps.html", "alice/index.html"]
        page = handed_back.read("alice/99-traps.html").decode()
    assert "Well argued: MARKER-7" in page and f"Score: {OUT_OF:.1f} / {OUT_OF:.1f}" in page
    assert "BEGIN HIDDEN TESTS" not in page and "_random.Random(20261129)" not in page
    with zipfile.ZipFile(reports / "feedback-zips" / "bob.zip") as handed_back:
        assert handed_back.read("bob/99-traps.html") == bob


def test_an_unready_gradebook_costs_the_formgrader_not_the_csv(twice, tmp_path, capsys):
    """A locked gradebook: the CSV is written from the batch's grades, and the run says what to do.
    A course root without the assignment in its gradebook (no `make release`): it is added."""
    root, folder, first, _ = twice
    locker = sqlite3.connect(root / "autograder" / "course" / "gradebook.db")
    locker.execute("BEGIN EXCLUSIVE")
    try:
        rows = _grade(root, folder, root / "reports" / "first")  # resumed: cheap
    finally:
        locker.rollback()
        locker.close()
    assert "WARNING: could not put the grades into the course gradebook" in capsys.readouterr().out
    assert {s: r.points for s, r in rows.items()} == {s: r.points for s, r in first.items()}
    assert set(_table(root / "reports" / "first")) == {"alice", "bob", "carol"}

    fresh = tmp_path / "fresh-course"  # the same course, its gradebook never made
    shutil.copytree(root, fresh, ignore=shutil.ignore_patterns("course", "reports", "submissions"))
    _grade(fresh, folder, shutil.copytree(root / "reports" / "first", tmp_path / "reports"))  # resumed, unless
    # the grader's code changed meanwhile
    said = capsys.readouterr().out
    assert f"adding {ASSIGNMENT} to the course gradebook" in said  # then its submissions
    with _open(fresh) as book:
        assert {s.student.id for s in book.assignment_submissions(ASSIGNMENT)} == {"alice", "bob", "carol"}
