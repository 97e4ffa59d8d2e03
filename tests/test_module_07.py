"""Module 07 (OpenCL): the solutions' functions against NumPy on fresh inputs, and the seed's bugs not taught.

Each solution notebook's set-up, worked-example and answer cells are run in-process (by
tests/solution_notebooks.py), then its functions are called on sizes the notebooks' hidden tests don't use.
"""

import numpy as np
import pytest
from solution_notebooks import REPO, read_notebook, run_solution

NOTEBOOKS = ["07-host-and-device", "07-arrays-and-primitives", "07-local-memory"]

pytest.importorskip("pyopencl")


@pytest.fixture(scope="module")
def solved():
    """Each notebook's module after its set-up cell, its worked examples and its answers."""
    return {stem: run_solution(stem, examples=True) for stem in NOTEBOOKS}


def test_host_and_device_functions_match_numpy(solved):
    ns = solved["07-host-and-device"]
    queue, rng = ns.queue, np.random.default_rng(700)
    for n in (2, 64, 127, 4097):
        x, y = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
        np.testing.assert_allclose(ns.saxpy(queue, 0.5, x, y), 0.5 * x.astype(np.float64) + y, rtol=1e-5, atol=1e-5)
    for shape in [(16, 16), (17, 1), (3, 64)]:
        m = rng.normal(size=shape).astype(np.float32)
        np.testing.assert_array_equal(ns.transpose(queue, m), m.T)


def test_primitives_match_numpy(solved):
    ns = solved["07-arrays-and-primitives"]
    queue, rng = ns.queue, np.random.default_rng(701)
    assert abs(ns.estimate_pi(queue, 400_000, seed=99) - np.pi) < 5 * 1.65 / np.sqrt(400_000)
    for n in (2, 255, 50_001):
        x, y = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
        np.testing.assert_allclose(ns.lin_comb(queue, 2.0, x, -3.0, y), 2.0 * x.astype(np.float64) - 3.0 * y,
                                   rtol=1e-5, atol=1e-5)
        assert ns.dot(queue, x, y) == pytest.approx(float(np.dot(x.astype(np.float64), y)), rel=1e-4, abs=1e-3)
        assert ns.max_value(queue, x - 100) == float((x - 100).max())
        expected = np.concatenate([[0.0], np.cumsum(np.abs(x).astype(np.float64))[:-1]])
        np.testing.assert_allclose(ns.exclusive_cumsum(queue, np.abs(x)), expected, rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(ns.keep_positive(queue, x), x[x > 0])


def test_tiled_matmul_matches_numpy_on_tile_multiples_and_not(solved):
    ns = solved["07-local-memory"]
    queue, rng = ns.queue, np.random.default_rng(702)
    for n, k, m in [(16, 16, 16), (31, 1, 47), (5, 97, 3)]:
        a, b = rng.normal(size=(n, k)).astype(np.float32), rng.normal(size=(k, m)).astype(np.float32)
        expected = a.astype(np.float64) @ b
        np.testing.assert_allclose(ns.matmul_tiled(queue, a, b), expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ns.matmul_naive(queue, a, b), expected, rtol=1e-4, atol=1e-4)


def test_no_cell_asks_for_a_device_interactively():
    """`create_some_context()` prompts on stdin when several devices exist: a kernel under nbgrader would hang."""
    for stem in NOTEBOOKS:
        for cell in read_notebook(stem).cells:
            if cell.cell_type == "code":
                assert "create_some_context()" not in cell.source, "use scalelab.opencl.get_context()"


def test_labs_ask_for_every_function():
    for stem in NOTEBOOKS:
        text = (REPO / "labs" / "07-opencl" / f"{stem}.ipynb").read_text()
        assert "raise NotImplementedError" in text and "BEGIN SOLUTION" not in text


def test_a_lab_runs_unchanged_on_the_device_named_by_pyopencl_ctx(monkeypatch):
    """§7: `PYOPENCL_CTX` (how a GPU is chosen elsewhere) drives the same set-up and answer cells."""
    monkeypatch.setenv("PYOPENCL_CTX", "0:0")
    answers = run_solution("07-host-and-device", "cl-saxpy", examples=True)
    x = np.arange(100, dtype=np.float32)
    np.testing.assert_allclose(answers.saxpy(answers.queue, 3.0, x, x), 4 * x)
