"""Build an nbgrader source notebook from a plain-text outline (a convenience for authors).

The notebook in solutions/ is the source of truth; this only saves typing JSON when starting one.
Cells are separated by marker lines:

    #%% markdown
    #%% code                               (add tags=a,b for cell tags, e.g. tags=skip-when-grading)
    #%% answer id=GRADE_ID                 autograded answer (### BEGIN/END SOLUTION inside)
    #%% tests id=GRADE_ID points=N         locked autograder tests (### BEGIN/END HIDDEN TESTS inside)
    #%% manual id=GRADE_ID points=N        written answer, graded by hand (markdown)

usage: python tools/nbbuild.py OUTLINE.txt solutions/NN-name/NOTEBOOK.ipynb
"""

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

KERNEL = {"name": "scalelab", "display_name": "Python 3 (scalelab)", "language": "python"}


def nbgrader_meta(kind: str, options: dict) -> dict:
    base = {"schema_version": 3, "task": False, "grade_id": options.get("id")}
    if kind == "answer":
        return {**base, "grade": False, "locked": False, "solution": True}
    if kind == "tests":
        return {**base, "grade": True, "locked": True, "solution": False, "points": float(options["points"])}
    if kind == "manual":
        return {**base, "grade": True, "locked": False, "solution": True, "points": float(options["points"])}
    return {}


def build(text: str) -> nbformat.NotebookNode:
    notebook = new_notebook(metadata={"kernelspec": KERNEL, "language_info": {"name": "python"}})
    blocks = text.split("\n#%% ")
    if blocks[0].startswith("#%% "):
        blocks[0] = blocks[0][4:]
    for n, block in enumerate(blocks):
        header, _, body = block.partition("\n")
        kind, *pairs = header.split()
        options = dict(p.split("=", 1) for p in pairs)
        body = body.strip("\n")
        cell = new_markdown_cell(body) if kind in ("markdown", "manual") else new_code_cell(body)
        cell.id = options.get("id", f"cell-{n:03d}")
        if options.get("tags"):
            cell.metadata["tags"] = options["tags"].split(",")
        meta = nbgrader_meta(kind, options)
        if meta:
            cell.metadata["nbgrader"] = meta
        notebook.cells.append(cell)
    return notebook


if __name__ == "__main__":
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(build(source.read_text()), target)
    print(f"wrote {target}")
