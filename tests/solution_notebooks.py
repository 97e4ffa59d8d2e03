"""The one way the module tests reach a solution notebook's answers: run the notebook's own code cells.

The notebook's set-up cell supplies the imports (no hand-written copy to drift from it), and a set-up that
calls ``get_spark()`` gets the session a test fixture already started (``get_spark`` returns the kernel's
live session). Which cells are tests, answers and demonstrations is what ``scalelab.grading.cells`` says.
"""

from __future__ import annotations

import ast
import types
from pathlib import Path

import nbformat

from scalelab.grading.cells import is_answer, is_demonstration, is_test

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"


def read_notebook(stem: str, root: Path = SOLUTIONS) -> nbformat.NotebookNode:
    """The notebook named `stem` (e.g. "02-rdd-basics") in a module folder under `root` (solutions/ or labs/)."""
    (path,) = root.glob(f"*/{stem}.ipynb")
    return nbformat.read(path, as_version=4)


def answer_sources(stem: str, root: Path = SOLUTIONS) -> dict[str, str]:
    """The source of each answer cell, by nbgrader grade id."""
    return {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in read_notebook(stem, root).cells
            if is_answer(cell)}


def run_solution(stem: str, *grade_ids: str, examples: bool = False, demonstrations: bool = False,
                 imports_only: bool = False, **given) -> types.ModuleType:
    """Run a solution notebook's code cells in order in a fresh module, and return the module.

    It runs the set-up cell (the first code cell; with `imports_only`, just its import statements, so no
    session or client starts), then the answer cells (all, or only those whose grade ids are named), and
    with `examples` the plain code cells in between (worked examples that define what answers use);
    `demonstrations` adds the cells tagged as demonstrations. It never runs a test cell, and it stops at
    the last answer cell it runs, so a lab's closing cells (``stop_spark()``, clean-up) never run.
    `given` names are put in the module before the set-up runs. The module is not in sys.modules, so
    Spark's cloudpickle ships its functions by value (test_module_01 registers it for a multiprocessing Pool).
    """
    cells = [cell for cell in read_notebook(stem).cells if cell.cell_type == "code"]
    setup, rest = cells[0], cells[1:]
    assert not is_answer(setup) and not is_test(setup), f"{stem}: the first code cell is not a set-up cell"
    named = {c.metadata["nbgrader"]["grade_id"]: n for n, c in enumerate(rest) if is_answer(c)}
    missing = set(grade_ids) - set(named)
    assert not missing, f"{stem} has no answer cell {sorted(missing)}"
    answers = {named[grade_id] for grade_id in grade_ids or named}
    module = types.ModuleType(f"solution_{stem.replace('-', '_')}")
    module.__dict__.update(given)
    tree = ast.parse(setup.source)
    if imports_only:
        tree.body = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    exec(compile(tree, f"{stem}:{setup.id}", "exec"), module.__dict__)
    for n, cell in enumerate(rest[:max(answers, default=-1) + 1]):
        plain = not is_answer(cell) and not is_test(cell)
        if n in answers or plain and (demonstrations or examples and not is_demonstration(cell)):
            exec(compile(cell.source, f"{stem}:{cell.id}", "exec"), module.__dict__)
    return module
