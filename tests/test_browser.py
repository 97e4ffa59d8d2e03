"""The doors in a real browser: a student in `make lab`, an instructor in the formgrader, the Dask dashboard.

Headless Chromium (the OS package; `make doctor` says how to install it) driven by Playwright. Every
server binds 127.0.0.1 on a free port with this test's token and is stopped even when a step fails.
A screenshot of each step goes to test-artifacts/browser/ (git-ignored), and one of where each test
ended, for a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Error, Page, expect, sync_playwright
from test_grading import _answered, _trap_course

from scalelab.clusters import free_port
from scalelab.dask import close_client, get_client
from scalelab.doctor import BROWSER_INSTALL, find_chromium
from scalelab.grading import course
from scalelab.processes import kill_group

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = find_chromium()
STEP_TIMEOUT_MS = 60_000  # a step waits this long for the page: `make test` keeps both cores busy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason=f"no Chromium for the browser tests: {BROWSER_INSTALL}"),
]


@pytest.fixture(scope="module")
def browser():
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    print(f"browser screenshots in {ARTIFACTS}")
    with sync_playwright() as playwright:
        # the system's Chromium: Playwright's own browser download needs a network the tests don't have
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        with contextlib.suppress(Error):  # a page that is gone must not hide the test's own error
            page.screenshot(path=ARTIFACTS / f"{request.node.name}-end.png")
        context.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"{name}.png")


@contextlib.contextmanager
def jupyter_lab(command: Callable[[str], list[str]], cwd: Path, tmp: Path) -> Iterator[tuple[str, str]]:
    """Run `command(options)`, a JupyterLab on 127.0.0.1; yield its URL and token; then stop it and its children."""
    port, token = free_port(), secrets.token_hex(16)
    options = (f"--ServerApp.ip=127.0.0.1 --ServerApp.port={port} --ServerApp.port_retries=0 "
               f"--IdentityProvider.token={token} --ServerApp.open_browser=False")
    # the user's own JupyterLab settings and open tabs neither change the test nor are changed by it;
    # no news pop-up over the screenshots
    news = tmp / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime")}
    log = (tmp / "jupyter.log").open("w")
    server = subprocess.Popen(command(options), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(f"{url}/api/status?token={token}", server, tmp / "jupyter.log")
        yield url, token
    finally:
        _stop_group(server)
        log.close()


def _wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while server.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=5)
            return
        time.sleep(0.5)
    raise AssertionError(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (make, jupyter), which shuts its kernels down; SIGKILL after 20 s."""
    kill_group(process, signal.SIGTERM)
    deadline = time.monotonic() + 20
    with contextlib.suppress(ProcessLookupError):
        while time.monotonic() < deadline:
            process.poll()  # reaps make, so that only live processes keep the group
            os.killpg(process.pid, 0)  # raises once every process of the group is gone
            time.sleep(0.2)
    kill_group(process)
    process.wait()


# ---- a student: make lab, the set-up lab, a check passed and a check failed ---------------------

def _run_cell(page: Page, index: int, source: str | None = None) -> None:
    """Click into code cell `index` of the open notebook, type `source` over it if given, run it (Shift+Enter)."""
    editor = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".cm-content")
    editor.click()
    if source is not None:
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.insert_text(source)  # as pasted: no auto-indent or bracket closing
    page.keyboard.press("Shift+Enter")


def _idle_kernel(url: str, token: str, other_than: str | None = None) -> str:
    """The id of the notebook's kernel once it is idle (and is not `other_than`), from the server's sessions."""
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=10) as answer:
            kernels = [session["kernel"] for session in json.load(answer)]
        if kernels and kernels[0]["id"] != other_than and kernels[0]["execution_state"] == "idle":
            return kernels[0]["id"]
        time.sleep(0.25)
    raise AssertionError(f"no idle kernel (other than {other_than}) in time")


def test_a_student_runs_the_setup_lab_and_reads_a_passed_and_a_failed_check(page, tmp_path):
    labs = tmp_path / "labs"  # a copy: the edits and JupyterLab's autosave must not touch labs/
    shutil.copytree(REPO / "labs" / "00-setup", labs / "00-setup")

    def make_lab(options: str) -> list[str]:
        return ["make", "-C", str(REPO), "lab", f"LAB_DIR={labs}", f"JUPYTER_ARGS={options}"]

    with jupyter_lab(make_lab, REPO, tmp_path) as (url, token):
        page.goto(f"{url}/lab/tree/00-setup/00-setup.ipynb?token={token}")
        notebook = page.locator(".jp-NotebookPanel")
        expect(notebook.locator(".jp-Notebook .jp-Cell").first).to_be_visible()
        shot(page, "01-student-lab-open")
        started = _idle_kernel(url, token)  # the one the notebook's metadata names
        # README, step 2: Kernel -> Change Kernel..., "Python 3 (scalelab)"
        page.get_by_role("menuitem", name="Kernel").click()
        page.get_by_role("menuitem", name=re.compile("Change Kernel")).click()
        dialog = page.locator(".jp-Dialog")
        expect(dialog).to_be_visible()
        dialog.locator("select").select_option(label="Python 3 (scalelab)")
        shot(page, "02-student-chooses-the-kernel")
        dialog.get_by_role("button", name="Select").click()
        _idle_kernel(url, token, other_than=started)  # the cells must run in the new kernel, not the old one
        expect(notebook.locator(".jp-Toolbar-kernelName")).to_have_text("Python 3 (scalelab)")

        cells = notebook.locator(".jp-Notebook .jp-Cell")
        _run_cell(page, 2)  # the set-up cell: imports
        expect(cells.nth(2).locator(".jp-InputPrompt")).to_have_text("[1]:")
        _run_cell(page, 6, "def words_per_line(lines): return [len(line.split()) for line in lines]")
        _run_cell(page, 7)
        expect(cells.nth(7).locator(".jp-OutputArea")).to_contain_text("✓ words_per_line on the example")
        shot(page, "03-student-check-passes")

        # the mistake the hint is about: split(" ") counts empty words
        _run_cell(page, 6, 'def words_per_line(lines): return [len(line.split(" ")) for line in lines]')
        _run_cell(page, 7)
        failure = cells.nth(7).locator(".jp-OutputArea")
        expect(failure).to_contain_text("CheckFailed: words_per_line on the example: expected [3, 0, 3], got [3, 1, 4]")
        expect(failure).to_contain_text("Hint: str.split() with no argument splits on any run of whitespace")
        shot(page, "04-student-check-fails")


# ---- an instructor: one submission autograded in the course, then the formgrader ---------------

def test_an_instructor_sees_the_assignments_and_a_graded_submission_in_the_formgrader(page, tmp_path, monkeypatch):
    # the light course of tests/test_grading.py, in the test's own root; README's steps: release, put
    # the submission in course/submitted/<student>/<assignment>/, nbgrader autograde from autograder/
    root = tmp_path / "course"
    monkeypatch.setenv("SCALELAB_ROOT", str(root))
    solution, lab = _trap_course(root)
    wrong = 'def words_per_line(lines):\n    return [len(line.split(" ")) for line in lines]\n'
    submitted = root / "autograder" / "course" / "submitted" / "alice" / "99-traps"
    submitted.mkdir(parents=True)
    nbformat.write(_answered(solution, lab, {"traps-words": wrong}), submitted / "99-traps.ipynb")
    graded = course.run_nbgrader(["autograde", "99-traps"])
    assert graded.returncode == 0, graded.stdout + graded.stderr

    def formgrader_command(options: str) -> list[str]:  # what `make formgrader` runs, here in this course
        root_flag = ["--allow-root"] if os.getuid() == 0 else []
        return [str(Path(sys.executable).parent / "jupyter"), "lab", *root_flag, "--ServerApp.root_dir=..",
                *options.split()]

    with jupyter_lab(formgrader_command, root / "autograder", tmp_path / "server") as (url, token):
        page.goto(f"{url}/lab?token={token}")
        page.get_by_role("menuitem", name="Nbgrader").click()
        page.get_by_role("menuitem", name="Formgrader").click()
        formgrader = page.frame_locator("iframe")
        row = formgrader.locator("#main-table tr", has_text="99-traps")
        expect(row.locator("td.num-submissions")).to_have_text("1")
        row.scroll_into_view_if_needed()
        shot(page, "05-formgrader-assignments")
        formgrader.get_by_role("link", name="Manual Grading").click()
        formgrader.get_by_role("link", name="99-traps").click()  # the assignment, then its notebook:
        # the notebooks' page must be there before the second click, or it lands on the same link again
        expect(formgrader.get_by_role("columnheader", name="Notebook ID")).to_be_visible()
        formgrader.get_by_role("link", name="99-traps").click()
        submission = formgrader.locator("tr", has=formgrader.get_by_role("link", name="Submission #1"))
        expect(submission).to_contain_text("4 / 6")  # words per line wrong (1 point), written answer unmarked
        shot(page, "06-formgrader-submissions")
        submission.get_by_role("link", name="Submission #1").click()
        expect(formgrader.locator("body")).to_contain_text('return [len(line.split(" ")) for line in lines]')
        expect(formgrader.locator("[id='cell-id=traps-words-tests']")).to_contain_text(
            "AssertionError: split on any run of whitespace")
        # the autograder's points, as the boxes an instructor may overwrite
        expect(formgrader.locator("input#traps-words-tests")).to_have_attribute("placeholder", "0")
        expect(formgrader.locator("input#traps-total-tests")).to_have_attribute("placeholder", "2")
        shot(page, "07-formgrader-graded-submission")


# ---- the Dask dashboard that get_client() prints, during a computation ---------------------------

# The figure is drawn on a canvas: its data is in the page's Bokeh document, one rectangle per task.
TASK_STREAM_SLEEPS = """() => {
    const figure = window.Bokeh?.documents[0]?.get_model_by_name("task_stream");
    if (!figure) return -1;
    const names = figure.renderers[0].data_source.get_column("name") ?? [];
    return Array.from(names).filter((name) => name === "sleep").length;
}"""


def test_the_dask_dashboard_link_shows_the_task_stream_of_a_computation(page, capsys, monkeypatch):
    monkeypatch.delenv("SCALELAB_DASK_SCHEDULER", raising=False)  # a LocalCluster of this test's own
    close_client()  # only a new client prints its link
    try:
        client = get_client(n_workers=2)
        link = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/\S+)", capsys.readouterr().out)
        assert link, "get_client() printed no dashboard link on 127.0.0.1"
        page.goto(link.group(1))
        page.wait_for_function(f"({TASK_STREAM_SLEEPS})() >= 0")
        # submitted futures run on the workers while the page is open
        futures = client.map(time.sleep, [0.1] * 40, pure=False)
        page.wait_for_function(f"({TASK_STREAM_SLEEPS})() >= 10")
        shot(page, "08-dask-task-stream")
        client.gather(futures)
    finally:
        close_client()
