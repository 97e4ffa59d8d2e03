"""The scalelab command line: `python -m scalelab doctor | release | grade | feedback | cases | scan`."""

from __future__ import annotations

import sys
from pathlib import Path

USAGE = """usage: python -m scalelab COMMAND [ARGS]

  doctor                 what this machine has for the labs, with a fix for anything missing
  release [ASSIGNMENT]   regenerate labs/ from solutions/ with nbgrader
  grade SUBMISSIONS      grade a folder or .zip of notebooks into autograder/reports/
  feedback [--reports R] one zip of feedback pages per student, with the formgrader's marks and comments
  cases [NOTEBOOK...]    run the grading cases of autograder/cases/ (all notebooks by default)
  scan NOTEBOOK|FOLDER...  which cells of notebooks the grader would not run, and why (before handing in)
"""


def _cases(paths: list[str]) -> int:
    from scalelab.grading import course
    from scalelab.grading.cases import cases_file, run_cases

    notebooks = [Path(p) for p in paths] or [nb for a in course.assignments() for nb in course.source_notebooks(a)]
    failures = 0
    for notebook in notebooks:
        if not cases_file(notebook).exists():
            print(f"{notebook}: no case file {cases_file(notebook)}")
            failures += 1
            continue
        live, results = run_cases(notebook)
        print(f"{notebook}: solution {live.solution_points}")
        for message in live.cell_errors:
            print(f"  solution cell failed: {message}")
        for r in results:
            print(f"  {'ok  ' if r.ok else 'FAIL'} {r.case.kind:<11} {r.case.name}")
            if not r.ok:
                print(f"       {r.describe()}")
        failures += sum(not r.ok for r in results) + len(live.cell_errors)
    return 1 if failures else 0


def _feedback(args: list[str]) -> int:
    """Zip each student's feedback folder; a notebook with marks or comments given in the formgrader
    gets nbgrader's page made again from the course gradebook first, so that the zip shows them."""
    import argparse
    import shutil

    from scalelab.grading import course, gradebook

    parser = argparse.ArgumentParser(prog="python -m scalelab feedback")
    parser.add_argument("--reports", type=Path, default=course.root() / "autograder" / "reports")
    reports = parser.parse_args(args).reports
    pages = reports / "feedback"
    if not pages.is_dir():
        print(f"no feedback in {pages} yet: run make grade SUBMISSIONS=... first", file=sys.stderr)
        return 2
    students = sorted(p.name for p in pages.iterdir() if p.is_dir())
    remade = 0
    for assignment in course.assignments():
        for student in sorted(gradebook.marked_students(assignment) & set(students)):
            for name, page in gradebook.pages_with_marks(assignment, student).items():
                (pages / student / name).write_bytes(page)
                remade += 1
    zips = reports / "feedback-zips"
    zips.mkdir(exist_ok=True)
    for student in students:
        shutil.make_archive(str(zips / student), "zip", root_dir=pages, base_dir=student)
    print(f"one zip per student ({len(students)}) in {zips}; notebook pages made again with the marks and "
          f"comments given in the formgrader: {remade} (the index pages show the marks of the last make grade)")
    return 0


def _scan(paths: list[str]) -> int:
    """What `SkipRiskyCells` would do to each notebook: 0 when every cell would run."""
    import nbformat

    from scalelab.grading import course, scan
    from scalelab.grading.cells import label

    index = course.notebook_index()
    held_back = 0
    files = [found for p in map(Path, paths) for found in (
        sorted(f for f in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in f.parts) if p.is_dir() else [p])]
    for path in files:
        name = max((n for n in index if n in path.stem), key=len, default=None)
        if not path.is_file():
            print(f"{path}: no such file")
            held_back += 1
            continue
        if name is None:
            print(f"{path}: its name contains no notebook of this course (keep the lab's file name)")
            held_back += 1
            continue
        given = course.source_notebook(index[name], name)
        given = given if given.exists() else course.released_notebook(index[name], name)
        notebook = nbformat.read(path, as_version=4)
        risky = scan.risky_cells(notebook, nbformat.read(given, as_version=4))
        if not risky:
            print(f"{path}: the grader will run every cell")
        for cell, findings in risky.items():
            print(f"{path}: the grader will not run {label(notebook.cells[cell], cell)} ({findings[0]})")
            for finding in findings[1:]:
                print(f"    also {finding}")
        held_back += bool(risky)
    return 1 if held_back else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "doctor":
        from scalelab.doctor import main as doctor

        return doctor()
    if command == "release":
        from scalelab.grading.course import release

        release(rest or None)
        return 0
    if command == "grade":
        from scalelab.grading.batch import main as grade

        return grade(rest)
    if command == "cases":
        return _cases(rest)
    if command == "scan":
        return _scan(rest)
    if command == "feedback":
        return _feedback(rest)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
