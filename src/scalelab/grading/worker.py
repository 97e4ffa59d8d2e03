"""One nbgrader run in a private course root, in its own process (``python -m scalelab.grading.worker``).

The batch runner starts one of these per submission, so a kernel that dies, a notebook that hangs
or nbgrader aborting on odd metadata ends that process only. It prints its ``Outcome`` as one JSON
line on stdout.

    worker prepare --root R --assignment A    # gradebook template: generate_assignment into R
    worker grade   --root R --assignment A --student S [--cell-timeout T]
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import io
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from traitlets.config import Config

from scalelab.grading.course import nbgrader_config


class Failure(enum.StrEnum):
    """Why a grading process ended without grades, when more is known than nbgrader's message."""

    TIMED_OUT = "timed out"  # the batch runner stopped the process at its time limit
    KERNEL_DIED = "kernel died"  # the notebook's kernel process ended while it ran


@dataclass(frozen=True)
class Outcome:
    """A grading process's reply to the batch runner."""

    success: bool
    error: str = ""
    log: str = ""
    failure: Failure | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, line: str) -> Outcome:
        data = json.loads(line)
        return cls(data["success"], data["error"], data["log"], data["failure"] and Failure(data["failure"]))


def course_config(root: Path, cell_timeout: int | None = None) -> Config:
    config = nbgrader_config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    config.CourseDirectory.release_directory = str(root / "release")
    if cell_timeout:
        config.Execute.timeout = cell_timeout
    return config


def run(action: str, root: Path, assignment: str, student: str | None, cell_timeout: int | None) -> Outcome:
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from scalelab.grading import preprocessors  # the module the course configuration loads

    root.mkdir(parents=True, exist_ok=True)
    config = course_config(root, cell_timeout)
    log_text = io.StringIO()
    handler = logging.StreamHandler(log_text)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    api.log.addHandler(handler)
    if action == "prepare":
        result = api.generate_assignment(assignment, force=True, create=True)
    else:
        result = api.autograde(assignment, student, force=True, create=True)
        if result.get("success"):
            feedback = api.generate_feedback(assignment, student, force=True)
            result = result if feedback.get("success") else feedback
    return Outcome(
        success=bool(result.get("success")),
        error=result.get("error") or "",
        log=(result.get("log") or "") + log_text.getvalue(),
        failure=Failure.KERNEL_DIED if preprocessors.kernel_died else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scalelab.grading.worker")
    parser.add_argument("action", choices=["prepare", "grade"])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--assignment", required=True)
    parser.add_argument("--student")
    parser.add_argument("--cell-timeout", type=int)
    args = parser.parse_args(argv)
    outcome = run(args.action, args.root, args.assignment, args.student, args.cell_timeout)
    sys.stdout.write(outcome.to_json() + "\n")
    return 0 if outcome.success else 1


if __name__ == "__main__":
    sys.exit(main())
