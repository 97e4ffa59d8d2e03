"""Pages that read at a glance: one feedback page per student, and a class summary for the instructor.

A student's page lists each notebook and, per exercise, the points (got / possible) and, for a failed
test cell, the error it showed: ``Name: message`` only, as nbgrader's own feedback page shows it after
``ScrubTracebacks``, never the traceback, which quotes the hidden test's code. ``scalelab.checks`` makes
that message a sentence with a ``Hint:`` line, which the page shows apart.

Everything that comes from a submission (student ids, messages) is escaped. The pages are
self-contained (inline CSS, no script, no link outside the folder), so they open from a zip, offline,
on a phone.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import nbformat

from scalelab.grading.cells import is_test, nbgrader_meta
from scalelab.grading.flags import for_the_student

if TYPE_CHECKING:
    from scalelab.grading.batch import Row

MAX_MESSAGE = 2000  # characters of an error message kept for the page
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colour codes IPython may leave in an error's text
_NOISE = ("CheckFailed: ", "AssertionError: ")  # the check's sentence says enough without them

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #f5f5f7; }
main { max-width: 46rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; margin: .5rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; margin: 0; display: flex; flex-wrap: wrap; gap: .5rem; justify-content: space-between; }
section { background: #fff; border-radius: .6rem; padding: 1rem; margin-bottom: 1rem;
          box-shadow: 0 1px 3px rgba(0,0,0,.1); }
ul { list-style: none; padding: 0; margin: .75rem 0; }
li { border-top: 1px solid #e5e5ea; padding: .5rem 0; }
.row { display: flex; flex-wrap: wrap; gap: .25rem .75rem; justify-content: space-between; }
.name { font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
.pts { font-weight: 600; white-space: nowrap; }
.full .pts { color: #1a7f37; } .lost .pts { color: #c62828; } .pending .pts { color: #8a6d00; }
.msg { white-space: pre-wrap; overflow-wrap: anywhere; margin: .35rem 0 0; font-family: ui-monospace, monospace;
       font-size: .9rem; background: #fff4f4; padding: .4rem .6rem; border-radius: .3rem; }
.hint { margin: .35rem 0 0; padding: .4rem .6rem; background: #eef6ff; border-radius: .3rem; }
.muted { color: #6e6e73; font-size: .9rem; }
table { border-collapse: collapse; width: 100%; font-size: .95rem; }
th, td { text-align: left; padding: .3rem .4rem; border-top: 1px solid #e5e5ea; vertical-align: top; }
td.num { text-align: right; white-space: nowrap; }
.bar { background: #4f7bd9; height: .9rem; border-radius: .2rem; min-width: 2px; }
.scroll { overflow-x: auto; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _pts(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def _page(title: str, body: str) -> str:
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n"
            f"<body><main>\n<h1>{_e(title)}</h1>\n{body}\n</main></body></html>\n")


# --- what a graded notebook says about each test cell ------------------------------------------------


def failure_messages(notebook: Path) -> dict[str, str]:
    """grade_id -> ``Name: message`` of each test cell that raised, read from the autograded notebook."""
    messages: dict[str, str] = {}
    if not notebook.exists():  # nbgrader wrote no autograded copy: points without messages
        return messages
    for cell in nbformat.read(notebook, 4).cells:
        if not is_test(cell):
            continue
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                text = _ANSI.sub("", f"{output.ename}: {output.evalue}".strip().rstrip(":"))
                messages[nbgrader_meta(cell).get("grade_id", "")] = text[:MAX_MESSAGE]
    return messages


def split_hint(message: str) -> tuple[str, str]:
    """(the message, its hint): scalelab.checks ends a failure with a ``Hint:`` line."""
    for noise in _NOISE:
        message = message.removeprefix(noise)
    if message in ("CheckFailed", "AssertionError"):
        message = "a check failed without a message (see your notebook's page for its output)"
    text, _, hint = message.partition("\nHint:")
    return text.strip(), hint.strip()


# --- a student's page --------------------------------------------------------------------------------


def _exercise(grade_id: str, got: float | None, possible: float | None, message: str) -> str:
    if got is None:
        state, mark, detail = "pending", "…", "<p class='muted'>written answer: still to be marked</p>"
    else:
        state, mark, detail = ("full", "✓", "") if possible is None or got >= possible else ("lost", "✗", "")
    if message and state != "full":
        text, hint = split_hint(message)
        detail += f"<p class='msg'>{_e(text)}</p>" + (f"<p class='hint'>Hint: {_e(hint)}</p>" if hint else "")
    points = f"{_pts(got)} / {_pts(possible)}" if possible is not None else _pts(got)
    return (f"<li class='{state}'><div class='row'><span class='name'>{mark} {_e(grade_id)}</span>"
            f"<span class='pts'>{points} points</span></div>{detail}</li>")


def _notebook_section(row: Row, folder: Path) -> str:
    name = row.notebook or "(unrecognised file)"
    page = folder / f"{row.notebook}.html"
    link = (f"<p><a href='{_e(quote(page.name))}'>Your notebook as graded, with every check's output</a></p>"
            if row.notebook and page.exists() else "")
    if row.status != "graded":
        return (f"<section><h2><span class='name'>{_e(name)}</span><span class='pts'>not graded</span></h2>"
                f"<p class='msg'>{_e(row.message)}</p>{link}</section>")
    note = "<p class='muted'>Written answers are still to be marked.</p>" if row.needs_manual_grading else ""
    note += "".join(f"<p class='msg'>The grader notes: {_e(flag)}</p>" for flag in for_the_student(row.flags))
    exercises = "".join(_exercise(g, got, row.max_points.get(g), row.messages.get(g, ""))
                        for g, got in row.points.items())
    return (f"<section><h2><span class='name'>{_e(name)}</span>"
            f"<span class='pts'>{_pts(row.score)} / {_pts(row.max_score)} points</span></h2>"
            f"{note}<ul>{exercises}</ul>{link}</section>")


def write_feedback_index(rows: Iterable[Row], folder: Path) -> None:
    """feedback/<student>/index.html: each notebook's score, its exercises' points and messages, links."""
    by_student: dict[str, list[Row]] = {}
    for row in rows:
        by_student.setdefault(row.student, []).append(row)
    for student, own in by_student.items():
        target = folder / student
        target.mkdir(parents=True, exist_ok=True)
        body = "".join(_notebook_section(r, target) for r in own)
        (target / "index.html").write_text(_page(f"Feedback for {student}", body), encoding="utf-8")


# --- the class summary -------------------------------------------------------------------------------


@dataclass
class Exercise:
    """One grade cell across the class: the points of every graded submission."""

    assignment: str
    notebook: str
    grade_id: str
    possible: float | None
    points: list[float]  # marked ones only
    pending: int = 0  # written answers still to be marked

    @property
    def lost(self) -> int:
        return sum(p < self.possible for p in self.points) if self.possible is not None else 0

    @property
    def mean(self) -> float:
        return sum(self.points) / len(self.points) if self.points else 0.0


def exercises(rows: Iterable[Row]) -> list[Exercise]:
    """Every grade cell of the graded rows, in the order the rows list them."""
    found: dict[tuple[str, str, str], Exercise] = {}
    for row in rows:
        if row.status != "graded":
            continue
        for grade_id, got in row.points.items():
            key = (row.assignment, row.notebook, grade_id)
            exercise = found.setdefault(key, Exercise(*key, row.max_points.get(grade_id), []))
            if got is None:
                exercise.pending += 1
            else:
                exercise.points.append(got)
    return list(found.values())


def most_lost(found: list[Exercise]) -> list[Exercise]:
    """The exercises students lost points on, the one most students lost first (then the lower mean)."""
    lost = [e for e in found if e.lost]
    return sorted(lost, key=lambda e: (-e.lost, e.mean / (e.possible or 1), e.grade_id))


def _distribution(exercise: Exercise) -> str:
    counts: dict[float, int] = {}
    for p in exercise.points:
        counts[p] = counts.get(p, 0) + 1
    total = max(len(exercise.points), 1)
    bars = "".join(
        f"<tr><td class='num'>{_pts(p)} / {_pts(exercise.possible)}</td>"
        f"<td style='width:70%'><div class='bar' style='width:{100 * n / total:.1f}%'></div></td>"
        f"<td class='num'>{n}</td></tr>" for p, n in sorted(counts.items()))
    pending = f"<p class='muted'>{exercise.pending} still to be marked</p>" if exercise.pending else ""
    return (f"<h3 class='name'>{_e(exercise.grade_id)}</h3><table><tr><th>points</th><th></th>"
            f"<th>students</th></tr>{bars}</table>{pending}")


def write_summary(rows: list[Row], path: Path) -> None:
    """The instructor's page: the exercises most students lost points on, and each one's distribution."""
    found = exercises(rows)
    graded = [r for r in rows if r.status == "graded"]
    errors = [r for r in rows if r.status != "graded"]
    ranked = "".join(
        f"<tr><td class='num'>{i}</td><td class='name'>{_e(e.notebook)} · {_e(e.grade_id)}</td>"
        f"<td class='num'>{e.lost} of {len(e.points)}</td>"
        f"<td class='num'>{e.mean:.2g} / {_pts(e.possible)}</td></tr>"
        for i, e in enumerate(most_lost(found), start=1))
    parts = [f"<p class='muted'>{len({r.student for r in rows})} students, {len(graded)} notebooks graded, "
             f"{len(errors)} could not be graded (see grades.csv).</p>",
             "<section><h2>Exercises most students lost points on</h2><div class='scroll'><table>"
             "<tr><th>#</th><th>exercise</th><th>lost points</th><th>mean</th></tr>"
             f"{ranked or '<tr><td></td><td>no exercise lost points</td></tr>'}</table></div></section>"]
    by_notebook: dict[tuple[str, str], list[Exercise]] = {}
    for e in found:
        by_notebook.setdefault((e.assignment, e.notebook), []).append(e)
    for (assignment, notebook), own in by_notebook.items():
        parts.append(f"<section><h2>{_e(assignment)} / {_e(notebook)}</h2>"
                     + "".join(_distribution(e) for e in own) + "</section>")
    if errors:
        listed = "".join(f"<tr><td class='name'>{_e(r.student)}</td><td class='name'>{_e(r.notebook)}</td>"
                         f"<td>{_e(r.message)}</td></tr>" for r in errors)
        parts.append("<section><h2>Not graded</h2><div class='scroll'><table>"
                     f"<tr><th>student</th><th>notebook</th><th>why</th></tr>{listed}</table></div></section>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_page("Class summary", "\n".join(parts)), encoding="utf-8")
