"""One nbgrader run in a private course root, in its own process (``python -m scalelab.grading.worker``).

The batch runner starts one of these per submission, so a kernel that dies, a notebook that hangs
or nbgrader aborting on odd metadata ends that process only. It prints one JSON line on stdout.

    worker prepare --root R --assignment A    # gradebook template: generate_assignment into R
    worker grade   --root R --assignment A --student S [--cell-timeout T]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from scalelab.grading.course import config_file


def course_config(root: Path, cell_timeout: int | None = None) -> Config:
    config = PyFileConfigLoader(config_file().name, path=str(config_file().parent)).load_config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    config.CourseDirectory.release_directory = str(root / "release")
    if cell_timeout:
        config.Execute.timeout = cell_timeout
    return config


def run(action: str, root: Path, assignment: str, student: str | None, cell_timeout: int | None) -> dict:
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

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
            if not feedback.get("success"):
                result = {**feedback, "stage": "feedback"}
    return {
        "success": bool(result.get("success")),
        "error": result.get("error") or "",
        "log": (result.get("log") or "") + log_text.getvalue(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scalelab.grading.worker")
    parser.add_argument("action", choices=["prepare", "grade"])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--assignment", required=True)
    parser.add_argument("--student")
    parser.add_argument("--cell-timeout", type=int)
    args = parser.parse_args(argv)
    outcome = run(args.action, args.root, args.assignment, args.student, args.cell_timeout)
    sys.stdout.write(json.dumps(outcome) + "\n")
    return 0 if outcome["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
