"""Two nbgrader preprocessors that guard the grader's own cells (autograder/nbgrader_config.py):

* ``SkipRiskyCells`` (autograde, before the kernel starts): a cell the student wrote that could change
  how the grader's cells run (scan.py) runs as a note saying why, so the verdict of every test cell comes
  from a run in which no such code ran. Decided in the grading process, from the text handed in.
* ``RedactHiddenTests`` (feedback): a line of a hidden test that shows up in a test cell's output (a
  warning quotes its caller's line; an error message can carry it) is replaced before the page is made.
"""

from __future__ import annotations

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor as Preprocessor

from scalelab.grading import course, scan
from scalelab.grading.cells import is_test

HIDDEN_BEGIN, HIDDEN_END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"  # nbgrader's default delimiters
REDACTED = "[a line of a hidden test, removed by the grader]"
MIN_REDACTED_CHARS = 12  # shorter lines (")", "else:") say nothing about a test


def source_notebook(resources) -> nbformat.NotebookNode | None:
    """The course's source notebook of the notebook being graded, when the course has it."""
    info = resources.get("nbgrader", {})
    if not (info.get("assignment") and info.get("notebook")):
        return None
    path = course.source_notebook(info["assignment"], info["notebook"])
    return nbformat.read(path, as_version=4) if path.is_file() else None


class SkipRiskyCells(Preprocessor):
    """Before execution: cells that could change how grading runs become a note saying why."""

    def preprocess(self, nb, resources):
        for index, findings in scan.risky_cells(nb, source_notebook(resources)).items():
            nb.cells[index].source = scan.not_run_note(findings)
            nb.cells[index].outputs = []
        return nb, resources


def hidden_lines(source: str) -> set[str]:
    lines, hidden = set(), False
    for line in source.splitlines():
        if HIDDEN_BEGIN in line or HIDDEN_END in line:
            hidden = HIDDEN_BEGIN in line
        elif hidden and len(line.strip()) >= MIN_REDACTED_CHARS:
            lines.add(line.strip())
    return lines


def _redact(text: str, secret: set[str]) -> str:
    return "\n".join(REDACTED if any(s in line for s in secret) else line for line in text.split("\n"))


class RedactHiddenTests(Preprocessor):
    """In feedback, no output of a test cell quotes a line of its hidden tests (run before nbgrader's
    ClearHiddenTests, which removes them from the cell's source)."""

    def preprocess_cell(self, cell, resources, index):
        secret = hidden_lines(cell.source) if is_test(cell) else set()
        for output in cell.get("outputs", []) if secret else []:
            if "text" in output:
                output.text = _redact(output.text, secret)
            if output.output_type == "error":
                output.evalue = _redact(output.evalue, secret)
                output.traceback = [_redact(line, secret) for line in output.traceback]
            for mime, value in output.get("data", {}).items():
                if isinstance(value, str) and mime.startswith("text/"):
                    output.data[mime] = _redact(value, secret)
        return cell, resources
