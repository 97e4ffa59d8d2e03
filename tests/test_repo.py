"""Promises the repository makes: pins agree, notebooks are clean, labs/ is what `make release` writes."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

from scalelab.grading import course
from scalelab.paths import repo_root

REPO = repo_root()


def _notebooks(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.ipynb"))


def test_environment_yml_repeats_every_pin_of_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = set(project["dependencies"]) | {p for extra in project["optional-dependencies"].values() for p in extra}
    text = (REPO / "environment.yml").read_text()
    listed = {m.group(1).strip() for m in re.finditer(r"^\s+-\s+([^#\n]+?)\s*(?:#.*)?$", text, re.M)}
    assert pins - listed == set(), "pins missing from environment.yml"
    stray = {p for p in listed if "==" in p} - pins
    assert stray == set(), "environment.yml pins that pyproject.toml does not have"


def test_every_pin_is_exact_and_in_the_lock():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
            for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line}
    for pin in project["dependencies"] + project["optional-dependencies"]["dev"]:
        name, version = re.sub(r"\[.*\]", "", pin).split("==")
        assert lock.get(name.lower()) == version, f"{pin} disagrees with constraints.txt"


@pytest.mark.parametrize("path", _notebooks("solutions") + _notebooks("labs"), ids=lambda p: str(p.relative_to(REPO)))
def test_notebook_is_stored_without_outputs_and_uses_the_course_kernel(path):
    notebook = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(notebook["cells"]) if c.get("outputs") or c.get("execution_count")]
    assert dirty == [], f"cells with outputs: {dirty} (run nbstripout, or `pre-commit install`)"
    assert notebook["metadata"]["kernelspec"]["name"] == "scalelab"


def test_grade_ids_are_unique_across_the_course():
    seen: dict[str, Path] = {}
    for path in _notebooks("solutions"):
        for cell in course.grade_cells(path):
            assert cell.grade_id not in seen, f"{cell.grade_id} in {path} and {seen[cell.grade_id]}"
            seen[cell.grade_id] = path


@pytest.mark.parametrize("path", _notebooks("solutions"), ids=lambda p: p.stem)
def test_demonstrations_skipped_by_grading_feed_no_answer_test_or_closing_cell(path):
    """Grading skips cells tagged skip-when-grading: none may bind a name that a cell grading runs reads."""
    from scalelab.grading.cases import cells_grading_needs
    from scalelab.grading.cells import is_demonstration

    notebook = nbformat.read(path, 4)
    needed = cells_grading_needs(notebook)
    assert [i for i, cell in enumerate(notebook.cells) if is_demonstration(cell) and i in needed] == []


def test_labs_are_what_make_release_writes(tmp_path):
    course.release(release_directory=tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(REPO / "labs") for p in (REPO / "labs").rglob("*") if p.is_file())
    assert fresh == committed, "labs/ has other files than the release: run `make release`"
    for relative in fresh:
        if relative.suffix == ".ipynb":
            assert nbformat.read(tmp_path / relative, 4) == nbformat.read(REPO / "labs" / relative, 4), (
                f"labs/{relative} is out of date: run `make release` and commit labs/")
        else:
            assert (tmp_path / relative).read_bytes() == (REPO / "labs" / relative).read_bytes()


def test_released_notebooks_hide_solutions_and_hidden_tests():
    for path in _notebooks("labs"):
        text = path.read_text()
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME"):
            assert marker not in text, f"{path} contains {marker}"
        assert "raise NotImplementedError" in text


def test_instructor_guides_are_not_released():
    for guide in (REPO / "solutions").glob("*/README.md"):
        assert not (REPO / "labs" / guide.parent.name / "README.md").exists()


def test_ci_entry_runs_the_readme_test_command_and_fails_when_it_fails(tmp_path):
    quick_start = (REPO / "README.md").read_text().split("## Quick start", 1)[1].split("```")[1]
    assert "make test" in quick_start
    fake = tmp_path / "make"  # records how .ci/run calls make, then fails as a failing suite would
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "called"}\n'
                    f'echo "$CI_REQUIRE_SANDBOX" > {tmp_path / "sandbox"}\nexit 3\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "SCALELAB_NO_OS_PACKAGES": "1"}  # no apt-get from a test
    run = subprocess.run(["bash", str(REPO / ".ci" / "run")], env=env, capture_output=True, text=True)
    assert (tmp_path / "called").read_text().split() == ["test"]
    assert (tmp_path / "sandbox").read_text().strip() == "1"  # the sandbox tests fail in CI, never skip
    assert run.returncode != 0
    script = (REPO / ".ci" / "run").read_text()
    assert "install bwrap bubblewrap" in script and "install chromium chromium" in script


def test_git_tracks_no_notebook_outputs_or_runtime_folders():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    assert not [t for t in tracked if t.startswith(("autograder/course/", "autograder/reports/", ".venv/"))]


def test_code_and_notebooks_are_ruff_clean():
    targets = [str(REPO / d) for d in ("src", "tests", "bench", "solutions", "tools", "autograder")]
    lint = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "--output-format", "concise",
                           *targets], capture_output=True, text=True, cwd=REPO)
    assert lint.returncode == 0, lint.stdout[-3000:]


def _fake_python(folder: Path, name: str, version: str | None) -> None:
    """A `name` on PATH that is this test's Python, or (version given) a Python of that version."""
    script = folder / name
    if version is None:
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    else:  # too old: fails the set-up's version check, tells its version
        script.write_text(f'#!/bin/sh\n[ "$1" = -V ] && {{ echo "Python {version}"; exit 0; }}\nexit 1\n')
    script.chmod(0o755)


def test_setup_picks_the_first_python_the_pins_install_on_and_refuses_an_old_one(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_python(bin_dir, "python3.11", "3.11.2")  # Debian 12's: soupsieve in the lock needs 3.11.5
    _fake_python(bin_dir, "python3", "3.11.2")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    make = ["make", "-C", str(REPO), f"VENV={tmp_path / 'venv'}"]
    refused = subprocess.run([*make, "setup"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and not (tmp_path / "venv").exists()
    assert "needs Python 3.11.5 or newer, below 3.13" in refused.stdout and "make PYTHON=" in refused.stdout
    _fake_python(bin_dir, "python3.12", None)
    chosen = subprocess.run([*make, "-n", "setup"], env=env, capture_output=True, text=True)
    assert "setting up .venv with python3.12" in chosen.stdout, chosen.stdout
    named = subprocess.run([*make, "setup", "PYTHON=python3.11"], env=env, capture_output=True, text=True)
    assert named.returncode == 2 and "(python3.11: Python 3.11.2)" in named.stdout


def test_hosted_environments_install_the_lock_with_a_python_the_makefile_accepts():
    makefile = (REPO / "Makefile").read_text()
    oldest, below = re.search(r"\(3, (\d+), \d+\) <= sys.version_info\[:3\] < \(3, (\d+)\)", makefile).groups()
    accepted = range(int(oldest), int(below))
    assert re.search(r"pip install .*-c constraints\.txt", makefile)
    # the dev container runs make setup itself, with the image's Python
    devcontainer = json.loads((REPO / ".devcontainer" / "devcontainer.json").read_text())
    assert devcontainer["postCreateCommand"] == "make setup"
    assert int(re.search(r"/python:\d+-3\.(\d+)-", devcontainer["image"]).group(1)) in accepted
    # Binder: repo2docker would install a binder/requirements.txt or environment.yml before the lock is there
    binder = REPO / "binder"
    assert sorted(p.name for p in binder.iterdir()) == ["postBuild", "runtime.txt"]
    assert int(re.fullmatch(r"python-3\.(\d+)\s*", (binder / "runtime.txt").read_text()).group(1)) in accepted
    post_build = (binder / "postBuild").read_text()
    installs = re.findall(r"^.*pip install.*$", post_build, re.M)
    assert installs and all("-c constraints.txt" in line for line in installs), installs
    assert (binder / "postBuild").stat().st_mode & 0o111, "repo2docker runs postBuild as a program"
    assert subprocess.run(["bash", "-n", binder / "postBuild"]).returncode == 0
