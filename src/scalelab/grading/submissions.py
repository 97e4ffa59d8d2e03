"""Find a class's notebooks in whatever layout they arrive in.

Accepted (see autograder/README.md):

* nbgrader's own: ``[submitted/]<student>/<assignment>/<notebook>.ipynb``
* one folder per student: ``<student>/<notebook>.ipynb``
* a flat folder, as LMS exports give: ``<student><sep><notebook>.ipynb`` where ``<sep>`` is ``_``,
  ``-`` or a double of either; extra words between them are kept in the student id
  (``jdoe_12345_00-setup.ipynb`` -> student ``jdoe_12345``)
* any of these inside a ``.zip``

In nbgrader's layout a ``timestamp.txt`` next to the notebooks (what nbgrader's exchange writes on
submission) says when the student handed in; ``make grade DEADLINE=...`` turns it into lateness.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Submission:
    """One student's notebook for one assignment."""

    student: str
    assignment: str
    notebook: str  # the course notebook's name, without .ipynb
    path: Path


@dataclass
class Rejected:
    """A file that could not be graded, with the reason (it still gets a row in the CSV)."""

    student: str
    assignment: str
    notebook: str
    path: Path
    reason: str


def safe_student_id(raw: str) -> str:
    cleaned = _UNSAFE.sub("_", raw.strip()).strip("._-")
    return cleaned or "unknown"


def unpack(source: Path, into: Path) -> Path:
    """A folder to read: `source` itself, or a zip extracted (safely) into `into`."""
    if source.is_dir():
        return source
    if source.suffix.lower() != ".zip" or not zipfile.is_zipfile(source):
        raise ValueError(f"{source} is neither a folder nor a .zip file")
    with zipfile.ZipFile(source) as archive:
        for member in archive.infolist():
            target = (into / member.filename).resolve()
            if not target.is_relative_to(into.resolve()):
                raise ValueError(f"{source}: refusing a path outside the archive ({member.filename})")
        archive.extractall(into)
    return into


def _match(relative: Path, known: dict[str, str]) -> tuple[str, str, str] | None:
    """(student, assignment, notebook) for one file, or None if no course notebook matches."""
    parts = [p for p in relative.parts if p != "submitted"]
    stem = relative.stem
    if len(parts) >= 3 and parts[-2] in known.values() and stem in known:
        return parts[-3], known[stem], stem
    if len(parts) >= 2 and stem in known:
        return parts[-2], known[stem], stem
    for notebook in sorted(known, key=len, reverse=True):  # longest name first
        for name in (stem, re.sub(r"[-_ ]\d+$", "", stem), re.sub(r"\s*\(\d+\)$", "", stem)):
            if name.endswith(notebook) and len(name) > len(notebook):
                student = name[: -len(notebook)].rstrip("_- ")
                if student:
                    return student, known[notebook], notebook
    return None


def collect(folder: Path, known: dict[str, str]) -> tuple[list[Submission], list[Rejected]]:
    """Every .ipynb under `folder`, matched to a student and a course notebook, and read back."""
    accepted: dict[tuple[str, str], Submission] = {}
    rejected: list[Rejected] = []
    files = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    for path in files:
        matched = _match(path.relative_to(folder), known)
        if matched is None:
            rejected.append(Rejected(safe_student_id(path.stem), "", "", path,
                                     "file name matches no course notebook "
                                     f"(expected <student>_<notebook>.ipynb with a notebook among: "
                                     f"{', '.join(sorted(known))})"))
            continue
        student, assignment, notebook = safe_student_id(matched[0]), matched[1], matched[2]
        problem = unreadable(path)
        if problem:
            rejected.append(Rejected(student, assignment, notebook, path, problem))
            continue
        key = (student, notebook)
        if key in accepted:
            rejected.append(Rejected(student, assignment, notebook, path,
                                     f"second copy of {notebook} for {student}; graded "
                                     f"{accepted[key].path.name} instead"))
            continue
        accepted[key] = Submission(student, assignment, notebook, path)
    return list(accepted.values()), rejected


def submission_time(submission: Submission) -> tuple[str | None, str | None]:
    """When the student handed in, from nbgrader's ``timestamp.txt`` in the notebook's own
    ``<student>/<assignment>/`` folder: (the file's text, None), or (None, why it can't be used), or
    (None, None) when there is no such file. A flat folder's timestamp.txt belongs to no one student."""
    from nbgrader.utils import parse_utc  # imports nbgrader (a second or two): only when asked

    if submission.path.parent.name != submission.assignment:
        return None, None
    stamp = submission.path.parent / "timestamp.txt"
    if not stamp.is_file():
        return None, None
    text = stamp.read_text(errors="replace").strip()
    try:
        parse_utc(text)
    except (ValueError, OverflowError):
        return None, f"timestamp.txt holds {text[:60]!r}, not a date and time: lateness unknown"
    return text, None


def unreadable(path: Path) -> str | None:
    """Why `path` is not a notebook nbgrader can read, or None."""
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # JSON errors, wrong encodings, truncated files...
        return f"not a valid notebook file ({type(error).__name__}: {str(error)[:200]})"
    try:
        nbformat.validate(notebook)
    except nbformat.ValidationError as error:
        return f"not a valid notebook ({error.message[:200]})"
    return None


def repair(notebook_path: Path, out_path: Path) -> list[str]:
    """Copy a notebook, making it safe for nbgrader; returns what was changed.

    A grade cell copied by copy-paste keeps its grade_id, and nbgrader then aborts ("duplicate
    grade id"). The first copy keeps the id; later copies become ordinary cells.
    """
    notebook = nbformat.read(notebook_path, as_version=4)
    seen: set[str] = set()
    notes = []
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is None:
            continue
        if grade_id in seen:
            del cell.metadata["nbgrader"]
            notes.append(f"a second cell with id {grade_id!r} (copy-paste?) was graded as ordinary code")
        seen.add(grade_id)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, out_path)
    return notes
