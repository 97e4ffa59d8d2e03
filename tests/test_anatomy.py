"""Every lab has the same anatomy (docs/architecture.md, "Anatomy of a lab"), so a student always knows
where the set-up, the scaling story, the written questions and the closing cell are.

    # NN · Title
    ## 1. Set-up
    ## 2. ... exercises ...
    ## k. Scale it up[: subtitle]              (every lab but 00-setup)
    ## k+1. A question to answer in words       (or "Questions to answer in words"; optional)
    ## n. Closing                               (the last section: the last code cell stops the engines)

Only headings of level 1 and 2 outside code fences count; sections are numbered 1, 2, 3, ...

A lab that writes files keeps them in one scratch folder, made by the set-up cell and removed by the
closing cell (docs/architecture.md, "Scratch folder"):

    scratch = Path(tempfile.mkdtemp(prefix="scalelab-NN-name-"))   # or program_folder(prefix=...) in MPI labs
    ...
    Path(tempfile.mkdtemp(dir=scratch))                              # any other temporary folder, inside it
    ...
    shutil.rmtree(scratch, ignore_errors=True)                       # in the last code cell
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from scalelab.grading.cells import is_answer, is_demonstration, nbgrader_meta
from scalelab.paths import repo_root

SOLUTIONS = sorted((repo_root() / "solutions").rglob("*.ipynb"))
NO_SCALE_SECTION = {"00-setup"}  # the orientation lab: it checks the machine, it doesn't scale anything
QUESTIONS = ("A question to answer in words", "Questions to answer in words")
SECTION = re.compile(r"^## (\d+)\. (.+)$")


@dataclass
class Section:
    number: int
    title: str
    autograded_answers: int = 0  # code answer cells (exercises graded by tests)
    written_answers: int = 0  # markdown answer cells (questions marked by hand)
    code_cells: int = 0


@dataclass
class Outline:
    title: str
    sections: list[Section] = field(default_factory=list)


def _headings(markdown: str) -> list[str]:
    lines, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"^#{1,2} ", line):
            lines.append(line)
    return lines


def outline(notebook) -> Outline:
    first = notebook.cells[0]
    result = Outline(_headings(first.source)[0] if first.cell_type == "markdown" and _headings(first.source) else "")
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in _headings(cell.source):
                if match := SECTION.match(line):
                    result.sections.append(Section(int(match[1]), match[2].strip()))
        if not result.sections:
            continue
        section = result.sections[-1]
        if cell.cell_type == "code":
            section.code_cells += 1
        meta = nbgrader_meta(cell)
        if cell.cell_type == "markdown" and meta.get("solution") and meta.get("grade"):
            section.written_answers += 1
        elif is_answer(cell):
            section.autograded_answers += 1
    return result


def problems(notebook, stem: str) -> list[str]:
    found: list[str] = []
    shape = outline(notebook)
    if not re.match(rf"^# {re.escape(stem[:2])} · \S", shape.title):
        found.append(f"the first cell's title should start with '# {stem[:2]} · ', not {shape.title!r}")
    sections = shape.sections
    if [s.number for s in sections] != list(range(1, len(sections) + 1)):
        found.append(f"sections are not numbered 1, 2, 3, ...: {[s.number for s in sections]}")
    if not sections or sections[0].title != "Set-up":
        found.append("the first section is not '1. Set-up'")
    titles = [s.title for s in sections]
    scale = [i for i, t in enumerate(titles) if t == "Scale it up" or t.startswith("Scale it up:")]
    if stem not in NO_SCALE_SECTION and len(scale) != 1:
        found.append(f"one 'Scale it up' section expected, found {len(scale)}")
    if scale:
        late = [s.title for s in sections[scale[0]:] if s.autograded_answers]
        if late:
            found.append(f"exercises after 'Scale it up': {late}")
    for i, s in enumerate(sections):
        asks = s.title in QUESTIONS or s.title.startswith("Question") or s.written_answers
        if asks and scale and i < scale[0]:
            found.append(f"'{s.title}' comes before 'Scale it up'")
        if s.written_answers and s.title not in QUESTIONS:
            found.append(f"a question marked by hand in '{s.title}', not in a section titled one of {QUESTIONS}")
        if s.title.startswith("Question") and s.title not in QUESTIONS:
            found.append(f"'{s.title}' should be titled one of {QUESTIONS}")
    if not sections or sections[-1].title != "Closing":
        found.append(f"the last section should be 'Closing', not {titles[-1:]}")
    elif any(s.title == "Closing" for s in sections[:-1]):
        found.append("'Closing' appears before the last section")
    return found


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_lab_follows_the_course_anatomy(path: Path):
    assert problems(nbformat.read(path, 4), path.stem) == []


MAKES_A_FOLDER = re.compile(r"\bmkdtemp\(|\bprogram_folder\(|\bTemporaryDirectory\(")


def scratch_problems(notebook, stem: str) -> list[str]:
    """What keeps a notebook that makes temporary folders from the one scratch-folder convention."""
    codes = [cell for cell in notebook.cells if cell.cell_type == "code"]
    if not any(MAKES_A_FOLDER.search(cell.source) for cell in codes):
        return []
    found = []
    made = re.compile(rf'^scratch = (Path\(tempfile\.mkdtemp\(prefix="scalelab-{re.escape(stem)}-"\)\)'
                      rf'|program_folder\(prefix="scalelab-{re.escape(stem)}-"\))', re.M)
    if not made.search(codes[0].source):
        found.append("the set-up cell should make the folder: "
                     f'scratch = Path(tempfile.mkdtemp(prefix="scalelab-{stem}-"))')
    for n, cell in enumerate(codes):
        for call in re.findall(r"\bmkdtemp\([^)]*\)", cell.source):
            if n and call != "mkdtemp(dir=scratch)":
                found.append(f"cell {cell.get('id', n)}: {call} outside the scratch folder; "
                             "use tempfile.mkdtemp(dir=scratch)")
    if "shutil.rmtree(scratch, ignore_errors=True)" not in codes[-1].source:
        found.append("the last code cell should remove the folder: shutil.rmtree(scratch, ignore_errors=True)")
    return found


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_a_lab_keeps_its_files_in_one_scratch_folder_removed_at_the_end(path: Path):
    found = scratch_problems(nbformat.read(path, 4), path.stem)
    assert found == []


def shrunk_cells(notebook) -> list[str]:
    """Cells that size their data with demo_size (the test suite's smaller worked examples) but are not
    tagged demonstrations: an exercise or a test must run at the size its checks were written for."""
    return [cell.get("id", str(n)) for n, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and "demo_size(" in cell.source and not is_demonstration(cell)]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_only_demonstrations_run_smaller_under_test(path: Path):
    assert shrunk_cells(nbformat.read(path, 4)) == []


def test_the_demo_size_check_names_an_untagged_cell():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("make_curve(demo_size(4000))", id="demo", metadata={"tags": ["skip-when-grading"]}),
        nbformat.v4.new_code_cell("make_curve(demo_size(4000))", id="exercise")])
    assert shrunk_cells(notebook) == ["exercise"]


def test_the_scratch_check_names_each_kind_of_drift():
    code = nbformat.v4.new_code_cell
    good = [code('scratch = Path(tempfile.mkdtemp(prefix="scalelab-42-lab-"))'),
            code("_tmp = Path(tempfile.mkdtemp(dir=scratch))"), code("shutil.rmtree(scratch, ignore_errors=True)")]
    assert scratch_problems(_toy(*good), "42-lab") == []
    assert scratch_problems(_toy(code("x = 1"), code("stop_spark()")), "42-lab") == []  # no folder at all
    mpi = [code('scratch = program_folder(prefix="scalelab-42-lab-")'),
           code("shutil.rmtree(scratch, ignore_errors=True)")]
    assert scratch_problems(_toy(*mpi), "42-lab") == []
    drifted = [code("x = 1"), code('workdir = Path(tempfile.mkdtemp(prefix="lab-"))'),
               code('_t = tempfile.mkdtemp(prefix="t-")'), code("shutil.rmtree(workdir)")]
    found = "\n".join(scratch_problems(_toy(*drifted), "42-lab"))
    for expected in ("the set-up cell should make", 'mkdtemp(prefix="t-") outside',
                     "the last code cell should remove"):
        assert expected in found, f"{expected!r} not reported in:\n{found}"


def _toy(*cells) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = list(cells)
    return notebook


def _answer(grade_id: str, written: bool = False):
    meta = {"nbgrader": {"grade_id": grade_id, "solution": True, "grade": written, "locked": False,
                         "schema_version": 3, "points": 1 if written else 0}}
    if written:
        return nbformat.v4.new_markdown_cell("YOUR ANSWER HERE", metadata=meta)
    return nbformat.v4.new_code_cell("x = 1", metadata=meta)


def test_the_anatomy_check_names_each_kind_of_drift():
    md = nbformat.v4.new_markdown_cell
    good = [md("# 42 · A lab"), md("## 1. Set-up"), _answer("ex"), md("## 2. Scale it up: clusters"),
            md("## 3. A question to answer in words"), _answer("q", written=True), md("## 4. Closing"),
            nbformat.v4.new_code_cell("stop_spark()")]
    assert problems(_toy(*good), "42-lab") == []
    drifted = [md("# A lab"), md("## 1. Setup"), md("## 3. Questions"), _answer("q", written=True),
               md("## 4. Scale it up"), _answer("ex"), md("## 5. Wrapping up")]
    found = "\n".join(problems(_toy(*drifted), "42-lab"))
    for expected in ("title should start", "not numbered", "not '1. Set-up'", "exercises after 'Scale it up'",
                     "comes before 'Scale it up'", "should be titled", "should be 'Closing'"):
        assert expected in found, f"{expected!r} not reported in:\n{found}"
    fenced = [md("# 42 · A lab"), md("## 1. Set-up\n```\n## 7. not a heading\n```"), md("## 2. Scale it up"),
              md("## 3. Closing")]
    assert problems(_toy(*fenced), "42-lab") == []
    assert "one 'Scale it up' section" in "\n".join(problems(_toy(*good[:3], good[-2]), "42-lab"))
