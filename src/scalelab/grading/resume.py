"""What `make grade` has already graded, kept next to its reports so that a second run loses nothing.

Each graded submission (one student's notebooks of one assignment) is stored under a key made from
everything its grades depend on: the submitted notebooks, their timestamp, the assignment's source
notebooks, the course's nbgrader configuration, the grader's code, the deadline and the time limits.
A later run with
the same key reuses the stored rows and feedback pages instead of grading again, so re-running on the
same folder costs seconds, and a batch stopped half-way (Ctrl-C, a power cut) goes on where it stopped:
each submission is stored the moment it is graded, written to a temporary file and renamed, so an
entry is either whole or absent. Submissions that got an error are not stored: the next run tries
them again. ``make grade FORCE=1`` grades everything again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


class GradedStore:
    """Stored results by key in `folder` (``<reports>/.graded/``); with `force`, nothing is found."""

    def __init__(self, folder: Path, force: bool = False):
        self.folder = folder
        self.force = force

    @staticmethod
    def key(*parts: bytes | str) -> str:
        digest = hashlib.sha256()
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big"))  # a boundary between parts: no two splits collide
            digest.update(data)
        return digest.hexdigest()

    def get(self, key: str) -> dict | None:
        if self.force:
            return None
        try:
            return json.loads((self.folder / f"{key}.json").read_text())
        except (OSError, ValueError):  # absent, or unreadable: grade it again
            return None

    def put(self, key: str, entry: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".partial")
        with os.fdopen(handle, "w") as out:
            json.dump(entry, out)
        os.replace(temporary, self.folder / f"{key}.json")
