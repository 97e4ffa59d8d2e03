"""pytest settings for the whole repository: tests/ and the solution notebooks that nbval runs.

`make test` runs every solution notebook top to bottom in a fresh kernel with nbval (`--nbval-lax`:
a cell fails on an error; outputs are compared only in cells marked ``# NBVAL_CHECK_OUTPUT``).
That one run serves three checks (docs/testing.md):

* the solution runs, demonstrations included (nbval's items, one per code cell);
* it runs unchanged on a cluster: a notebook that starts Spark or Dask gets a kernel whose
  environment points at a loopback cluster that this test process started (`ENGINES`);
* its grading cases (autograder/cases/) get their expected points: an item after the last test
  cell runs them in the same kernel, from the state the solution left.

The summary at the end lists the slowest notebooks against the per-notebook budget that keeps the
whole suite inside its time goal.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections import defaultdict
from pathlib import Path

import pytest
from nbval.plugin import IPyNbCell, IPyNbFile

from scalelab import clusters, engines
from scalelab.grading import cases
from scalelab.grading.cells import is_test
from scalelab.spark import QUICK_JVM_OPTIONS, QUICK_SPARK_CONF

os.environ.setdefault("CI", "1")  # no Spark UI in kernels started by tests
os.environ.setdefault("SCALELAB_SPARK_JAVA_OPTIONS", QUICK_JVM_OPTIONS)  # many short Spark jobs: see spark.py
os.environ.setdefault("SCALELAB_SPARK_CONF", QUICK_SPARK_CONF)  # ... on small data: no code generation
os.environ.setdefault("SCALELAB_DEMO_SCALE", "0.2")  # worked examples at a fifth of their size (datasets.demo_size)

NOTEBOOK_BUDGET_S = 60  # one solution notebook, top to bottom, on 2 cores
_notebook_seconds: dict[str, float] = defaultdict(float)


# ---- loopback clusters: Spark once per test process, Dask for each test or notebook that uses it -----

class LoopbackEngines:
    """The Spark clusters, each started once per test process (when first asked for) and stopped at its end:
    an idle Spark JVM costs next to nothing (0.2 cpu-s a minute here)."""

    STARTERS = {
        "spark_master": lambda: clusters.spark_standalone(cores=2, memory="2g"),
        "spark_remote": clusters.spark_connect_server,
    }

    def __init__(self):
        self._stack = contextlib.ExitStack()
        self._addresses: dict[str, str] = {}

    def address(self, name: str) -> str:
        if name not in self._addresses:
            self._addresses[name] = self._stack.enter_context(self.STARTERS[name]())
        return self._addresses[name]

    def close(self) -> None:
        self._stack.close()


ENGINES = LoopbackEngines()
# A Dask cluster is started for each test or notebook that uses one, and stopped after it: its five
# idle processes burn about 8.5 cpu-s a minute here: kept for a 25-minute run by each of the two test
# workers, about 7 cpu-minutes of a machine that has no core to spare. A start costs about 5 cpu-s.
PER_USER = {"dask_scheduler": lambda: clusters.dask_cluster(workers=2)}
_own_engines = pytest.StashKey[contextlib.ExitStack]()
_addresses = pytest.StashKey[dict]()


def pytest_unconfigure(config):
    ENGINES.close()


@pytest.fixture(scope="session")
def spark_master() -> str:
    """A Spark standalone master and one worker; the address to put in SCALELAB_SPARK_MASTER."""
    return ENGINES.address("spark_master")


@pytest.fixture(scope="session")
def spark_remote() -> str:
    """A Spark Connect server; the address to put in SPARK_REMOTE."""
    return ENGINES.address("spark_remote")


@pytest.fixture
def dask_scheduler():
    """A Dask scheduler with two worker processes, for this test only; the address for SCALELAB_DASK_SCHEDULER."""
    with PER_USER["dask_scheduler"]() as address:
        yield address


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_setup(item):
    """nbval starts a notebook's kernel while setting up its first cell: give it the clusters' addresses
    (scalelab/engines.py: Spark labs without RDDs on Spark Connect, RDD labs on the standalone master,
    Dask labs on the scheduler). nbgrader's class batch (tests/test_grading_course.py) shares only the
    Connect server."""
    notebook = item.parent
    if not isinstance(notebook, IPyNbFile) or notebook.kernel is not None:
        yield
        return
    own = notebook.stash[_own_engines] = contextlib.ExitStack()
    addresses = notebook.stash[_addresses] = {
        engine.name: own.enter_context(PER_USER[engine.name]()) if engine.name in PER_USER
        else ENGINES.address(engine.name)
        for engine in engines.engines_of(notebook.nb)}
    with engines.pointed_at(notebook.nb, addresses):  # the kernel inherits it; this process gets its own back
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After a notebook's last item, and after nbval has stopped its kernel: stop the notebook's own engines."""
    yield
    notebook = item.parent
    if isinstance(notebook, IPyNbFile) and (nextitem is None or nextitem.parent is not notebook):
        notebook.stash.get(_own_engines, contextlib.ExitStack()).close()


# ---- the grading cases, in the kernel nbval ran the solution in ----------------------------------

class GradingCases(pytest.Item):
    """Every grading case of the notebook gets its expected points; the solution gets full marks."""

    def __init__(self, *, cells: list[IPyNbCell], **kwargs):
        super().__init__(**kwargs)
        self.cells = cells  # nbval's items for the cells above, whose outputs the cases start from

    def runtest(self):
        notebook = self.parent
        if notebook.kernel is None or not notebook.kernel.is_alive():
            raise AssertionError("the notebook's kernel is gone (see the cells above)")
        position = {id(cell): i for i, cell in enumerate(notebook.nb.cells)}
        outputs = {position[id(item.cell)]: item.test_outputs for item in self.cells
                   if hasattr(item, "test_outputs")}
        with cases.LiveNotebook.attached(self.path, notebook.kernel.km, outputs) as live:
            if live.cell_errors:
                raise AssertionError("the solution has failing cells, so no case can be trusted:\n"
                                     + "\n".join(live.cell_errors))
            lost = {g: p for g, p in live.solution_points.items() if p != live.full_points[g]}
            if lost:
                raise AssertionError(f"the solution loses points: {lost}")
            results = [live.run_case(case) for case in cases.load_cases(cases.cases_file(self.path))]
        failures = [r.describe() for r in results if not r.ok]
        if failures:
            raise AssertionError("\n".join(failures))
        addresses = notebook.stash[_addresses]
        connected = [e.banner.format(addresses[e.name]) for e in engines.engines_of(notebook.nb) if e.banner]
        missing = [c for c in connected if c not in live.printed()]
        if missing:
            raise AssertionError(f"the notebook never printed {missing}: it did not run on its cluster")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, AssertionError):
            return f"{self.path.name}: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}: grading cases"


def _with_grading_cases(items: list[pytest.Item]) -> list[pytest.Item]:
    """Each graded solution notebook's items, with its grading cases right after its last test cell."""
    result: list[pytest.Item] = []
    for notebook, group in itertools.groupby(items, key=lambda item: item.parent):
        cells = list(group)
        result += cells
        if not isinstance(notebook, IPyNbFile) or not cases.cases_file(notebook.path).exists():
            continue
        tests = [k for k, item in enumerate(cells) if is_test(item.cell)]
        if tests:
            check = GradingCases.from_parent(notebook, name="grading cases", cells=cells[: tests[-1] + 1])
            result.insert(len(result) - len(cells) + tests[-1] + 1, check)
    return result


def _run_order(item: pytest.Item) -> int:
    """Longest first, shortest last, so that neither test worker waits long for the other at the end:
    the nbgrader class batches (one test of 40-160 s each), then the notebooks (10-140 s), then the
    other test modules (most under a minute each). `make test` hands the scopes out in this order."""
    if item.path.name == "test_grading_course.py":
        return 0
    return 1 if item.path.suffix == ".ipynb" else 2


def pytest_collection_modifyitems(items):
    """Grading cases join the notebooks' items; a notebook's items are slow (`make test-fast` skips them)."""
    items[:] = sorted(_with_grading_cases(items), key=_run_order)  # stable: each scope's items stay in order
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    ranked = sorted(_notebook_seconds.items(), key=lambda kv: -kv[1])
    terminalreporter.section(f"slowest solution notebooks (nbval and grading cases, budget {NOTEBOOK_BUDGET_S} s each)")
    for path, seconds in ranked[:10]:
        flag = "  OVER BUDGET" if seconds > NOTEBOOK_BUDGET_S else ""
        terminalreporter.write_line(f"{seconds:7.1f} s  {Path(path).stem}{flag}")
    terminalreporter.write_line(f"{sum(_notebook_seconds.values()):7.1f} s  all {len(ranked)} notebooks")
