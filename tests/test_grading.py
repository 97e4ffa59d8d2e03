"""Grading is right: cases per exercise, and whole-class batches that survive every known trap."""

import contextlib
import copy
import csv
import shutil
import subprocess
import sys
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path

import nbformat
import psutil
import pytest
from nbclient.exceptions import DeadKernelError

from scalelab.grading import cases, course
from scalelab.grading.batch import grade_batch
from scalelab.grading.submissions import collect
from scalelab.paths import repo_root

REPO = repo_root()
SOURCES = [nb for a in course.assignments() for nb in course.source_notebooks(a)]
GRADED = [nb for nb in SOURCES if any(c.kind == "tests" for c in course.grade_cells(nb))]
# pytest-timeout's 900 s per test: a notebook's cases can take several minutes on a busy 2-core machine,
# so this file gets more room; every notebook run inside has its own timeouts.
pytestmark = pytest.mark.timeout(3600)


def _id(path: Path) -> str:
    return path.stem


@pytest.mark.parametrize("notebook", GRADED, ids=_id)
def test_every_exercise_has_two_wrong_cases_and_one_alternative(notebook):
    found = cases.load_cases(cases.cases_file(notebook))
    for answer in cases.exercises(nbformat.read(notebook, 4)):
        wrong = [c for c in found if answer in c.answers and c.kind == "wrong"]
        right = [c for c in found if answer in c.answers and c.kind == "alternative"]
        assert len(wrong) >= 2 and len(right) >= 1, f"{answer}: {len(wrong)} wrong, {len(right)} alternative"
    full = {c.grade_id: c.points for c in course.grade_cells(notebook)}
    for case in found:
        if case.kind == "wrong":
            assert any(p < full[g] for g, p in case.expect.items()), f"wrong case {case.name!r} loses nothing"
        else:
            assert not case.expect, f"alternative case {case.name!r} must expect full points"


# Each graded solution's cases run in `make test` right after nbval has run the solution, in the same
# kernel, on its loopback cluster (the root conftest.py); here, the runner's own checks.


def test_case_runner_catches_a_case_whose_expectation_is_wrong(tmp_path):
    """A mis-stated case must fail the runner (the runner is not a rubber stamp)."""
    toy = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "scalelab", "display_name": "s",
                                                            "language": "python"}})
    answer = nbformat.v4.new_code_cell("def double(x):\n    return 2 * x")
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "grade_id": "a",
                                   "schema_version": 3}
    test = nbformat.v4.new_code_cell("assert double(3) == 6")
    test.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": "a-tests",
                                 "points": 2, "schema_version": 3}
    warn = nbformat.v4.new_code_cell("import sys\nprint('noise', file=sys.stderr)\nassert double(0) == 0")
    warn.metadata["nbgrader"] = {**test.metadata["nbgrader"], "grade_id": "b-tests", "points": 1}
    toy.cells = [answer, test, warn]
    path = tmp_path / "toy.ipynb"
    nbformat.write(toy, path)
    wrong = cases.Case("triple", "wrong", {"a": "def double(x):\n    return 3 * x"}, {"a-tests": 0})
    misstated = cases.Case("triple, said right", "wrong", {"a": "def double(x):\n    return 3 * x"}, {})
    live, results = cases.run_cases(path, [wrong, misstated])
    assert live.solution_points == {"a-tests": 2.0, "b-tests": 1.0}  # stderr alone costs nothing
    assert [r.ok for r in results] == [True, False]
    assert "a-tests: expected 2, got 0" in results[1].describe()


# ---- a class with every trap from autograder/README.md, on a light notebook ----------------------
# The traps test the grader, not a lab: a plain-Python notebook (tests/fixtures/trap-course.txt) in a
# private course (SCALELAB_ROOT) costs a second a kernel where a Spark lab costs half a minute.

TRAP_OUTLINE = REPO / "tests" / "fixtures" / "trap-course.txt"
DEADLINE = datetime(2026, 12, 1, 12, 0)  # UTC
FULL = {"traps-words-tests": 1.0, "traps-total-tests": 2.0, "traps-mean-tests": 2.0}


def _trap_course(root: Path) -> tuple[Path, Path]:
    """Build and release the trap notebook in a course at `root`; (solution, released lab)."""
    (root / "autograder").mkdir(parents=True)
    shutil.copy(REPO / "autograder" / "nbgrader_config.py", root / "autograder")
    solution = root / "solutions" / "99-traps" / "99-traps.ipynb"
    subprocess.run([sys.executable, str(REPO / "tools" / "nbbuild.py"), str(TRAP_OUTLINE), str(solution)],
                   check=True, capture_output=True)
    course.release(["99-traps"])
    return solution, root / "labs" / "99-traps" / "99-traps.ipynb"


def _answered(solution: Path, lab: Path, overrides: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The released lab with the solution's answers typed in, some replaced by `overrides`."""
    answers = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nbformat.read(solution, 4).cells}
    notebook = nbformat.read(lab, 4)
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            cell.source = (overrides or {}).get(meta["grade_id"], answers[meta["grade_id"]])
    return notebook


def _trap_class(folder: Path, solution: Path, lab: Path) -> None:
    folder.mkdir()
    nbformat.write(nbformat.read(solution, 4), folder / "alice_99-traps.ipynb")
    nbformat.write(nbformat.read(lab, 4), folder / "bob_99-traps.ipynb")
    single_space = "def words_per_line(lines):\n    return [len(line.split(' ')) for line in lines]\n"
    nbformat.write(_answered(solution, lab, {"traps-words": single_space}), folder / "carol_99-traps.ipynb")
    (folder / "dave_99-traps.ipynb").write_text('{"cells": [')
    duplicated = _answered(solution, lab)
    index = next(i for i, c in enumerate(duplicated.cells)
                 if c.metadata.get("nbgrader", {}).get("grade_id") == "traps-words-tests")
    twin = copy.deepcopy(duplicated.cells[index])
    twin.id = "pasted-copy"
    duplicated.cells.insert(index + 1, twin)
    nbformat.write(duplicated, folder / "erin_99-traps.ipynb")
    nbformat.write(_answered(solution, lab, {"traps-words": "import os\nos._exit(1)"}), folder / "frank_99-traps.ipynb")
    hack = nbformat.read(lab, 4)
    first = next(c for c in hack.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "traps-words")
    first.source = "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])"
    nbformat.write(hack, folder / "grace_99-traps.ipynb")
    noisy = (
        "import os, sys, warnings\n\n"
        "def words_per_line(lines):\n"
        "    warnings.warn('a correct answer that warns')\n"
        "    print('and writes to stderr', file=sys.stderr)\n"
        "    os.write(2, b'and to file descriptor 2\\n')\n"
        "    return [len(line.split()) for line in lines]\n"
    )
    nbformat.write(_answered(solution, lab, {"traps-words": noisy}), folder / "heidi_99-traps.ipynb")
    nbformat.write(_answered(solution, lab, {"traps-mean": "while True:\n    pass"}), folder / "ivan_99-traps.ipynb")
    chatty = "print('x' * 5_000_000)\n\ndef words_per_line(lines):\n    return [len(s.split()) for s in lines]\n"
    nbformat.write(_answered(solution, lab, {"traps-words": chatty}), folder / "judy_99-traps.ipynb")
    nbformat.write(nbformat.read(solution, 4), folder / "kevin_homework.ipynb")
    # nbgrader's own layout, with the timestamp.txt its exchange writes: late, on time, unreadable
    for student, stamp in [("olivia", "2026-12-01 14:30:00.000000 UTC"), ("peggy", "2026-12-01 09:15:00 UTC"),
                           ("quentin", "last Tuesday, honest")]:
        handed_in = folder / student / "99-traps"
        handed_in.mkdir(parents=True)
        nbformat.write(nbformat.read(solution, 4), handed_in / "99-traps.ipynb")
        (handed_in / "timestamp.txt").write_text(stamp)
    weakened = _answered(solution, lab, {"traps-mean": "def mean(values):\n    return 0.0"})
    for cell in weakened.cells:  # and edits the test that would catch it
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "traps-mean-tests":
            cell.source = "pass"
    nbformat.write(weakened, folder / "nina_99-traps.ipynb")
    skipper = nbformat.read(lab, 4)  # tags every cell, tests included, as a demonstration to skip
    for cell in skipper.cells:
        cell.metadata["tags"] = ["skip-when-grading"]
    nbformat.write(skipper, folder / "mallory_99-traps.ipynb")


@pytest.fixture(scope="module")
def trap_course(tmp_path_factory):
    """The trap notebook's course, built and released once: (root, solution, released lab)."""
    root = tmp_path_factory.mktemp("trap-course")
    with pytest.MonkeyPatch.context() as env:  # only while building: later tests see the repo
        env.setenv("SCALELAB_ROOT", str(root))
        solution, lab = _trap_course(root)
    return root, solution, lab


@pytest.fixture(scope="module")
def graded_class(trap_course):
    root, solution, lab = trap_course
    with pytest.MonkeyPatch.context() as env:  # only while grading: later tests see the repo
        env.setenv("SCALELAB_ROOT", str(root))
        folder = root / "submissions"
        _trap_class(folder, solution, lab)
        reports = root / "reports"
        rows = grade_batch(folder, reports, workers=2, cell_timeout=10, notebook_timeout=120,
                           deadline=DEADLINE)
    return {r.student: r for r in rows}, reports, lab


def _auto(row) -> dict:
    return {k: v for k, v in row.points.items() if k in FULL}


@pytest.mark.slow
def test_solution_full_marks_blank_lab_zero_and_a_case_its_points(graded_class):
    rows, _, _ = graded_class
    assert rows["alice"].status == "graded" and _auto(rows["alice"]) == FULL
    assert rows["alice"].needs_manual_grading and rows["alice"].points["traps-reflection"] is None
    assert rows["bob"].status == "graded" and _auto(rows["bob"]) == dict.fromkeys(FULL, 0.0)
    assert _auto(rows["carol"]) == {**FULL, "traps-words-tests": 0.0}


@pytest.mark.slow
def test_broken_files_get_error_rows_and_the_others_are_graded(graded_class):
    rows, reports, _ = graded_class
    assert rows["dave"].status == "error" and "not a valid notebook" in rows["dave"].message
    assert rows["kevin_homework"].status == "error" and "matches no course notebook" in rows["kevin_homework"].message
    with (reports / "grades.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(rows)
    alice = next(r for r in table if r["student"] == "alice")
    assert (alice["status"], alice["score"], alice["traps-total-tests"]) == ("graded", "5", "2")
    assert next(r for r in table if r["student"] == "dave")["status"] == "error"


@pytest.mark.slow
def test_lateness_comes_from_nbgraders_timestamp_against_the_deadline(graded_class):
    rows, reports, _ = graded_class
    assert (rows["olivia"].submitted, rows["olivia"].seconds_late) == ("2026-12-01 14:30:00 UTC", 9000.0)
    assert (rows["peggy"].submitted, rows["peggy"].seconds_late) == ("2026-12-01 09:15:00 UTC", 0.0)
    assert _auto(rows["olivia"]) == FULL  # lateness is reported, never taken off the points
    quentin = rows["quentin"]  # an unreadable timestamp: graded all the same, and the row says why
    assert quentin.status == "graded" and quentin.seconds_late is None and "lateness unknown" in quentin.message
    assert (rows["alice"].submitted, rows["alice"].seconds_late) == ("", None)  # a flat folder has no time
    with (reports / "grades.csv").open() as handle:
        table = {r["student"]: r for r in csv.DictReader(handle)}
    assert (table["olivia"]["submitted"], table["olivia"]["seconds_late"]) == ("2026-12-01 14:30:00 UTC", "9000")
    assert table["alice"]["seconds_late"] == ""


@pytest.mark.slow
def test_totals_for_a_learning_platform_one_row_per_student(graded_class):
    rows, reports, _ = graded_class
    with (reports / "totals-99-traps.csv").open() as handle:
        totals = {r["student"]: r for r in csv.DictReader(handle)}
    assert set(totals) == {r.student for r in rows.values() if r.assignment == "99-traps"}
    out_of = f"{rows['alice'].max_score:g}"
    assert totals["carol"] == {"student": "carol", "points": f"{rows['carol'].score:g}", "out_of": out_of,
                               "complete": "yes"}  # an untouched written answer scores 0 at once
    assert rows["alice"].needs_manual_grading and totals["alice"]["complete"] == ""  # hers waits to be marked
    assert totals["bob"]["points"] == "0" and totals["dave"]["points"] == "0"  # dave: an unreadable file
    assert rows["dave"].status == "error" and totals["dave"]["complete"] == ""


@pytest.mark.slow
def test_a_second_run_keeps_what_is_graded_and_grades_only_what_changed(trap_course, tmp_path, capsys):
    """Also: the same class graded twice gives the same grades.csv, from the store and from scratch."""
    root, solution, lab = trap_course
    folder, reports = tmp_path / "class", tmp_path / "reports"
    folder.mkdir()
    nbformat.write(nbformat.read(solution, 4), folder / "alice_99-traps.ipynb")
    nbformat.write(nbformat.read(lab, 4), folder / "bob_99-traps.ipynb")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SCALELAB_ROOT", str(root))

        def grade(**options):
            rows = grade_batch(folder, reports, workers=1, cell_timeout=10, notebook_timeout=120, **options)
            return {r.student: r for r in rows}, (reports / "grades.csv").read_text(), capsys.readouterr().out

        first, first_csv, _ = grade()
        (reports / "feedback" / "alice" / "99-traps.html").unlink()  # lost meanwhile: it comes back
        again, again_csv, said = grade()
        assert again_csv == first_csv and "2 submissions are unchanged" in said and "from 0 submissions" in said
        assert (reports / "feedback" / "alice" / "99-traps.html").exists()
        single_space = "def words_per_line(lines):\n    return [len(line.split(' ')) for line in lines]\n"
        nbformat.write(_answered(solution, lab, {"traps-words": single_space}), folder / "bob_99-traps.ipynb")
        changed, changed_csv, said = grade()  # bob handed in again, answered: only his notebook is graded
        assert "1 submissions are unchanged" in said and "from 1 submissions" in said
        assert changed["alice"] == first["alice"] and _auto(changed["bob"]) == {**FULL, "traps-words-tests": 0.0}
        _, forced_csv, said = grade(force=True)
        assert "unchanged" not in said and "from 2 submissions" in said
        assert forced_csv == changed_csv  # graded twice from scratch and from the store: the same CSV


def test_make_grade_refuses_a_deadline_it_cannot_read(tmp_path, capsys):
    from scalelab.grading.batch import main

    assert main([str(tmp_path), "--deadline", "next Friday-ish"]) == 2
    assert "'2026-12-01 23:59'" in capsys.readouterr().err


@pytest.mark.slow
def test_an_edited_test_cell_is_flagged_and_graded_as_the_source_says(graded_class):
    rows, reports, _ = graded_class
    nina = rows["nina"]
    assert nina.flags == "locked or test cells edited: traps-mean-tests"
    assert _auto(nina) == {**FULL, "traps-mean-tests": 0.0}  # nbgrader restored the test: it caught her mean
    assert rows["erin"].flags == "grade cells copied: traps-words-tests"
    assert rows["alice"].flags == "" and rows["bob"].flags == ""
    with (reports / "grades.csv").open() as handle:
        assert {r["student"]: r["flags"] for r in csv.DictReader(handle)}["nina"] == nina.flags


def test_tamper_flags_name_edited_deleted_copied_and_moved_grade_cells(tmp_path):
    from scalelab.grading.flags import tamper_flags

    def cell(grade_id, source, locked):
        made = nbformat.v4.new_code_cell(source)
        made.metadata["nbgrader"] = {"grade_id": grade_id, "locked": locked, "solution": not locked,
                                     "grade": locked, "schema_version": 3}
        return made

    lab = nbformat.v4.new_notebook()
    lab.cells = [cell("a", "raise NotImplementedError", False), cell("a-tests", "assert f(1) == 2", True),
                 cell("b", "raise NotImplementedError", False), cell("b-tests", "assert g(1) == 3", True)]
    nbformat.write(lab, tmp_path / "lab.ipynb")
    same = copy.deepcopy(lab)
    same.cells[0].source = "def f(x):\n    return 2 * x"  # answering is not tampering
    nbformat.write(same, tmp_path / "same.ipynb")
    assert tamper_flags(tmp_path / "same.ipynb", tmp_path / "lab.ipynb") == []
    odd = copy.deepcopy(lab)
    odd.cells[1].source = "pass"
    twin = copy.deepcopy(odd.cells[1])
    twin.id = "pasted-copy"
    odd.cells = [odd.cells[1], odd.cells[0], twin, odd.cells[2]]  # a-tests first, twice; b-tests gone
    nbformat.write(odd, tmp_path / "odd.ipynb")
    assert tamper_flags(tmp_path / "odd.ipynb", tmp_path / "lab.ipynb") == [
        "locked or test cells edited: a-tests", "grade cells deleted: b-tests", "grade cells copied: a-tests",
        "answer cells moved below their tests: a"]
    assert tamper_flags(tmp_path / "odd.ipynb", tmp_path / "no-lab.ipynb") == []


@pytest.mark.slow
def test_a_duplicated_cell_does_not_abort_grading(graded_class):
    rows, _, _ = graded_class
    assert rows["erin"].status == "graded" and _auto(rows["erin"]) == FULL
    assert "traps-words-tests" in rows["erin"].message  # the note says which cell was a copy


@pytest.mark.slow
def test_a_dead_kernel_gets_a_row_saying_so(graded_class):
    rows, _, _ = graded_class
    assert rows["frank"].status == "error" and "kernel died" in rows["frank"].message


@pytest.mark.slow
def test_neutralised_test_cells_score_nothing(graded_class):
    rows, _, _ = graded_class
    assert rows["grace"].status == "graded" and _auto(rows["grace"]) == dict.fromkeys(FULL, 0.0)


@pytest.mark.slow
def test_demonstrations_are_skipped_but_a_tag_cannot_skip_a_test(graded_class):
    rows, reports, _ = graded_class
    assert _auto(rows["alice"]) == FULL  # the demonstration that breaks words_per_line did not run
    assert "skipped while grading" in (reports / "feedback" / "alice" / "99-traps.html").read_text()
    assert rows["mallory"].status == "graded" and _auto(rows["mallory"]) == dict.fromkeys(FULL, 0.0)


@pytest.mark.slow
def test_stderr_from_a_correct_answer_costs_no_points(graded_class):
    rows, _, _ = graded_class
    assert _auto(rows["heidi"]) == FULL


@pytest.mark.slow
def test_an_endless_cell_is_interrupted_and_only_its_exercise_fails(graded_class):
    rows, _, _ = graded_class
    assert rows["ivan"].status == "graded" and _auto(rows["ivan"]) == {**FULL, "traps-mean-tests": 0.0}
    assert rows["ivan"].flags == "time limit hit: traps-mean" and rows["alice"].flags == ""


@pytest.mark.slow
def test_huge_output_is_cut_and_feedback_hides_hidden_tests(graded_class):
    rows, reports, _ = graded_class
    assert _auto(rows["judy"]) == FULL and rows["judy"].flags == "output over the limit, cut: traps-words"
    assert (reports / "feedback" / "judy" / "99-traps.html").stat().st_size < 1_000_000
    page = (reports / "feedback" / "alice" / "99-traps.html").read_text()
    assert '<a href="#traps-total-tests">Test cell</a> (Score: 2.0 / 2.0)' in page  # the graded notebook's page
    for secret in ("BEGIN HIDDEN TESTS", "_random.Random(20261129)", "scalelab-test-cell-done"):
        assert secret not in page
    bob = (reports / "feedback" / "bob" / "99-traps.html").read_text()
    assert "_rng" not in bob  # tracebacks don't quote hidden test code either
    index = (reports / "feedback" / "alice" / "index.html").read_text()
    assert "99-traps.html" in index and "5 / 6 points" in index


@pytest.mark.slow
def test_validate_api_gives_the_verdict_the_cli_exit_status_does_not(graded_class, tmp_path):
    lab = tmp_path / "99-traps.ipynb"
    lab.write_bytes(graded_class[2].read_bytes())
    cli = subprocess.run([sys.executable, "-m", "nbgrader", "validate", str(lab)], capture_output=True,
                         text=True, env=course.tool_env(), timeout=600)
    assert cli.returncode == 0  # nbgrader says "success" as an exit status even though tests fail...
    verdict = course.validate(lab)
    assert verdict.get("failed"), verdict  # ...while its Python API reports the failures


# An answer that records what its kernel can see: its environment and the one its parent (the grading
# process) started with, and the source of every later cell as IPython runs it (an input transformer, as
# the `grace` trap uses), test cells' sentinel line included.
SPY = """import os, pathlib
_seen = pathlib.Path({folder!r})
_seen.joinpath("environment").write_text(repr(dict(os.environ)))
_seen.joinpath("parent-environment").write_bytes(pathlib.Path(f"/proc/{{os.getppid()}}/environ").read_bytes())
def _record(lines):
    with _seen.joinpath("sources").open("a") as handle:
        handle.write("".join(lines))
    return lines
get_ipython().input_transformers_cleanup.append(_record)
"""


@pytest.mark.slow
def test_a_lane_grades_submission_after_submission_each_with_its_own_token(trap_course, tmp_path, monkeypatch):
    """One long-lived grading process grades two submissions in a row: each kernel runs its own
    submission's secret token, sees neither token in its environment, and each gets its own grades.
    Unsandboxed, so that the kernels can write what they saw where this test reads it (and a sandboxed
    kernel's parent is the sandbox's own, not the grading process: tests/test_sandbox.py)."""
    import secrets

    from scalelab.grading import batch, preprocessors
    from scalelab.grading.worker import GradingProcess

    root, solution, lab = trap_course
    spied = tmp_path / "spied-course"  # the spy is an input transformer: the grader's scan must let it run
    shutil.copytree(root / "autograder", spied / "autograder")
    shutil.copytree(root / "solutions", spied / "solutions")
    with (spied / "autograder" / "nbgrader_config.py").open("a") as config:
        config.write("\nc.SkipRiskyCells.enabled = False\n")
    monkeypatch.setenv("SCALELAB_ROOT", str(spied))
    template = batch._prepare_templates({"99-traps"}, tmp_path / "scratch", [], [])["99-traps"]
    right = "def words_per_line(lines):\n    return [len(line.split()) for line in lines]\n"
    single_space = "def words_per_line(lines):\n    return [len(line.split(' ')) for line in lines]\n"
    expected = {"amy": FULL, "ben": {**FULL, "traps-words-tests": 0.0}}
    tokens = {student: secrets.token_hex(12) for student in expected}
    with GradingProcess(course.tool_env(batch._grading_env(sandbox=False))) as process:
        for student, answer in (("amy", right), ("ben", single_space)):
            seen = tmp_path / f"seen-{student}"
            seen.mkdir()
            notebook = _answered(solution, lab, {"traps-words": SPY.format(folder=str(seen)) + answer})
            job = batch.Job(student, "99-traps", {"99-traps": nbformat.writes(notebook).encode()}, {"99-traps": []})
            course_root = batch._course_root(job, template, tmp_path / student)
            outcome = process.grade(course_root, "99-traps", student, 10, 120, tokens[student])
            assert outcome.success, outcome
            assert _auto(batch._scores(course_root, student, "99-traps", "99-traps", [], [])) == expected[student]
        assert process.started == 1  # both by the same worker process
    for student, token in tokens.items():
        other = next(t for s, t in tokens.items() if s != student)
        sources = (tmp_path / f"seen-{student}" / "sources").read_text()
        assert f"{preprocessors.SENTINEL_PREFIX}:{token}:traps-total-tests" in sources  # its own token ran
        assert other not in sources
        for seen in ("environment", "parent-environment"):
            environment = (tmp_path / f"seen-{student}" / seen).read_bytes().decode(errors="replace")
            assert token not in environment and other not in environment, seen
            assert "SCALELAB_SENTINEL" not in environment and "SCALELAB_ROOT" in environment, seen


@pytest.mark.slow
def test_a_lane_replaces_its_grading_process_after_a_timeout_or_a_crash(trap_course, tmp_path, monkeypatch):
    """A submission over the time limit gets its error row and one that kills the grading process gets
    an error row; in the same lane, the next submission is graded by a fresh process. Unsandboxed: a
    sandboxed kernel can neither see the grading process nor write where this test reads its pid
    (tests/test_sandbox.py grades the same attacks in a sandbox)."""
    from scalelab.grading import batch
    from scalelab.grading.worker import GradingProcess

    made = []

    class Recorded(GradingProcess):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(batch, "GradingProcess", Recorded)
    root, solution, lab = trap_course
    monkeypatch.setenv("SCALELAB_ROOT", str(root))
    folder = tmp_path / "class"
    folder.mkdir()
    kernel_pid = tmp_path / "amos-kernel-pid"
    busy = (f"import os, pathlib\npathlib.Path({str(kernel_pid)!r}).write_text(str(os.getpid()))\n"
            "sum(range(10**15))")  # C code holding the GIL: the kernel can't notice its parent is gone
    nbformat.write(_answered(solution, lab, {"traps-words": busy}),
                   folder / "amos_99-traps.ipynb")  # the cell limit (60 s) is longer than the notebook's
    nbformat.write(nbformat.read(solution, 4), folder / "beth_99-traps.ipynb")
    killer = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"  # the kernel's parent: the worker
    nbformat.write(_answered(solution, lab, {"traps-words": killer}), folder / "carl_99-traps.ipynb")
    nbformat.write(nbformat.read(solution, 4), folder / "dora_99-traps.ipynb")
    try:
        rows = grade_batch(folder, tmp_path / "reports", workers=1, cell_timeout=60, notebook_timeout=10,
                           sandbox=False)
        assert not _running(int(kernel_pid.read_text()))  # the timed-out submission's kernel was killed
    finally:
        if kernel_pid.exists() and _running(int(kernel_pid.read_text())):
            psutil.Process(int(kernel_pid.read_text())).kill()
    rows = {r.student: r for r in rows}
    assert rows["amos"].status == "error" and "grading stopped after 10 s" in rows["amos"].message
    assert rows["beth"].status == "graded" and _auto(rows["beth"]) == FULL, rows["beth"].message
    assert rows["beth"].message == batch.UNSANDBOXED_NOTE  # every row graded without a sandbox says so
    assert rows["carl"].status == "error" and rows["carl"].score is None
    assert rows["dora"].status == "graded" and _auto(rows["dora"]) == FULL, rows["dora"].message
    # one lane; a fresh process after amos's timeout and after carl's crash (beth's process graded carl)
    assert len(made) == 1 and made[0].started == 3


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# Answer cells that run past the cell's time limit and don't stop when interrupted (SIGINT ignored), one
# of them after starting a child that leaves the kernel's process group and session.
IGNORES_INTERRUPTS = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"
HIDES_A_CHILD = (
    "import multiprocessing, os, signal, time\n"
    "def _hide():\n"
    "    os.setsid()  # out of the kernel's process group: killing the group misses it\n"
    "    time.sleep(1000)\n"
    "_child = multiprocessing.get_context('fork').Process(target=_hide)\n"
    "_child.start()\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "_child.join()\n"
)
STUBBORN = {"ida": IGNORES_INTERRUPTS, "cid": HIDES_A_CHILD}  # student -> their traps-mean answer


def _grade_stubborn_class(solution: Path, lab: Path, tmp_path: Path, monkeypatch, request, sandbox: bool):
    """An honest student and the STUBBORN ones, graded with a 5 s cell limit and a 600 s notebook limit:
    (rows by student, the processes of the batch's kernels still running afterwards)."""
    # every kernel's command line names this folder (its connection file), and so does a forked child's
    scratch = Path(tempfile.mkdtemp(prefix="stb-", dir="/tmp"))  # short: the kernels' unix sockets are in it
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(scratch / "runtime"))
    folder = tmp_path / "class"
    folder.mkdir()
    nbformat.write(nbformat.read(solution, 4), folder / "amy_99-traps.ipynb")
    for student, answer in STUBBORN.items():
        nbformat.write(_answered(solution, lab, {"traps-mean": answer}), folder / f"{student}_99-traps.ipynb")
    rows = grade_batch(folder, tmp_path / "reports", workers=2, cell_timeout=5, notebook_timeout=600,
                       sandbox=sandbox)

    def ours():
        return [p for p in psutil.process_iter(["cmdline"]) if str(scratch) in " ".join(p.info["cmdline"] or [])]

    psutil.wait_procs(ours(), timeout=10)  # a process killed a moment ago may not be reaped yet
    left = ours()
    for process in left:  # never outlive the test
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    return {r.student: r for r in rows}, left


def _assert_stopped_and_graded_on_what_ran(rows) -> None:
    why = {student: row.message for student, row in rows.items()}  # shown when an assertion fails
    assert rows["amy"].status == "graded" and _auto(rows["amy"]) == FULL, why
    for student in STUBBORN:
        row = rows[student]
        # the cells before the stubborn one were graded; the test cell below it did not run
        assert row.status == "graded" and _auto(row) == {**FULL, "traps-mean-tests": 0.0}, why
        assert "(traps-mean) ran past its time limit (5 s) and did not stop when interrupted" in row.message, why
        assert row.messages["traps-mean-tests"].startswith("GradingError: not run: the grader stopped the kernel")


@pytest.mark.slow
@pytest.mark.timeout(300)  # far below the notebook limit (600 s): the batch never waits for it
def test_a_cell_that_ignores_the_interrupt_is_stopped_with_what_it_started(trap_course, tmp_path, monkeypatch,
                                                                           request):
    """Unsandboxed: a cell past its limit that ignores SIGINT gets its kernel killed a few seconds later,
    with the child it started in a session of its own; the notebook is graded on what ran, its row says
    which cell hit the time limit, and the honest student of the batch gets full points.
    tests/test_sandbox.py grades the same class in sandboxes."""
    root, solution, lab = trap_course
    monkeypatch.setenv("SCALELAB_ROOT", str(root))
    rows, left = _grade_stubborn_class(solution, lab, tmp_path, monkeypatch, request, sandbox=False)
    _assert_stopped_and_graded_on_what_ran(rows)
    assert left == []  # no kernel and no hidden child outlives the batch


def test_submission_layouts_and_zip(tmp_path):
    known = course.notebook_index()
    lab = course.released_notebook("00-setup", "00-setup")
    nested = tmp_path / "nested" / "submitted" / "amy" / "00-setup"
    nested.mkdir(parents=True)
    (nested / "00-setup.ipynb").write_bytes(lab.read_bytes())
    per_student = tmp_path / "nested" / "Ben Ode"
    per_student.mkdir()
    (per_student / "00-setup.ipynb").write_bytes(lab.read_bytes())
    (tmp_path / "nested" / "cy-00-setup.ipynb").write_bytes(lab.read_bytes())
    (tmp_path / "nested" / "dee_4711_00-setup-1.ipynb").write_bytes(lab.read_bytes())
    found, rejected = collect(tmp_path / "nested", known)
    assert sorted((s.student, s.notebook) for s in found) == [
        ("Ben_Ode", "00-setup"), ("amy", "00-setup"), ("cy", "00-setup"), ("dee_4711", "00-setup")]
    assert rejected == []
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(lab, "export/eve_00-setup.ipynb")
        z.writestr("export/notes.ipynb", "{}")
    from scalelab.grading.submissions import unpack

    found, rejected = collect(unpack(archive, tmp_path / "unzipped"), known)
    assert [(s.student, s.notebook) for s in found] == [("eve", "00-setup")]
    assert len(rejected) == 1 and "matches no course notebook" in rejected[0].reason


def test_progress_counts_submissions_and_failures():
    from io import StringIO

    from scalelab.grading.batch import Progress, Row

    out = StringIO()
    progress = Progress(3, stream=out)
    progress.update([Row("amy", "00-setup", "00-setup", "graded")])
    progress.update([Row("ben", "00-setup", "00-setup", "error", message="kernel died")])
    lines = out.getvalue().splitlines()
    assert "1/3 graded, 0 failed" in lines[0] and "(amy 00-setup)" in lines[0]
    assert "2/3 graded, 1 failed" in lines[1] and "left" in lines[1]
    assert lines[1].startswith("[" + "#" * 13 + "." * 7 + "]")


def test_the_workers_outcome_crosses_the_process_boundary_with_its_reason():
    from scalelab.grading.batch import _explain_failure
    from scalelab.grading.worker import Failure, Outcome

    died = Outcome(False, error="NbGraderException: see the log", log="[ERROR] ...", failure=Failure.KERNEL_DIED)
    assert Outcome.from_json(died.to_json()) == died
    assert "kernel died" in _explain_failure(died, 60)
    stopped = Outcome(False, error="stopped after 60 s", failure=Failure.TIMED_OUT)
    assert "stopped after 60 s" in _explain_failure(stopped, 60)
    cell_stopped = Outcome(True, stopped={"99-traps": "cell 8 (traps-mean) ran past its time limit (5 s) ..."})
    assert Outcome.from_json(cell_stopped.to_json()) == cell_stopped
    # the words alone no longer make a dead kernel: only the reason the grading process saw does
    other = Outcome(False, error="Traceback ...\nValueError: bad metadata", log="Kernel died? no")
    assert _explain_failure(Outcome.from_json(other.to_json()), 60) == (
        "nbgrader could not grade this notebook: ValueError: bad metadata")


@pytest.mark.parametrize("error", [DeadKernelError("Kernel died"),
                                   RuntimeError("Kernel died before replying to kernel_info")])
def test_the_execute_step_notes_a_kernel_that_died(monkeypatch, error):
    from nbgrader.preprocessors import Execute

    from scalelab.grading import preprocessors

    def die(self, nb, resources=None, km=None):
        raise error

    monkeypatch.setattr(Execute, "preprocess", die)
    monkeypatch.setattr(preprocessors, "kernel_died", False)
    with pytest.raises(RuntimeError):
        preprocessors.ExecuteOnSharedEngines().preprocess(nbformat.v4.new_notebook(), {})
    assert preprocessors.kernel_died


@pytest.mark.slow
def test_a_class_is_graded_on_the_workers_of_a_dask_cluster(dask_scheduler, tmp_path, monkeypatch):
    from distributed import Client, get_task_stream

    from scalelab.grading import batch

    monkeypatch.setattr(batch, "_run_here", None)  # grading on this machine would fail: it must not happen
    solution = REPO / "solutions" / "01-mapreduce" / "01-lazy-pipelines.ipynb"
    folder = tmp_path / "class"
    folder.mkdir()
    nbformat.write(nbformat.read(solution, 4), folder / "alice_01-lazy-pipelines.ipynb")
    blank = course.released_notebook("01-mapreduce", "01-lazy-pipelines")
    nbformat.write(nbformat.read(blank, 4), folder / "bob_01-lazy-pipelines.ipynb")
    with Client(dask_scheduler) as client, get_task_stream(client) as stream:
        workers = set(client.scheduler_info()["workers"])
        rows = grade_batch(folder, tmp_path / "reports", cell_timeout=60, notebook_timeout=600,
                           scheduler=dask_scheduler)
    graded = {r.student: r for r in rows}
    full = {c.grade_id: c.points for c in course.grade_cells(solution) if c.kind == "tests"}
    assert {g: graded["alice"].points[g] for g in full} == full, graded["alice"].message
    assert {g: graded["bob"].points[g] for g in full} == dict.fromkeys(full, 0.0)
    assert (tmp_path / "reports" / "feedback" / "bob" / "01-lazy-pipelines.html").exists()
    ran = [t for t in stream.data if str(t["key"]).startswith("grade-")]
    assert len(ran) == 2 and {t["worker"] for t in ran} <= workers  # each graded by a worker of the cluster


def _toy_exercises(sources: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook of (kind, source) cells: 'answer' and 'tests' cells get nbgrader metadata."""
    notebook = nbformat.v4.new_notebook()
    for n, (kind, source) in enumerate(sources):
        cell = nbformat.v4.new_code_cell(source)
        if kind == "answer":
            cell.metadata["nbgrader"] = {"grade": False, "solution": True, "grade_id": f"c{n}"}
        elif kind == "tests":
            cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": f"c{n}", "points": 1}
        notebook.cells.append(cell)
    return notebook


def test_a_case_reruns_the_tests_that_can_see_its_answer_and_no_others():
    toy = _toy_exercises([
        ("answer", "def double(x):\n    return 2 * x"),
        ("tests", "_got = double(2)\nassert _got == 4"),
        ("answer", "def quadruple(x):\n    return double(double(x))"),  # uses the first answer
        ("tests", "assert quadruple(1) == 4"),
        ("answer", "def negate(p):\n    return -p"),
        ("tests", "p = 3\n_got = negate(p)\nassert _got == -3"),  # binds its own `p` and `_got` before reading
        ("code", "table = [double(v) for v in range(3)]"),  # a worked example built on the answer
        ("tests", "assert table == [0, 2, 4]"),
        ("code", "helper = negate"),
        ("tests", "assert helper(0) == 0"),
    ])
    assert cases.tests_to_rerun(toy, {0: "def double(x):\n    return 3 * x"}) == [1, 3, 7]
    # test cells below the last answer belong to its exercise, as cases.exercises() reads a notebook
    assert cases.tests_to_rerun(toy, {4: "def negate(p):\n    return p"}) == [5, 7, 9]
    assert cases.tests_to_rerun(toy, {2: "def quadruple(x):\n    return 4 * x"}) == [3]
    toy.cells[8].source = "%%time\nhelper = negate"  # a magic hides its names: every later test re-runs
    assert cases.tests_to_rerun(toy, {2: "def quadruple(x):\n    return 4 * x"}) == [3, 5, 7, 9]


def test_grading_needs_the_cells_that_feed_answers_tests_and_closing_cells_and_no_others():
    toy = _toy_exercises([
        ("code", "import math\nscratch = make_folder()"),  # 0: read by the answer and the closing cell
        ("code", "timings = [math.sqrt(v) for v in range(9)]"),  # 1: a demonstration
        ("answer", "def root(x):\n    return math.sqrt(x)"),  # 2
        ("code", "table = [root(v) for v in range(3)]"),  # 3: a worked example built on the answer
        ("tests", "_got = root(4)\nassert _got == 2"),  # 4
        ("code", "remove(scratch)"),  # 5: closing
    ])
    assert cases.cells_grading_needs(toy) == {0, 2, 4, 5}
    toy.cells[4].source = "assert root(4) == 2 and table[2] == root(2)"  # now the test reads the example
    assert cases.cells_grading_needs(toy) == {0, 2, 3, 4, 5}


@pytest.mark.slow
def test_a_shared_connect_server_keeps_submissions_apart(spark_remote, monkeypatch):
    """What one submission leaves on a shared Spark Connect server, the next one cannot see."""
    from pyspark.sql import SparkSession

    from scalelab.engines import CONNECT_MODE_VARIABLES

    for variable in CONNECT_MODE_VARIABLES:  # the sessions below set them; the later tests of this
        monkeypatch.setenv(variable, "")      # process must get them back as they were (setenv records
        monkeypatch.delenv(variable)          # that; delenv of an unset variable would not)

    from scalelab.grading.connect_lanes import ConnectLanes

    def session():
        return SparkSession.builder.remote(spark_remote).create()

    with ConnectLanes(addresses=[spark_remote]) as lanes:
        with lanes.lane() as lane:
            first, other = session(), session()
            first.range(3).createOrReplaceTempView("mine")
            first.range(3).createOrReplaceGlobalTempView("left_global")
            first.sql("CREATE DATABASE IF NOT EXISTS scratch")
            first.range(3).write.saveAsTable("scratch.left_table")
            first.range(3).write.mode("overwrite").saveAsTable("default.left_default")
            assert [t.name for t in other.catalog.listTables() if t.name == "mine"] == []  # private meanwhile
            first.stop(), other.stop()
        assert lane.address == spark_remote
        with lanes.lane() as lane:
            nxt = session()
            assert nxt.catalog.listTables("global_temp") == []
            assert [d.name for d in nxt.catalog.listDatabases()] == ["default"]
            assert nxt.catalog.listTables("default") == []
            nxt.stop()


def test_a_server_that_cannot_be_cleared_is_not_lent_again(monkeypatch):
    """A shared server that can't be cleared is never lent again as it is; the next submission is
    graded without one (and nothing waits forever for a lane)."""
    from scalelab.grading import connect_lanes

    def broken(address, timeout=120):
        raise RuntimeError(f"could not clear the Spark Connect server at {address}")

    monkeypatch.setattr(connect_lanes, "_clear_from_another_process", broken)
    with connect_lanes.ConnectLanes(addresses=["sc://127.0.0.1:1"]) as lanes:
        with lanes.lane() as lane:
            assert lane.address == "sc://127.0.0.1:1"
        with lanes.lane() as lane:
            assert lane.address is None
