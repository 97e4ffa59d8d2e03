"""The grader's reading of a submission before it runs (src/scalelab/grading/scan.py, guards.py): code
that could change how the grader's cells run is found and not run, so forging a verdict costs the forger
the points of the answer, and a hidden test never reaches a feedback page.

The fast tests read cells; the batch test grades forgers next to an honest student with the same wrong
answer, and each gets exactly that student's points.
"""

from __future__ import annotations

import copy
import tomllib

import nbformat
import pytest
from test_grading import FULL, _answered, _auto, _trap_course

from scalelab.grading import guards, scan
from scalelab.grading.batch import grade_batch
from scalelab.paths import repo_root

REPO = repo_root()
SOLUTIONS = sorted((REPO / "solutions").glob("*/*.ipynb"))

# Each is the text of one answer cell and a word of the reason the scan must give.
FORGERIES = {
    "input transformer": ("get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])",
                          "get_ipython"),
    "transformer, another spelling": ("ip = get_ipython\nip().ast_transformers.append(object())", "get_ipython"),
    "event hook": ("from IPython import get_ipython as g\ng().events.register('pre_run_cell', print)", "IPython"),
    "obfuscated": ("exec(__import__('base64').b64decode('cHJpbnQoMSk='))", "exec"),
    "computed attribute": ("import sys\ngetattr(sys, 'set' + 'trace')(None)", "names an attribute at run time"),
    "tracing": ("import sys\nsys.settrace(lambda *a: None)", ".settrace"),
    "frames": ("def f():\n    import sys\n    return sys._getframe(1).f_globals", "_getframe"),
    "patched checks": ("import scalelab.checks as c\nc._fail = lambda *a: None", "changes the module scalelab.checks"),
    "patched module by setattr": ("import math\nsetattr(math, 'isclose', lambda *a, **k: True)",
                                  "changes the module math"),
    "rebound check": ("check_equal = lambda *a, **k: None", "replaces check_equal"),
    "rebound check, global": ("def setup():\n    global check_equal\n    check_equal = print", "replaces check_equal"),
    "rebound check, other import": ("from builtins import print as check_equal", "replaces check_equal"),
    "written module": ("open('helper.py', 'w').write('x = 1')\nimport helper", "no installed package provides"),
    "pickled code": ("import pickle\npickle.loads(b'')", "unpickling"),
    "numpy pickle": ("import numpy as np\nnp.load('x.npy', allow_pickle=True)", "allow_pickle"),
    "lying list": ("class Liar(list):\n    def __eq__(self, other):\n        return True", "__eq__"),
    "lying by type()": ("Liar = type('Liar', (list,), {'__eq__': lambda s, o: True})", "__eq__"),
    "lying float": ("class F(float):\n    __float__ = lambda self: 2.0", "__float__"),
    "shell": ("!python -c 'print(1)'", "shell command"),
    "other program": ("import subprocess\nsubprocess.run(['python', '-c', 'print(1)'])", "subprocess"),
    "os.system": ("import os\nos.system('true')", ".system"),
    "unknown magic": ("%run helper.py", "%run"),
    "magic body": ("%%time\nget_ipython().set_custom_exc((AssertionError,), print)", "%time"),
    "captured body": ("%%capture\nimport gc", "in %capture"),
    "ctypes in an MPI script": ("%%writefile rank.py\nimport ctypes\n", "memory"),
    "builtins": ("import builtins\nbuiltins.print = None", "built-in"),
    "module disguise": ("class X:\n    __module__ = 'builtins'", "disguises"),
}
HONEST = [
    "def words_per_line(lines):\n    return [len(line.split()) for line in lines]",
    "import numpy as np\nfrom collections import Counter\ncounts = Counter(np.arange(3).tolist())",
    "from scalelab.checks import check_equal  # the same import as the given cell's",
    "%%writefile job.py\nimport sys\nprint(getattr(sys, sys.argv[1]))",  # runs in another process
    "%%timeit\nsum(range(10))",
    "%whos\n%pwd\n%matplotlib inline",
    "%%capture output\nprint('quiet')",
    "%%html\n<b>exec(get_ipython())</b>",  # not Python, not run as Python
    "import os, re, signal\nos.fork  # its child runs this notebook's code, which is read here",
    "from dataclasses import dataclass\n@dataclass\nclass Point:\n    x: float\n    y: float",
    "words = 'a b'.split()\nfor i, w in enumerate(words):\n    print(i, w)",
    "counts = {'system': 1, 'modules': 2, 'popen': 3}  # words, not attributes",
]


def _given() -> nbformat.NotebookNode:
    """A course notebook: a given cell binds check_equal, a test cell uses it."""
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from scalelab.checks import check_equal\nimport math"),
        nbformat.v4.new_code_cell("", metadata={"nbgrader": {"grade_id": "a", "solution": True, "grade": False}}),
        nbformat.v4.new_code_cell("check_equal(math.pi > 3, True, 'pi')",
                                  metadata={"nbgrader": {"grade_id": "a-tests", "grade": True, "solution": False,
                                                         "locked": True, "points": 1}}),
    ])


def _with_answer(text: str) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    source = _given()
    submitted = copy.deepcopy(source)
    submitted.cells[1].source = text
    return submitted, source


@pytest.mark.parametrize("name", FORGERIES)
def test_code_that_could_forge_a_verdict_is_found(name):
    text, reason = FORGERIES[name]
    found = scan.risky_cells(*_with_answer(text))
    assert list(found) == [1] and any(reason in finding for finding in found[1]), found


@pytest.mark.parametrize("text", HONEST)
def test_ordinary_answers_run(text):
    assert scan.risky_cells(*_with_answer(text)) == {}


def test_given_cells_as_given_run_and_changed_or_added_cells_are_read():
    source = _given()
    source.cells[0].source += "\nimport subprocess  # a given cell may do what an answer may not"
    submitted = copy.deepcopy(source)
    assert scan.risky_cells(submitted, source) == {}
    submitted.cells[0].source += "\nimport ctypes"
    submitted.cells.append(nbformat.v4.new_code_cell("import gc"))
    assert sorted(scan.risky_cells(submitted, source)) == [0, 3]
    submitted.cells[2].source = "import ctypes"  # a test cell: nbgrader puts the source's back, not read
    assert 2 not in scan.risky_cells(submitted, source)


def test_no_solution_lab_or_grading_case_of_the_course_is_held_back():
    """Every answer the course ships or grades (solutions, blank labs, every grading case) runs."""
    held_back = []
    for path in SOLUTIONS:
        source = nbformat.read(path, 4)
        lab = nbformat.read(REPO / "labs" / path.relative_to(REPO / "solutions"), 4)
        notebooks = {"solution": source, "lab": lab}
        cases = REPO / "autograder" / "cases" / path.parent.name / f"{path.stem}.toml"
        for case in tomllib.loads(cases.read_text())["case"] if cases.exists() else []:
            answered = copy.deepcopy(source)
            for cell in answered.cells:
                cell.source = case["answers"].get(cell.metadata.get("nbgrader", {}).get("grade_id"), cell.source)
            notebooks[f"case {case['name']!r}"] = answered
        for what, notebook in notebooks.items():
            if found := scan.risky_cells(notebook, source):
                held_back.append((path.name, what, found))
    assert held_back == []


def test_feedback_never_quotes_a_hidden_test_line():
    cell = nbformat.v4.new_code_cell(
        "assert f(1) == 1\n### BEGIN HIDDEN TESTS\nassert f(_secret_input) == 42\n### END HIDDEN TESTS",
        metadata={"nbgrader": {"grade_id": "t", "grade": True, "solution": False}})
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=(
        "<ipython>:3: UserWarning: slow\n  assert f(_secret_input) == 42\nok: assert f(1) == 1\n")),
        nbformat.v4.new_output("error", ename="AssertionError", evalue="in assert f(_secret_input) == 42",
                               traceback=["assert f(_secret_input) == 42"])]
    cell, _ = guards.RedactHiddenTests().preprocess_cell(cell, {}, 0)
    text = cell.outputs[0].text + cell.outputs[1].evalue + "".join(cell.outputs[1].traceback)
    assert "_secret_input" not in text and guards.REDACTED in text and "ok: assert f(1) == 1" in text


def test_a_student_can_see_before_handing_in_which_cells_would_not_run(tmp_path, capsys):
    from scalelab.__main__ import main

    lab = REPO / "labs" / "00-setup" / "00-setup.ipynb"
    assert main(["scan", str(lab)]) == 0 and "the grader will run every cell" in capsys.readouterr().out
    notebook = nbformat.read(lab, 4)
    answer = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code")
    answer.source = "import scalelab.checks as c\nc._fail = print\n" + answer.source
    handed_in = tmp_path / "jdoe_00-setup.ipynb"  # a learning platform's name for it
    nbformat.write(notebook, handed_in)
    assert main(["scan", str(handed_in), str(tmp_path / "renamed.ipynb")]) == 1
    out = capsys.readouterr().out
    assert f"{handed_in}: the grader will not run setup-words (line 2: changes the module scalelab.checks" in out
    assert "renamed.ipynb: no such file" in out


SINGLE_SPACE = "def words_per_line(lines):\n    return [len(line.split(' ')) for line in lines]\n"
WARNS_AT_THE_CALLER = ("import warnings\n\ndef words_per_line(lines):\n"
                       "    warnings.warn('called', stacklevel=2)  # quotes the line that called it\n"
                       "    return [len(line.split()) for line in lines]\n")
# Forgers hand in the wrong answer above and, in the same cell, one trick each that made every test cell
# pass before the scan (tried with SkipRiskyCells off: autograder/README.md, "Verdicts").
FORGER = ("get_ipython().input_transformers_cleanup.append("
          "lambda lines: [l for l in lines if 'test-cell-done' in l] or lines)")
BATCH_FORGERS = {
    "tina": FORGER + "\n",
    "uma": f"import base64\nexec(base64.b64decode({__import__('base64').b64encode(FORGER.encode()).decode()!r}))\n",
    "vic": f"open('forger.py', 'w').write({FORGER!r})\nimport forger\n",
}
LIAR = ("class _Words(list):\n    def __eq__(self, other):\n        return True\n\n"
        "def words_per_line(lines):\n    return _Words()\n")


@pytest.mark.slow
def test_forgers_score_as_if_the_cell_with_their_trick_were_missing_and_are_flagged(tmp_path, monkeypatch):
    root = tmp_path / "course"
    monkeypatch.setenv("SCALELAB_ROOT", str(root))
    solution, lab = _trap_course(root)
    folder = tmp_path / "submissions"
    folder.mkdir()
    nbformat.write(_answered(solution, lab, {"traps-words": SINGLE_SPACE}), folder / "carol_99-traps.ipynb")
    for student, trick in BATCH_FORGERS.items():
        nbformat.write(_answered(solution, lab, {"traps-words": trick + SINGLE_SPACE}),
                       folder / f"{student}_99-traps.ipynb")
    nbformat.write(_answered(solution, lab, {"traps-words": LIAR}), folder / "liam_99-traps.ipynb")
    nbformat.write(_answered(solution, lab, {"traps-words": WARNS_AT_THE_CALLER}), folder / "wendy_99-traps.ipynb")

    rows = {r.student: r for r in grade_batch(folder, tmp_path / "reports", workers=2, cell_timeout=30,
                                               notebook_timeout=120)}

    wrong = {**FULL, "traps-words-tests": 0.0, "traps-total-tests": 0.0}  # total_words uses words_per_line
    why = {student: (row.flags, row.message) for student, row in rows.items()}
    assert _auto(rows["carol"]) == {**FULL, "traps-words-tests": 0.0} and rows["carol"].flags == "", why
    for student in [*BATCH_FORGERS, "liam"]:  # the cell with the trick (and the answer) did not run
        assert _auto(rows[student]) == wrong, (student, why[student])
        assert rows[student].flags.startswith("cells not run, they could change how grading runs: traps-words ("), why
    page = (tmp_path / "reports" / "feedback" / "tina" / "99-traps.html").read_text()
    assert "Not run by the grader" in page and "machinery (get_ipython)" in page
    assert _auto(rows["wendy"]) == FULL and rows["wendy"].flags == "", why
    wendy = (tmp_path / "reports" / "feedback" / "wendy" / "99-traps.html").read_text()
    assert "UserWarning" in wendy and "_lines" not in wendy and "hidden test, removed by the grader" in wendy
