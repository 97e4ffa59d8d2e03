"""The course's data, offline: committed files, files shipped inside pyspark, and generators.

Every committed file under ``datasets/`` is listed in ``datasets/MANIFEST`` with its sha256, size,
provenance and licence. ``path(name)`` checks a file against that list before a lab uses it, so a lab
never silently teaches from edited data. Generators such as ``make_corpus`` make data of any size from a
seed, so that hidden tests can ask for a fresh input and benchmarks can ask for a large one; each
family of generators has its own module (``scalelab.datasets.corpus``; the text ones are re-exported here).

Command line::

    python -m scalelab.datasets verify     # check every MANIFEST entry
    python -m scalelab.datasets manifest   # rewrite sha256 and size of the listed files

Importing this module is cheap: numpy is imported only by the generators.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scalelab.datasets.corpus import Corpus, iter_corpus, make_corpus, vocabulary, write_corpus, zipf_probabilities
from scalelab.paths import repo_root
from scalelab.spark import pyspark_home

__all__ = ["Corpus", "DatasetError", "demo_size", "iter_corpus", "make_corpus", "path", "pyspark_data", "vocabulary",
           "write_corpus", "zipf_probabilities"]

MANIFEST_NAME = "MANIFEST"
MANIFEST_COLUMNS = ("path", "sha256", "bytes", "source", "licence")
MANIFEST_HEADER = "\t".join(MANIFEST_COLUMNS)
UNLISTED_OK = {MANIFEST_NAME, "README.md"}  # files of datasets/ that describe the data rather than hold it


class DatasetError(RuntimeError):
    """A dataset is missing, unknown or differs from its MANIFEST entry; the message says what to do."""


@dataclass(frozen=True)
class Entry:
    """One MANIFEST row."""

    path: str
    sha256: str
    bytes: int
    source: str
    licence: str


def demo_size(size: int | float) -> int | float:
    """The size a worked example runs at: `size` times ``SCALELAB_DEMO_SCALE`` (default 1).

    The test suite sets the factor below 1 so that demonstrations of how time grows with the data run
    quickly; students see the sizes the lab names. Only cells that demonstrate (tagged skip-when-grading)
    may call it, never an exercise or its tests: tests/test_anatomy.py holds that. An int stays an int (at least 1).
    """
    try:
        factor = float(os.environ.get("SCALELAB_DEMO_SCALE", "1"))
    except ValueError:
        raise ValueError("SCALELAB_DEMO_SCALE must be a number such as 0.2; unset it for full size") from None
    if factor <= 0:
        raise ValueError(f"SCALELAB_DEMO_SCALE must be above 0, got {factor:g}; unset it for full size")
    return max(1, round(size * factor)) if isinstance(size, int) else size * factor


def datasets_dir() -> Path:
    """Where the committed data lives; ``SCALELAB_DATASETS`` points elsewhere (tests, a shared copy)."""
    override = os.environ.get("SCALELAB_DATASETS")
    return Path(override).expanduser().resolve() if override else repo_root() / "datasets"


def manifest_file() -> Path:
    return datasets_dir() / MANIFEST_NAME


# --- the MANIFEST -----------------------------------------------------------------------------------


def _data_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, line


def _parse_row(number: int, line: str) -> Entry:
    cells = line.split("\t")
    if len(cells) != len(MANIFEST_COLUMNS):
        raise DatasetError(
            f"{manifest_file()} line {number}: expected {len(MANIFEST_COLUMNS)} tab-separated columns "
            f"({', '.join(MANIFEST_COLUMNS)}), found {len(cells)}"
        )
    path, sha256, size, source, licence = (cell.strip() for cell in cells)
    try:
        return Entry(path, sha256.lower(), int(size), source, licence)
    except ValueError:
        raise DatasetError(f"{manifest_file()} line {number}: size {size!r} is not a whole number") from None


def read_manifest() -> dict[str, Entry]:
    """The MANIFEST's entries by path (relative to ``datasets/``)."""
    where = manifest_file()
    if not where.is_file():
        raise DatasetError(f"no {where}: the datasets folder is incomplete; run `git checkout datasets/`")
    rows = _data_lines(where.read_text(encoding="utf-8"))
    header = next(rows, None)
    if header is None or tuple(c.strip() for c in header[1].split("\t")) != MANIFEST_COLUMNS:
        raise DatasetError(f"{where}: the first non-comment line must be the header {MANIFEST_HEADER!r}")
    entries = [_parse_row(number, line) for number, line in rows]
    return {entry.path: entry for entry in entries}


def sha256_of(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- committed files ------------------------------------------------------------------------------

_verified: set[tuple[str, int, int]] = set()  # (absolute path, size, mtime_ns) already hashed this process


def _normalise(name: str) -> str:
    name = name.replace("\\", "/").strip()
    return name.removeprefix("datasets/")


def _fix_hint(name: str) -> str:
    return (
        f"run `git checkout datasets/{name}` to restore it, or, if the change is intended, "
        "update the MANIFEST with `python -m scalelab.datasets manifest`"
    )


def _mismatch(entry: Entry, file: Path) -> str | None:
    """What differs between the file and its entry, or None; hashing is skipped when the size differs."""
    size = file.stat().st_size
    if size != entry.bytes:
        return f"it has {size} bytes, the MANIFEST says {entry.bytes}"
    actual = sha256_of(file)
    if actual != entry.sha256:
        return f"its sha256 is {actual}, the MANIFEST says {entry.sha256}"
    return None


def _check(entry: Entry, file: Path) -> None:
    if not file.is_file():
        raise DatasetError(f"datasets/{entry.path} is missing ({file}): {_fix_hint(entry.path)}")
    stat = file.stat()
    key = (str(file), stat.st_size, stat.st_mtime_ns)
    if key in _verified:
        return
    problem = _mismatch(entry, file)
    if problem:
        raise DatasetError(f"datasets/{entry.path} changed: {problem}; {_fix_hint(entry.path)}")
    _verified.add(key)


def path(name: str) -> Path:
    """The path of a committed data file, after checking it against the MANIFEST.

    ``name`` is relative to ``datasets/``, e.g. ``"setup/sample_lines.txt"``.
    """
    name = _normalise(name)
    entries = read_manifest()
    entry = entries.get(name)
    if entry is None:
        known = ", ".join(sorted(entries)) or "(none)"
        raise DatasetError(f"unknown dataset {name!r}; the MANIFEST lists: {known}")
    file = datasets_dir() / entry.path
    _check(entry, file)
    return file


# --- data shipped inside pyspark ------------------------------------------------------------------


def pyspark_data(relative: str) -> Path:
    """A file shipped with pyspark, e.g. ``"data/graphx/followers.txt"``: offline data with known answers."""
    home = pyspark_home()
    file = home / relative
    if file.is_file():
        return file
    folder = file.parent
    while not folder.is_dir() and folder != home:
        folder = folder.parent
    available = sorted(p.name for p in folder.iterdir())[:30]
    raise DatasetError(
        f"pyspark at {home} ships no {relative!r}; {folder.relative_to(home) or '.'} holds: "
        + (", ".join(available) or "(nothing)")
    )


# --- command line ---------------------------------------------------------------------------------


def manifest_rows() -> list[Entry]:
    """The MANIFEST's entries with sha256 and size recomputed from the files (source and licence kept)."""
    rows = []
    for entry in read_manifest().values():
        file = datasets_dir() / entry.path
        if not file.is_file():
            raise DatasetError(f"the MANIFEST lists datasets/{entry.path}, which is missing; remove its row")
        rows.append(Entry(entry.path, sha256_of(file), file.stat().st_size, entry.source, entry.licence))
    return rows


def write_manifest(rows: list[Entry]) -> None:
    """Rewrite the MANIFEST's rows in place, keeping its comments and header."""
    by_path = {row.path: row for row in rows}
    where = manifest_file()
    lines = where.read_text(encoding="utf-8").splitlines()
    data = dict(_data_lines("\n".join(lines)))
    header_number = min(data)
    out = []
    for number, line in enumerate(lines, start=1):
        if number in data and number != header_number:
            row = by_path[_parse_row(number, line).path]
            line = "\t".join([row.path, row.sha256, str(row.bytes), row.source, row.licence])
        out.append(line)
    where.write_text("\n".join(out) + "\n", encoding="utf-8")


def unlisted_files() -> list[str]:
    """Files under datasets/ that the MANIFEST does not list (every committed data file must be listed)."""
    root = datasets_dir()
    listed = set(read_manifest())
    found = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return sorted(name for name in found if name not in listed and name not in UNLISTED_OK)


def verify() -> list[str]:
    """Every problem with the committed data, as messages; empty when all is well."""
    problems = []
    for name in read_manifest():
        try:
            path(name)
        except DatasetError as error:
            problems.append(str(error))
    problems += [f"datasets/{name} is not listed in the MANIFEST; add its row" for name in unlisted_files()]
    return problems


USAGE = """usage: python -m scalelab.datasets verify | manifest

  verify     check every file listed in datasets/MANIFEST (size and sha256), and that none is unlisted
  manifest   recompute sha256 and size of every listed file and rewrite the MANIFEST
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["verify"]:
        problems = verify()
        for problem in problems:
            print(problem)
        print(f"{len(read_manifest())} files listed, {len(problems)} problems")
        return 1 if problems else 0
    if args == ["manifest"]:
        rows = manifest_rows()
        write_manifest(rows)
        print(f"rewrote {manifest_file()}: {len(rows)} files")
        return 0
    print(USAGE, end="")
    return 2
