"""The feedback and summary pages (scalelab.grading.pages), from rows built here: no notebook is graded."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from scalelab.grading.batch import Row
from scalelab.grading.pages import exercises, failure_messages, most_lost, write_feedback_index, write_summary

HIDDEN = "_rng = _random.Random(20261129)"


def _row(student: str, words: float, total: float, message: str = "") -> Row:
    return Row(student, "99-traps", "99-traps", "graded", score=words + total, max_score=4,
               points={"traps-words-tests": words, "traps-total-tests": total, "traps-reflection": None},
               max_points={"traps-words-tests": 1, "traps-total-tests": 2, "traps-reflection": 1},
               messages={"traps-words-tests": message} if message else {})


def _page(tmp_path: Path, rows: list[Row], student: str) -> str:
    write_feedback_index(rows, tmp_path)
    return (tmp_path / student / "index.html").read_text(encoding="utf-8")


def test_a_page_shows_points_message_and_hint_per_exercise(tmp_path):
    message = "CheckFailed: words per line: expected [2, 0, 3], got [2, 1, 4]\nHint: split() with no argument"
    page = _page(tmp_path, [_row("carol", 0, 2, message)], "carol")
    assert "name='viewport'" in page and "<style>" in page
    assert "0 / 1 points" in page and "2 / 2 points" in page and "2 / 4 points" in page
    assert "words per line: expected [2, 0, 3], got [2, 1, 4]" in page
    assert "<p class='hint'>Hint: split() with no argument</p>" in page
    assert "still to be marked" in page  # the written answer
    assert "://" not in page and "<script" not in page  # nothing fetched from elsewhere


def test_a_page_names_the_flags_that_explain_lost_points_and_only_those(tmp_path):
    import dataclasses

    not_run = "cells not run, they could change how grading runs: traps-words (line 1: reaches IPython's machinery)"
    flags = f"locked or test cells edited: traps-words-tests; {not_run}; time limit hit: traps-total"
    page = _page(tmp_path, [dataclasses.replace(_row("zed", 0, 0), flags=flags)], "zed")
    assert "The grader notes: cells not run, they could change how grading runs: traps-words" in page
    assert "The grader notes: time limit hit: traps-total" in page
    assert "edited" not in page  # for the instructor to look at first


def test_a_page_escapes_what_a_submission_wrote(tmp_path):
    evil = "AssertionError: <script>alert('x')</script> & <img src=x onerror=alert(1)>"
    rows = [_row("eve<b>", 0, 0, evil),
            Row("eve<b>", "00-setup", "00-setup", "error", message="not a notebook: <i>")]
    page = _page(tmp_path, rows, "eve<b>")
    assert "<script>" not in page and "<img" not in page and "<i>" not in page and "eve<b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;img" in page
    assert "Feedback for eve&lt;b&gt;" in page and "not a notebook: &lt;i&gt;" in page


def test_messages_come_from_the_error_not_the_hidden_test_source(tmp_path):
    source = f"assert total_words([]) == 0\n### BEGIN HIDDEN TESTS\n{HIDDEN}\nassert total_words(_x) == 7\n"
    cell = new_code_cell(source, metadata={"nbgrader": {"grade": True, "solution": False,
                                                        "grade_id": "traps-total-tests", "points": 2}})
    cell.outputs = [new_output("error", ename="CheckFailed", evalue="total words: expected 7, got 6\nHint: count all",
                               traceback=["\x1b[0;31m---------\x1b[0m", f"----> 3 {HIDDEN}", "CheckFailed: ..."])]
    notebook = tmp_path / "99-traps.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1"), cell]), notebook)
    messages = failure_messages(notebook)
    assert messages == {"traps-total-tests": "CheckFailed: total words: expected 7, got 6\nHint: count all"}
    row = _row("bob", 1, 0)
    row.messages = messages
    page = _page(tmp_path / "feedback", [row], "bob")
    assert "total words: expected 7, got 6" in page and "Hint: count all" in page
    for secret in (HIDDEN, "_rng", "BEGIN HIDDEN TESTS", "total_words(_x)"):
        assert secret not in page


def test_the_summary_ranks_the_exercise_most_students_lost_first(tmp_path):
    rows = [_row("amy", 0, 2), _row("ben", 0, 2), _row("cat", 1, 0), _row("dan", 0, 2),
            Row("eve", "99-traps", "99-traps", "error", message="the kernel died")]
    ranked = most_lost(exercises(rows))
    assert [(e.grade_id, e.lost) for e in ranked] == [("traps-words-tests", 3), ("traps-total-tests", 1)]
    write_summary(rows, tmp_path / "summary.html")
    page = (tmp_path / "summary.html").read_text(encoding="utf-8")
    top = page.index("most students lost points on")
    assert top < page.index("traps-words-tests", top) < page.index("traps-total-tests", top)
    assert "3 of 4" in page and "1 of 4" in page and "the kernel died" in page
    assert "4 still to be marked" in page and "class='bar'" in page and "name='viewport'" in page
