"""Where the course lives: assignments, notebooks and the nbgrader configuration."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from scalelab.engines import CONNECT_MODE_VARIABLES
from scalelab.grading.cells import is_graded, is_test, nbgrader_meta
from scalelab.paths import repo_root

# Grading's time limits, in one place: a cell runs at most this long (nbgrader interrupts it; the
# variable SCALELAB_CELL_TIMEOUT changes it), and one student's notebooks of one assignment together
# (the grading process and everything it started are killed).
CELL_TIMEOUT_S = 120
SUBMISSION_TIMEOUT_S = 1200


def cell_timeout() -> int:
    return int(os.environ.get("SCALELAB_CELL_TIMEOUT", CELL_TIMEOUT_S))


def root() -> Path:
    """The course being graded: $SCALELAB_ROOT (a private course, as the grading tests build), else this
    repository."""
    if os.environ.get("SCALELAB_ROOT"):
        return Path(os.environ["SCALELAB_ROOT"]).resolve()
    return repo_root()


def config_file() -> Path:
    return root() / "autograder" / "nbgrader_config.py"


def nbgrader_config():
    """The course's nbgrader configuration (a traitlets Config), read as nbgrader reads it."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader(config_file().name, path=str(config_file().parent)).load_config()


def assignments() -> list[str]:
    """Assignment ids, in teaching order: the folders of solutions/ that hold notebooks."""
    folder = root() / "solutions"
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def source_notebooks(assignment: str) -> list[Path]:
    return sorted((root() / "solutions" / assignment).glob("*.ipynb"))


def source_notebook(assignment: str, notebook: str) -> Path:
    return root() / "solutions" / assignment / f"{notebook}.ipynb"


def released_notebook(assignment: str, notebook: str) -> Path:
    return root() / "labs" / assignment / f"{notebook}.ipynb"


@dataclass(frozen=True)
class GradeCell:
    grade_id: str
    points: float
    kind: str  # "tests" (an autograded test cell) or "manual" (a written answer an instructor marks)


def grade_cells(path: Path) -> list[GradeCell]:
    """The graded cells of a notebook, in order."""
    cells = []
    for cell in nbformat.read(path, as_version=4).cells:
        if is_graded(cell):
            meta = nbgrader_meta(cell)
            kind = "tests" if is_test(cell) else "manual"
            cells.append(GradeCell(meta["grade_id"], float(meta.get("points", 0)), kind))
    return cells


def notebook_index() -> dict[str, str]:
    """notebook name (stem) -> assignment id, over the whole course."""
    return {nb.stem: a for a in assignments() for nb in source_notebooks(a)}


def tool_env(extra: dict | None = None) -> dict:
    """The environment for nbgrader subprocesses: this venv's bin/ first (nbgrader runs `alembic`), and
    none of what a Spark Connect client left in this process (it would put every kernel in Connect mode)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {k: v for k, v in os.environ.items() if k not in CONNECT_MODE_VARIABLES}
    return {**env, "PATH": path, **(extra or {})}


@contextlib.contextmanager
def _venv_first_on_path():
    saved = os.environ.get("PATH", "")
    os.environ["PATH"] = tool_env()["PATH"]
    try:
        yield
    finally:
        os.environ["PATH"] = saved


def run_nbgrader(args: list[str]) -> subprocess.CompletedProcess:
    """Run the nbgrader CLI with the course configuration (from autograder/), as an instructor does."""
    (root() / "autograder" / "course").mkdir(exist_ok=True)  # nbgrader's root, git-ignored
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root() / "autograder",
                          capture_output=True, text=True, env=tool_env())


def release(assignment_ids: list[str] | None = None, release_directory: Path | None = None) -> None:
    """Regenerate the student notebooks (labs/ by default) from solutions/ with nbgrader's
    generate_assignment, in this process: one nbgrader start-up for the whole course, not one per
    assignment (nbgrader runs no notebook here)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = nbgrader_config()
    if release_directory is not None:
        config.CourseDirectory.release_directory = str(release_directory)
    Path(config.CourseDirectory.root).mkdir(exist_ok=True)  # nbgrader's root, git-ignored
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    for assignment in assignment_ids or assignments():
        with _venv_first_on_path():  # nbgrader runs `alembic` for the gradebook
            result = api.generate_assignment(assignment, force=True, create=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n{result.get('log', '')}"
                               f"{result.get('error', '')}")
        print(f"released {assignment} -> {config.CourseDirectory.release_directory}/{assignment}")


def validate(path: Path) -> dict:
    """nbgrader's verdict on a notebook (the exit status of `nbgrader validate` is always 0)."""
    from nbgrader.validator import Validator

    return Validator().validate(str(path))
